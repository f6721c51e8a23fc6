"""The notebook the Follow/Timeline browser test opens, kept as Python so no output-less
notebook is tracked: ``tests/widgets/test_browser_follow.py`` writes it into JupyterLab's
root with nbformat."""

import nbformat

CELLS = [
    ('markdown', '# Browser test: follow a force-offline, then read its timeline\n\nUsed only by '
                 '`tests/widgets/test_browser_follow.py`, which runs this notebook in JupyterLab in Chromium and '
                 'clicks: *Follow* in the results view, then the console\'s *Timeline* tab and *Show*. The `rk-*` '
                 'CSS classes give the test stable handles.'),
    ('code', 'import romakit as rk\nfrom romakit.widgets import ResultsView\n\n'
             'sb = rk.sandbox(devices=300, seed=9)\n'
             '# forced devices reconnect at classroom speed (the keep-alive tail in about a second); a share never does\n'
             'sb.set_fault(reconnect_s=0.5, reconnect_never=0.15, connect_rate=1000.0, time_scale=500.0)\n'
             'link = sb.link_client(progress=False)\n'
             'w = rk.watch(link, every=0.2, full_every=2, name="browser")\n'
             'assert w.wait(1, 60)\n'
             'ids = link.devices(online_status="online")["id"].astype(int).tolist()[:40]\n'
             'res = link.force_offline(ids, rollout=False)\n'
             'never = sorted(sb.never_returning(ids))\n'
             'print("never:", " ".join(map(str, never)), "(end)")'),
    ('code', 'view = ResultsView(res, target=link)\nview.widget.add_class("rk-results")\nview'),
    ('code', '# every device that will come back is back, and the next full listing of the watch has seen it: it stops\n'
             'assert sb.life.wait_idle(60)\nassert w.wait(w.cycles + 2 * w.full_every + 1, 60)\nw.stop()\nprint("watched:", w.cycles, "cycles")'),
    ('code', 'con = rk.console(link)\ncon.results.show(res, target=link)\ncon.widget.add_class("rk-console")\ncon'),
]


def write(path) -> None:
    """Write the notebook to ``path``."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    nb.cells = [nbformat.v4.new_markdown_cell(s) if t == "markdown" else nbformat.v4.new_code_cell(s) for t, s in CELLS]
    nbformat.write(nb, str(path))
