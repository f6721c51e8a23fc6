"""The *Restore* button of a :class:`~romakit.widgets.ResultsView`: after a deletion,
preview re-creating what it removed, from the snapshot it kept (``rk.restore``).

Like *Retry* and *Resume*, it sends nothing itself: it stages a preview in the view's
action panel (the restore's plan: its devices by product and by gateway, its chunks,
its rollout and what comes back and what does not), which runs only after the confirm
box and the blast-radius guard. Drive it from Python: ``view.restore_button.click()``
(or ``view.stage_restore()``), then the panel's confirm box and Run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import ipywidgets as w

from romakit.errors import RomakitError
from romakit.operations import RESTORES, operation
from romakit.outcomes import SUCCESS, UNKNOWN

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from romakit.results import BatchResult
    from romakit.widgets.preview import Plan


def restorable_ids(result: BatchResult | None) -> list[str]:
    """The devices of a deletion ``result`` that its snapshot can re-create: deleted (or
    maybe: ``unknown``) and recorded."""
    if result is None or result.operation not in RESTORES or not result.snapshot:
        return []
    f = result.frame
    done = f["device_id"][f["outcome"].isin([SUCCESS, UNKNOWN])].astype(str)
    return [d for d in done if d in result.snapshot]


def _frame(rest: Any) -> pd.DataFrame:
    """The records as the preview counts them (``product_name``, ``parent_device_name``)."""
    f = rest.frame()
    if "gateway_id" in f.columns and "parent_device_name" not in f.columns:
        f = f.rename(columns={"gateway_id": "parent_device_name"})
    return f


class RestoreControl:
    """The view's *Restore* button and what it stages (see the module docstring)."""

    def __init__(self, view: Any) -> None:
        self.view = view
        self.button = w.Button(description="Restore", icon="undo", disabled=True, layout=w.Layout(width="auto"),
                               tooltip="preview re-creating the deleted devices from the snapshot the deletion kept")
        self.button.on_click(lambda _b: self.stage())

    def update(self, result: BatchResult) -> None:
        """Follow the shown result: enabled after a deletion with a snapshot."""
        n = len(restorable_ids(result))
        self.button.description = f"Restore ({n:,} deleted)" if result.operation in RESTORES else "Restore"
        self.button.disabled = n == 0 or self.view.target is None

    def stage(self) -> Plan | None:
        """Stage the restore of the shown deletion in the action panel; None (the reason
        said in the view's status line) when refused."""
        from romakit.engine.rollout import default_rollout
        from romakit.restoring import check_restorer, journal_of, restoration
        from romakit.widgets.preview import plan_for

        view = self.view
        res = view.result
        if not restorable_ids(res):
            return view._say("nothing to restore: no deleted device with a snapshot record", error=True) or None
        panel = view._aimed_panel("restore")
        if panel is None:
            return None
        try:
            rest = restoration(res.op_id, ids=restorable_ids(res), journal=journal_of(panel.target))
            check_restorer(panel.target, rest)
        except RomakitError as e:
            return view._say(f"restore refused: {e}", error=True) or None
        op = operation(rest.operation)
        names = {i: str(r.get("device_name") or r.get("name")) for i, r in rest.records.items()}
        policy = panel._gated(panel._policy() if panel._explicit else default_rollout(op.name))
        plan = panel._stage(lambda: plan_for(panel.target, op, rest.ids, names, _frame(rest), policy,
                                             kind="restore", source=rest.deletion.op_id, parents=rest.parents or None))
        if plan is None:
            return view._say(f"restore refused: {panel.message}", error=True) or None
        view._say(f"restore of {plan.devices:,} devices previewed in the action panel: confirm there and press Run")
        return plan


__all__ = ["RestoreControl", "restorable_ids"]
