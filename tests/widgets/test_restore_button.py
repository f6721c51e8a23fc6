"""The Restore button of ResultsView, driven from Python against the sandbox: after a
deletion made in the action panel, the chart names the deleted children by their
recorded product, the button stages the restore in the panel (the same preview,
confirm and guard as any run, saying what comes back), and Run re-creates them."""

from __future__ import annotations

import romakit as rk
from romakit.results.analysis import NOT_IN_FLEET
from romakit.widgets import ActionPanel, DevicePicker, ResultsView

SANDBOX = {"devices": 400, "seed": 23}
WAIT = 60


def _labels(fig) -> set[str]:
    return {t.get_text() for ax in fig.axes for t in ax.get_yticklabels()}


def test_a_child_deletion_restored_from_the_results_view(sb, link):
    gw_id = max(sb.gateways(), key=lambda g: len(sb.children(g)))
    kids = sb.children(gw_id)[:8]
    fleet = link.devices()
    products = set(fleet.set_index("client_id").loc[kids, "product_name"].astype(str))
    picker = DevicePicker(fleet, "client_id")
    picker.select(kids)
    with sb.gateway(gw_id) as gw:
        view = ResultsView(target=gw, fleet=fleet)
        panel = ActionPanel(gw, picker, results=view, refresh=lambda: setattr(view, "fleet", link.devices()))
        panel.operation.value = "delete_sub_devices"
        assert panel.make_preview() is not None, panel.message
        assert "8 child devices fully restorable" in panel.preview.value  # said before the deletion
        panel.confirm.value = True
        assert panel.run() and panel.wait(WAIT), panel.message
        deleted = view.result
        assert deleted.ok and deleted.operation == "delete_sub_devices"
        # the fleet no longer lists them: the chart names them from the snapshot
        fig = view._figure(deleted)
        assert products <= _labels(fig) and NOT_IN_FLEET not in _labels(fig)
        assert view.restore_button.description == "Restore (8 deleted)" and not view.restore_button.disabled
        view.restore_button.click()  # staged, not sent
        assert "previewed in the action panel" in view.message, view.message
        staged = view.panel.plan
        assert staged.kind == "restore" and staged.operation == "restore_sub_devices" and staged.devices == 8
        assert "What comes back" in view.panel.preview.value and "own device id" in view.panel.preview.value
        assert not set(kids) & set(sb.children(gw_id))  # nothing sent before Run
        view.panel.run_button.click()
        assert "tick the confirm box" in view.panel.message  # the same guard as any run
        view.panel.confirm.value = True
        view.panel.run_button.click()
        assert view.wait(WAIT), view.panel.message
    restored = view.result
    assert restored.operation == "restore_sub_devices" and restored.ok and restored.parent_op_id == deleted.op_id
    assert set(kids) <= set(sb.children(gw_id))
    assert f"restore of <code>{deleted.op_id}</code>" in view.header.value
    assert view.restore_button.disabled  # a restore's result has nothing to restore
    assert rk.journal(deleted.op_id).steps["relation"].tolist() == ["first", "restore"]


def test_the_button_stays_off_without_a_snapshot(sb, link, claim):
    res = link.force_offline(claim.online(2))
    view = ResultsView(res, target=link)
    assert view.restore_button.disabled and view.restore_button.description == "Restore"
    assert view.stage_restore() is None and "nothing to restore" in view.message
