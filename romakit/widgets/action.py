"""``ActionPanel``: preview, confirm and run a batch operation on the picked devices.

Stepwise: choose the operation, press *Preview* (a dry run: nothing is sent; it states
the worst case), tick the confirm box (and, above the blast radius, type the number of
devices), press *Run*. Every send takes this one path (:class:`~romakit.engine.flow.SafetyFlow`):
a retry (:meth:`ActionPanel.stage_retry`, the ResultsView's button) and a resume
(:meth:`ActionPanel.stage_resume`) are staged as a preview here and need the same
confirmation. A closed client, or a service that cannot be reached, disables the panel
before anything is sent. After a run the devices it acted on leave the selection (and
deleted ones the picker). The run goes on a background thread; the engine's progress
callable moves the bar after every chunk and *Cancel* presses a :class:`~romakit.CancelToken`.
The panel never speaks HTTP or MQTT itself: it calls the client's own batch method.
"""

from __future__ import annotations

import dataclasses
import html
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import ipywidgets as w

from romakit.engine import CancelToken
from romakit.engine.flow import SafetyFlow
from romakit.engine.guard import Guard
from romakit.engine.rollout import default_rollout
from romakit.errors import InputError, RomakitError
from romakit.operations import GATEWAY, LINK, Operation, client_kind, for_kind, operation
from romakit.widgets import staging
from romakit.widgets._base import Widget, Worker
from romakit.widgets.canary_gate import CanaryGate
from romakit.widgets.picker import DevicePicker
from romakit.widgets.preview import Plan, chunk_size_of, plan_for, plan_html, plural
from romakit.widgets.rollout_form import RolloutForm

if TYPE_CHECKING:  # pragma: no cover
    from romakit.engine.rollout import Rollout
    from romakit.results import BatchResult

log = logging.getLogger("romakit.widgets")

#: devices above which the user must also type the number to confirm
DEFAULT_BLAST_RADIUS = 1000
__all__ = ["DEFAULT_BLAST_RADIUS", "GATEWAY", "LINK", "ActionPanel", "Plan", "Worker", "chunk_size_of"]


class ActionPanel(Widget):
    """Choose an operation, preview it, confirm it and run it on ``picker.selected``.

    ``target`` is a LinkClient (force offline, delete devices) or a Gateway (delete
    child devices; the panel connects it if needed). ``picker`` may be None for a panel
    that only retries and resumes. ``blast_radius``: above this many devices the user
    must also type the number of devices. ``results`` is an optional
    :class:`ResultsView` shown each finished result (its *Retry* and *Resume* are staged
    here); ``on_done`` callbacks get the result. ``rollout``: the policy (None: the
    operation registry's default for each operation; untick the form for none).
    ``refresh``: called after each run to list the fleet again (the console's).
    ``panel.chunk_size``: devices per request (None: the client's default).
    Drive it from Python: set ``panel.operation.value``, ``panel.confirm.value``, call
    ``panel.preview_button.click()`` / ``run_button.click()`` and ``panel.wait(timeout)``.
    The rules from preview to run are its :class:`~romakit.engine.flow.SafetyFlow`
    (``panel.flow``); the panel displays it.
    """

    def __init__(
        self,
        target: Any,
        picker: DevicePicker,
        *,
        blast_radius: int = DEFAULT_BLAST_RADIUS,
        results: Any = None,
        rollout: Rollout | None = None,
        refresh: Callable[[], None] | None = None,
    ) -> None:
        self.flow = SafetyFlow(target, Guard(blast_radius))
        self.picker = picker
        self.results = results
        self.chunk_size: int | None = None
        #: the last run's BatchResult (None before the first run or when it raised)
        self.result: BatchResult | None = None
        #: the exception of the last run, if it raised instead of returning a result
        self.error: BaseException | None = None
        self.token: CancelToken | None = None
        self._rollout: Rollout | None = None
        self._explicit = rollout is not None  # False: follow the registry's default per operation
        self.refresh = refresh
        self._worker = Worker("romakit-action")
        self._done_callbacks: list[Callable[[BatchResult | None], None]] = []
        self._progress_callbacks: list[Callable[[int, int], None]] = []

        self.operation = w.Dropdown(description="Operation", layout=w.Layout(width="320px"))
        self.preview_button = w.Button(description="Preview (dry run)", icon="search", layout=w.Layout(width="auto"))
        self.preview = w.HTML("<i>Pick devices, then press Preview: nothing is sent before Run.</i>")
        self.confirm = w.Checkbox(description="I confirm", indent=False, disabled=True, layout=w.Layout(width="auto"))
        self.blast = w.Text(description="Type count", placeholder="number of devices",
                            layout=w.Layout(width="300px", display="none"))
        #: shown when the gateway is ONLINE in IoTDA: logging in as it knocks the field gateway off
        self.takeover = w.Checkbox(description="Take over", indent=False, value=False,
                                   layout=w.Layout(width="auto", display="none"))
        self.run_button = w.Button(description="Run", button_style="danger", icon="play", disabled=True)
        self.cancel_button = w.Button(description="Cancel", icon="stop", disabled=True)
        self.resume_op = w.Text(description="Resume op", placeholder="op_id (rk.journal())", layout=w.Layout(width="300px"))
        self.resume_button = w.Button(description="Resume…", icon="forward", tooltip="preview a resume of that operation")
        self.progress = w.IntProgress(min=0, max=1, value=0, description="Progress", layout=w.Layout(width="420px"))
        self.progress_label = w.Label()
        self.status = w.HTML()
        # -- rollout policy: the form (defaults shown, editable) and the canary gate -------------
        self.rollout_info = w.HTML()
        self.rollout_form = RolloutForm(rollout)
        self.gate = CanaryGate()
        self.rollout_box = w.VBox([self.rollout_info, self.rollout_form.widget])
        self.rollout_section = w.Accordion(children=[self.rollout_box], titles=("Rollout policy",))
        self.rollout_form.on_change(self._rollout_form_changed)
        self.gate.on_ask(self._gate_waiting)

        self.operation.observe(lambda _c: self._operation_changed(), "value")
        self.preview_button.on_click(lambda _b: self.make_preview())
        self.blast.observe(lambda _c: self._count_typed(), "value")
        self.run_button.on_click(lambda _b: self.run())
        self.cancel_button.on_click(lambda _b: self.cancel())
        self.resume_button.on_click(lambda _b: self.stage_resume(self.resume_op.value.strip()))
        if picker is not None:
            picker.on_selection_change(lambda _p: self._selection_changed())
        if results is not None:
            results.panel = self  # its Retry and Resume are staged here

        self.widget = w.VBox(
            [
                w.HBox([self.operation, self.preview_button]),
                self.preview,
                self.rollout_section,
                w.HBox([self.confirm, self.blast]),
                self.takeover,
                w.HBox([self.run_button, self.cancel_button, self.resume_op, self.resume_button]),
                w.HBox([self.progress, self.progress_label]),
                self.status,
                self.gate.widget,  # the gate's decision under the status line that asks for it
            ]
        )
        self.widget.add_class("rk-panel")
        self.set_target(target)
        if rollout is not None:
            self.rollout = rollout

    # -- target ----------------------------------------------------------------------------
    @property
    def target(self) -> Any:
        """The client the panel acts through (its flow's)."""
        return self.flow.client

    @target.setter
    def target(self, client: Any) -> None:
        self.flow.client = client

    @property
    def blast_radius(self) -> int:
        """Above this many devices the number must be typed to confirm (the flow's guard)."""
        return self.flow.guard.blast_radius

    @property
    def disabled_reason(self) -> str | None:
        """Why the panel is disabled (a closed client, an unreachable service), or None."""
        return self.flow.disabled_reason

    @property
    def plan(self) -> Plan | None:
        """The staged preview: what Run sends once confirmed (None: nothing staged)."""
        return self.flow.staged

    def set_target(self, target: Any) -> None:
        """Act on another client (a LinkClient or a Gateway); the preview is dropped."""
        kind = client_kind(target)
        self.flow.set_client(target)
        self.kind = kind
        ops = [(op.label, op.name) for op in for_kind(kind, pickable=True)]
        self.operation.options = ops
        self.operation.value = ops[0][1]
        self._operation_changed()
        self.invalidate(None)
        self._set_running(False)
        self.check_usable()

    def _operation_changed(self) -> None:
        if not self._explicit and self.operation.value:
            self.rollout = default_rollout(self.operation.value)  # by what can be undone
            self._explicit = False
        self.invalidate("the operation changed")

    def _selection_changed(self) -> None:
        if self.plan is None or self.plan.kind == "run":  # a staged retry/resume does not follow the picker
            self.invalidate("the selection changed")

    def check_usable(self) -> bool:
        """False (and the panel disabled, with the reason) when its client was closed."""
        reason = self.flow.check_client()
        if reason:
            self._show_disabled()
        return reason is None

    def _show_disabled(self) -> None:
        self._clear_confirmation()
        for b in (self.preview_button, self.run_button, self.confirm, self.resume_button, self.operation):
            b.disabled = True
        self._say(f"disabled: {self.disabled_reason}; nothing was sent", error=True)

    @property
    def rollout(self) -> Rollout | None:
        """The rollout policy passed to the operation as ``rollout=`` (None: not passed)."""
        return self._rollout

    @rollout.setter
    def rollout(self, policy: Rollout | None) -> None:
        self._rollout = self._gated(policy)  # in a notebook, a person decides
        self.rollout_form.set(policy)
        self._show_rollout()

    def _rollout_form_changed(self) -> None:
        """The user edited the form: the policy (with the panel's gate) follows it."""
        self._explicit = True
        try:
            self._rollout = self.rollout_form.policy(gate=self.gate.ask)
        except InputError as e:
            self._rollout = None
            self._say(str(e), error=True)
        self._show_rollout()

    def _show_rollout(self) -> None:
        policy = self._rollout
        if policy is None:
            self.rollout_info.value = staging.NO_POLICY
        else:
            self.rollout_info.value = f"<b>Policy:</b> {html.escape(policy.describe())}"
        self.invalidate("the rollout policy changed")

    # -- preview -----------------------------------------------------------------------------
    def invalidate(self, why: str | None) -> None:
        """Drop the preview and the confirmation (the next Run needs a new preview).

        Ignored while a run goes on: that run keeps the plan it was started with."""
        if self.flow.running or self._worker.running:
            return
        had = self.flow.drop()
        self._clear_confirmation()
        if had and why:
            self.preview.value = f"<i>{html.escape(why)}: press Preview again.</i>"

    def _clear_confirmation(self) -> None:
        self.confirm.value = False
        self.confirm.disabled = True
        self.confirm.description = "I confirm"
        self.blast.value = ""
        self.blast.layout.display = "none"
        self.run_button.disabled = True

    def _policy(self) -> Rollout | bool:
        """What the panel passes as ``rollout=``: its policy, or False (none, explicitly)."""
        return self._rollout if self._rollout is not None else False

    def _gated(self, policy: Rollout | bool | None) -> Rollout | bool | None:
        """``policy`` with the panel's gate when it has a canary and "wait for me" is ticked."""
        if policy and policy.canary and policy.gate is None and self.rollout_form.wait_for_me.value:
            return dataclasses.replace(policy, gate=self.gate.ask)  # in a notebook, a person decides
        return policy

    def _parents_of(self, ids: list) -> dict[str, str] | None:
        """Fan-out: each id's gateway (None: one client carries them all)."""
        return None

    def _plan(self, op: Operation, ids: list, names: dict, policy: Rollout | bool | None, *, kind: str = "run",
              source: Any = None, chunk_size: int | None = None) -> Plan:
        return plan_for(self.target, op, ids, names, staging.rows_of(self.picker, ids), policy, kind=kind,
                        source=source, fleet=getattr(self.picker, "fleet", None),
                        chunk_size=chunk_size or self.chunk_size, parents=self._parents_of(ids),
                        hidden=getattr(self.picker, "hidden", 0) if kind == "run" else 0)

    def make_preview(self) -> Plan | None:
        """The dry run: count the devices, by product and by gateway, the chunks and the worst case."""
        if not self._free():
            return None
        op = operation(self.operation.value)
        p = self.picker
        if p is None:
            self._say("this panel has no picker: it only previews retries and resumes", error=True)
            return None
        if op.int_ids != p.int_ids:
            column = "'id'" if op.int_ids else "'client_id'"
            ids = "LINK device ids" if op.int_ids else "IoTDA device ids"
            self._say(f"{op.label} takes {ids}: build the picker with id_column={column}", error=True)
            return None
        if not p.selected:
            self.invalidate(None)
            self.preview.value = "<i>No devices selected.</i>"
            self._say("nothing selected", error=True)
            return None
        return self._stage(lambda: self._plan(op, p.selected, p.names(), self._policy()))

    def stage_retry(self, result: BatchResult) -> Plan | None:
        """Preview a retry of ``result``'s transient failures: Run (after the confirm and
        the guard) sends them as a new operation linked to it."""
        got = self._read(staging.retry_of, result)
        if got is None:
            return None
        op, ids, names = got
        # the policy set in the panel, else the registry's default for the retried operation
        policy = self._gated(self._policy() if self._explicit else default_rollout(op.name))
        return self._stage(lambda: self._plan(op, ids, names, policy or False, kind="retry", source=result))

    def stage_resume(self, op_id: str) -> Plan | None:
        """Preview a resume of operation ``op_id`` (stopped, cancelled or interrupted): its
        devices that never got an answer, in its chunk size, under the policy it ran with."""
        from romakit.replay import recorded_rollout

        got = self._read(staging.resume_of, op_id)
        if got is None:
            return None
        op, rec, todo = got
        policy = recorded_rollout(rec, gate=self.gate.ask if self.rollout_form.wait_for_me.value else None)
        size = min(max(int(rec["chunk_size"] or 0), 1), op.max_chunk)
        return self._stage(lambda: self._plan(op, todo, {}, policy, kind="resume", source=rec["op_id"],
                                              chunk_size=size))

    def _read(self, fetch: Callable[..., Any], *args: Any) -> Any:
        """``fetch(target, *args)`` (what a retry or resume sends); None when the panel is
        busy or the read is refused (said in the status line)."""
        try:
            return fetch(self.target, *args) if self._free() else None
        except RomakitError as e:
            return self._say(str(e), error=True) or None

    def _free(self) -> bool:
        """True when nothing runs and the client is usable; else the reason is said."""
        if self._worker.running:
            return self._say("an operation is running; wait for it or cancel it first", error=True)
        return self.check_usable()

    def _stage(self, make: Callable[[], Plan]) -> Plan | None:
        """Stage the plan ``make`` builds (a bad chunk size or policy is said, not raised)."""
        try:
            plan = make()
        except InputError as e:
            return self._say(str(e), error=True) or None
        refused = self.flow.stage(plan.batch, plan.what, plan)
        if refused:
            return self._say(refused, error=True) or None
        self.preview.value = plan_html(plan, operation(plan.operation), self.flow.guard) + self._takeover_check()
        self.confirm.description = f"I confirm: {plan.what}"
        self.confirm.value = False
        self.confirm.disabled = False
        self.blast.value = ""
        self.blast.layout.display = "" if self.flow.wants_count else "none"
        self.run_button.disabled = False
        what = "preview" if plan.kind == "run" else f"{plan.kind} preview"
        self._say(f"{what} ready: {plural(plan.devices, 'device')} in {plural(plan.chunks, 'chunk')}, at most "
                  f"{plan.worst_case:,} before the first stop can act; nothing sent yet")
        return plan

    def _takeover_check(self) -> str:
        """For a gateway that is ONLINE in IoTDA: the takeover box shown, and why."""
        note, box = staging.takeover_note(self.target) if self.kind == GATEWAY else ("", None)
        self.takeover.value = False
        self.takeover.layout.display = "none" if box is None else ""
        self.takeover.description = box or "Take over"
        return note

    # -- run -----------------------------------------------------------------------------------
    def run(self) -> bool:
        """Start the previewed operation in the background; False (with a message) if refused."""
        if self._worker.running:
            return self._say("an operation is already running", error=True)
        plan = self.plan
        stale = plan is not None and plan.kind == "run" and (plan.operation != self.operation.value or set(
            plan.ids) != set(self.picker.selected) or plan.devices != len(self.picker.selected))
        self.flow.confirm(self.confirm.value)
        self.flow.type_count(self.blast.value)
        takeover = self.takeover.layout.display != "none"
        unticked = (f"{self.target.target} is ONLINE in IoTDA: tick '{self.takeover.description}' to log in "
                    "anyway (it disconnects the field gateway)") if takeover and not self.takeover.value else None
        refused = self.flow.start(stale=stale, unticked=unticked)
        if refused:
            if self.disabled_reason:
                self._show_disabled()
                return False
            if stale:
                self._clear_confirmation()
            return self._say(refused, error=True)
        assert plan is not None
        if takeover:
            self.target.takeover = True
        token = CancelToken()
        self.token = token
        self.result = None
        self.error = None
        self.progress.max = max(plan.devices, 1)
        self.progress.value = 0
        self.progress.bar_style = "info"
        self.progress_label.value = f"0/{plan.devices:,} devices, 0/{plan.chunks:,} chunks"
        self._set_running(True)
        self._say(f"running {plan.operation} ({plan.kind}) on {plan.devices:,} devices…")
        self._worker.start(lambda: self._work(plan, token))
        return True

    def _work(self, plan: Plan, token: CancelToken) -> None:
        result = None
        try:
            if self.flow.probe():  # before anything is sent
                self._show_disabled()
                return
            if self.kind == GATEWAY and callable(getattr(self.target, "connect", None)):
                self.target.connect()  # no-op when already connected
            result = staging.send(self.target, plan, self.flow.gated(plan.policy), token, self._on_progress)
            self.result = result
            c = result.counts
            parts = ", ".join(f"{n:,} {o}" for o, n in c.items() if n)
            stop = f" <b>stopped:</b> {html.escape(str(result.stopped))}" if result.stopped else ""
            self.progress.bar_style = "success" if result.ok else "warning"
            dropped = staging.after_run(self.picker, self.refresh, result)
            self._say(f"done: {parts} (op {html.escape(result.op_id)}).{stop}{dropped}", raw=True)
        except Exception as e:  # noqa: BLE001 - shown to the user, kept in .error
            self.error = e
            self.progress.bar_style = "danger"
            self._say(f"the operation failed: {type(e).__name__}: {e}", error=True)
        finally:
            self.flow.finish(stopped=result is None or bool(result.stopped))
            if self.disabled_reason is None:
                self._clear_confirmation()  # the next run needs a new preview and confirmation
            self._set_running(False)
            self._notify_done(result)

    def _notify_done(self, result: BatchResult | None) -> None:
        if result is not None and self.results is not None:
            try:
                self.results.show(result, target=self.target)
            except Exception:  # noqa: BLE001 - a display problem must not hide the result
                log.exception("ResultsView could not show the result")
        for cb in list(self._done_callbacks):
            try:
                cb(result)
            except Exception:  # noqa: BLE001
                log.exception("ActionPanel on_done callback failed")

    def _on_progress(self, done: int, total: int) -> None:
        """The engine's progress callable: called after every chunk (on romakit's loop)."""
        self.progress.max = max(total, 1)
        self.progress.value = min(done, total)
        self.progress_label.value = staging.progress_text(self.plan, done, total)
        for cb in list(self._progress_callbacks):
            try:
                cb(done, total)
            except Exception:  # noqa: BLE001 - never let a listener stop the batch
                log.exception("ActionPanel progress callback failed")

    def cancel(self) -> None:
        """Stop sending further chunks; chunks already sent complete and are recorded."""
        if self.token is not None and self._worker.running:
            self.token.cancel("cancelled in the ActionPanel")
            self.cancel_button.disabled = True
            self._say("cancelling: chunks in flight finish, the rest end 'skipped'…")

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the background run is over (True), or ``timeout`` seconds pass (False)."""
        return self._worker.wait(timeout)

    @property
    def running(self) -> bool:
        return self._worker.running

    def on_done(self, callback: Callable[[BatchResult | None], None]) -> None:
        """Call ``callback(result)`` after each run (``None`` when it raised)."""
        self._done_callbacks.append(callback)

    def on_progress(self, callback: Callable[[int, int], None]) -> None:
        """Call ``callback(done, total)`` after every chunk, on romakit's event loop thread:
        keep it quick (pressing Cancel from here is fine)."""
        self._progress_callbacks.append(callback)

    # -- helpers ----------------------------------------------------------------------------------
    def _gate_waiting(self, report: Any) -> None:
        advice = "Stop is recommended" if not report.passed else "it looks healthy"
        self._say(f"waiting at the canary gate for your decision below ({report}; {advice}); nothing more is sent "
                  "until then")

    def _count_typed(self) -> None:
        """The typed count: once it is right, a refusal asking for it is taken back."""
        plan, guard = self.plan, self.flow.guard
        if plan is not None and self.message == guard.ask(plan.batch) and guard.counted(plan.batch, self.blast.value):
            self._say(f"{plan.devices:,} typed: press Run")

    def _set_running(self, running: bool) -> None:
        off = self.disabled_reason is not None
        for control in (self.preview_button, self.resume_button, self.operation):
            control.disabled = off or running
        self.run_button.disabled = self.confirm.disabled = off or running or self.plan is None
        self.cancel_button.disabled = not running

    def __repr__(self) -> str:
        state = "running" if self.running else ("previewed" if self.plan else "idle")
        return f"<ActionPanel: {self.operation.value} on {self.target.target} ({state})>"
