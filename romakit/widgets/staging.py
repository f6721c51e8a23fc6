"""What an :class:`~romakit.widgets.ActionPanel` stages besides a run of the picked
devices (a retry, a resume), and what it does after each run (refresh, drop from the
selection). Kept apart from the panel's layout and run loop (:mod:`.action`)."""

from __future__ import annotations

import dataclasses
import logging
from typing import TYPE_CHECKING, Any

from romakit.engine import CancelToken
from romakit.engine.rollout import default_rollout
from romakit.errors import InputError, RomakitError
from romakit.operations import check_client, operation
from romakit.outcomes import OUTCOMES, SKIPPED, SUCCESS
from romakit.widgets.preview import Plan, plan_for, plan_html, plural

if TYPE_CHECKING:  # pragma: no cover
    from romakit.results import BatchResult

log = logging.getLogger("romakit.widgets")


class Staging:
    """Mixed into ActionPanel: staged retries and resumes, and the after-run clean-up."""

    def _free(self) -> bool:
        """True when nothing runs and the client is usable; else the reason is said."""
        if self._worker.running:
            self._say("an operation is running; wait for it or cancel it first", error=True)
            return False
        return self.check_usable()

    def stage_retry(self, result: BatchResult) -> Plan | None:
        """Preview a retry of ``result``'s transient failures: Run (after the confirm and
        the guard) sends them as a new operation linked to it."""
        if not self._free():
            return None
        try:
            op = check_client(self.target, result.operation, result.target)
        except InputError as e:
            self._say(str(e), error=True)
            return None
        ids = result.retry_ids()
        if not ids:
            self._say("nothing to retry: no failure with a transient cause", error=True)
            return None
        f = result.frame
        names = {i: n for i, n in zip(result.ids(), f["device_name"], strict=True) if isinstance(n, str)}
        # the policy set in the panel, else the registry's default for the retried operation
        policy = self._policy() if self._explicit else default_rollout(op.name)
        if policy and policy.canary and policy.gate is None and self.rollout_form.wait_for_me.value:
            policy = dataclasses.replace(policy, gate=self.gate.ask)
        return self._stage(plan_for(self.target, op, ids, names, self._rows(ids), policy if policy else False,
                                    kind="retry", source=result, fleet=self._fleet()))

    def stage_resume(self, op_id: str) -> Plan | None:
        """Preview a resume of operation ``op_id`` (stopped, cancelled or interrupted): its
        devices that never got an answer, under the policy it ran with."""
        from romakit.replay import recorded_rollout
        from romakit.store.reader import pending_ids

        if not self._free():
            return None
        try:
            if not op_id:
                raise InputError("type the op_id of the operation to resume (see rk.journal())")
            rec, todo = pending_ids(op_id)
            op = check_client(self.target, rec["operation"], rec["target"], rec["client"])
            if rec["state"] == "running":
                raise InputError(f"operation {rec['op_id']} is still running")
        except (InputError, RomakitError) as e:
            self._say(str(e), error=True)
            return None
        if not todo:
            self._say(f"operation {rec['op_id']} is complete: nothing to resume", error=True)
            return None
        policy = recorded_rollout(rec, gate=self.gate.ask if self.rollout_form.wait_for_me.value else None)
        return self._stage(plan_for(self.target, op, todo, {}, self._rows(todo), policy,
                                    kind="resume", source=rec["op_id"], fleet=self._fleet()))

    def _fleet(self) -> Any:
        return getattr(self.picker, "fleet", None) if self.picker is not None else None

    def _rows(self, ids: list) -> Any:
        p = self.picker
        if p is None or not len(p.fleet) or p.int_ids != isinstance(ids[0], int):
            return None
        return p.fleet[p.fleet[p.id_column].isin(ids)]

    def _after_run(self, result: BatchResult) -> str:
        """Refresh the fleet (when the panel can) and drop what the run acted on from the selection."""
        p = self.picker
        if p is None or not len(result):
            return ""
        acted = result.ids([o for o in OUTCOMES if o != SKIPPED])
        gone = result.ids(SUCCESS) if operation(result.operation).expected == "gone" else []
        if p.int_ids != (operation(result.operation).int_ids):
            return ""
        if self.refresh is not None:
            try:
                self.refresh()
            except Exception:  # noqa: BLE001 - a listing problem must not hide the result
                log.exception("refresh after the run failed")
            n = p.drop(acted)
        else:
            n = p.drop(acted, gone=gone)
        left = f" {n:,} acted-on devices left the selection" if n else ""
        return (left + (f"; {len(gone):,} deleted ones left the list." if gone else ".")) if left else ""

    def _stage(self, plan: Plan) -> Plan:
        op = operation(plan.operation)
        self.plan = plan
        self.preview.value = plan_html(plan, op, self.blast_radius) + self._takeover_check()
        self.confirm.description = f"I confirm: {plan.what}"
        self.confirm.value = False
        self.confirm.disabled = False
        self.blast.value = ""
        self.blast.layout.display = "" if plan.devices > self.blast_radius else "none"
        self.run_button.disabled = False
        what = {"run": "preview", "retry": "retry preview", "resume": "resume preview"}[plan.kind]
        self._say(f"{what} ready: {plural(plan.devices, 'device')} in {plural(plan.chunks, 'chunk')}, at most "
                  f"{plan.worst_case:,} before the first stop can act; nothing sent yet")
        return plan

    def _send(self, plan: Plan, token: CancelToken) -> BatchResult:
        """The one call of each kind of plan, with the same progress, cancel and policy."""
        kwargs: dict[str, Any] = {"progress": self._on_progress, "cancel": token, "rollout": plan.policy}
        if plan.kind == "retry":
            return plan.source.retry(self.target, ids=plan.ids, **kwargs)
        if plan.kind == "resume":
            from romakit.replay import resume

            return resume(plan.source, self.target, **kwargs)
        if plan.names:
            kwargs["names"] = plan.names
        return getattr(self.target, plan.operation)(plan.ids, **kwargs)

