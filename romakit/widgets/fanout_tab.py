"""The console's *All gateways* tab: the children of every gateway the console holds in
one picker, deleted in one run, each through its own gateway (``rk.delete_children``
via a :class:`~romakit.iotda.fanout.GatewayGroup`), with the panel's usual preview,
confirm and blast-radius guard.

:class:`FanOutPanel` is the console's :class:`ActionPanel`: for a single client it is
the same panel; for a group it names the gateways a run will go through (the preview's
target is the gateways the selection spans, not all the group holds) and aims a retry
or a resume at the gateways the operation ran on.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from romakit.errors import InputError, RomakitError
from romakit.iotda.fanout import GatewayGroup, parents_of
from romakit.widgets.action import ActionPanel
from romakit.widgets.preview import Plan

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from romakit.results import BatchResult

#: the tab's title
TITLE = "All gateways"


def all_children(frames: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """The children of each gateway (``{gateway id: its children frame}``) in one frame,
    with ``gateway_id`` saying which gateway each came from (the fan-out's parents)."""
    import pandas as pd

    parts = [f.assign(gateway_id=g) for g, f in frames.items() if len(f)]
    if not parts:
        return pd.DataFrame({"client_id": pd.Series(dtype="object"), "gateway_id": pd.Series(dtype="object")})
    return pd.concat(parts, ignore_index=True)


class FanOutPanel(ActionPanel):
    """An :class:`ActionPanel` that also acts on a :class:`GatewayGroup` (see the module)."""

    #: the group the console's tab shows (a retry or resume may aim at a part of it)
    group: GatewayGroup | None = None

    def set_target(self, target: Any) -> None:
        self.group = target if isinstance(target, GatewayGroup) else None
        super().set_target(target)

    def make_preview(self) -> Plan | None:
        if self.group is not None and not self.running:
            self.target = self.group  # a retry may have aimed at a part of it
            try:
                if self.picker is not None and self.picker.selected:
                    parents_of([str(i) for i in self.picker.selected], self.group.parents)
            except InputError as e:  # pasted ids of no listed gateway: refused before any preview
                self.invalidate(None)
                self._say(str(e), error=True)
                return None
        return super().make_preview()

    def _parents_of(self, ids: list) -> dict[str, str] | None:
        if isinstance(self.target, GatewayGroup):
            return parents_of([str(i) for i in ids], self.target.parents)
        return None

    def stage_retry(self, result: BatchResult) -> Plan | None:
        if self.group is not None and not self._aim(result.frame["target"].astype(str).unique()):
            return None
        return super().stage_retry(result)

    def stage_resume(self, op_id: str) -> Plan | None:
        if self.group is not None and op_id:
            from romakit.store.reader import pending_ids

            try:
                rec, _ = pending_ids(op_id)
            except (InputError, RomakitError) as e:
                self._say(str(e), error=True)
                return None
            if not self._aim((rec.get("client") or {}).get("gateways") or ()):
                return None
        return super().stage_resume(op_id)

    def _aim(self, gateway_ids: Any) -> bool:
        """Point the panel at the part of the group an operation ran on; False (said) if
        the group does not hold them all."""
        if self.running:
            return self._say("an operation is running; wait for it or cancel it first", error=True)
        assert self.group is not None
        try:
            self.target = self.group.subset(gateway_ids) if len(gateway_ids) else self.group
        except InputError as e:
            return self._say(f"{e}: open a console with those gateways to act on it", error=True)
        return True
