"""The notebook the browser test opens, kept as Python so no output-less notebook is
tracked: ``tests/widgets/test_browser.py`` writes it into JupyterLab's root with nbformat."""

import nbformat

CELLS = [
    ('markdown', '# Browser test: pick devices and act on them\n\nUsed only by `tests/widgets/test_browser.py`, which opens this notebook in JupyterLab, runs it in Chromium and does the clicking: filter and select rows in the picker, Preview, confirm, Run. Nothing here drives the widgets from Python. The `rk-*` CSS classes give the test stable handles.'),
    ('code', 'import romakit as rk\nfrom romakit.widgets import ActionPanel, DevicePicker, ResultsView\n\nsb = rk.sandbox(devices=200, seed=5)\nlink = sb.link_client(chunk_size=10, progress=False)\nfleet = link.devices()\nprint(f"{len(fleet):,} devices listed")'),
    ('code', 'picker = DevicePicker(fleet)\npicker.widget.add_class("rk-picker")\npicker'),
    ('code', 'view = ResultsView(target=link, fleet=fleet)\npanel = ActionPanel(link, picker, results=view)\npanel.widget.add_class("rk-panel")\npanel'),
    ('code', 'view.widget.add_class("rk-results")\nview'),
    ('markdown', 'A second panel with a canary of 3 and the gate waiting for a person; its picker holds 20 devices '
                 'that the filter above does not show, the canary\'s 3 of them failing (a sandbox fault).'),
    ('code', 'spare = fleet[~fleet["device_name"].str.contains("-sz-")].tail(20)\n'
             'gate_picker = DevicePicker(spare)\ngate_picker.select(spare["id"].tolist())\n'
             'sb.set_fault(fail_ids=spare["id"].tolist()[:3])\n'
             'gated = ActionPanel(link, gate_picker, rollout=rk.Rollout(canary=3, abort_min=1000))\n'
             'gated.widget.add_class("rk-gated")\ngated'),
]


def write(path) -> None:
    """Write the notebook to ``path``."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    nb.cells = [nbformat.v4.new_markdown_cell(s) if t == "markdown" else nbformat.v4.new_code_cell(s) for t, s in CELLS]
    nbformat.write(nb, str(path))
