"""``ActionPanel``: preview, confirm and run a batch operation on the picked devices.

The flow is deliberately stepwise: choose the operation, press *Preview* (a dry
run: nothing is sent), tick the confirm box (and, above the blast radius, type the
number of devices), press *Run*. The run goes on a background thread so the kernel
stays free; the engine's progress callable moves the bar after every chunk and
*Cancel* presses a :class:`~romakit.CancelToken` (chunks in flight finish and are
recorded, the rest end ``skipped``). The panel never speaks HTTP or MQTT itself: it
calls the client's own batch method.
"""

from __future__ import annotations

import dataclasses
import html
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import ipywidgets as w

from romakit.engine import CancelToken
from romakit.errors import InputError
from romakit.operations import GATEWAY, LINK, client_kind, for_kind, operation
from romakit.widgets._base import Widget, Worker
from romakit.widgets.canary_gate import CanaryGate
from romakit.widgets.picker import DevicePicker
from romakit.widgets.preview import Plan, chunk_size_of, make_plan, plan_html, plural
from romakit.widgets.rollout_form import RolloutForm

if TYPE_CHECKING:  # pragma: no cover
    from romakit.engine.rollout import Rollout
    from romakit.results import BatchResult

log = logging.getLogger("romakit.widgets")

#: devices above which the user must also type the number to confirm
DEFAULT_BLAST_RADIUS = 1000
#: the kind of a client, as the registry reads it (kept under its old name here)
target_kind = client_kind

__all__ = ["DEFAULT_BLAST_RADIUS", "GATEWAY", "LINK", "ActionPanel", "Plan", "Worker", "chunk_size_of", "target_kind"]


class ActionPanel(Widget):
    """Choose an operation, preview it, confirm it and run it on ``picker.selected``.

    ``target`` is a LinkClient (force offline, delete devices) or a Gateway (delete
    child devices; the panel connects it if needed). ``blast_radius``: above this many
    devices the user must also type the number of devices. ``results`` is an optional
    :class:`ResultsView` shown each finished result; ``on_done`` callbacks get the result.
    Drive it from Python: set ``panel.operation.value``, ``panel.confirm.value``, call
    ``panel.preview_button.click()`` / ``run_button.click()`` and ``panel.wait(timeout)``.
    """

    def __init__(
        self,
        target: Any,
        picker: DevicePicker,
        *,
        blast_radius: int = DEFAULT_BLAST_RADIUS,
        results: Any = None,
        rollout: Rollout | None = None,
    ) -> None:
        if blast_radius < 0:
            raise InputError(f"blast_radius must be >= 0, got {blast_radius!r}")
        self.picker = picker
        self.blast_radius = blast_radius
        self.results = results
        self.plan: Plan | None = None
        #: the last run's BatchResult (None before the first run or when it raised)
        self.result: BatchResult | None = None
        #: the exception of the last run, if it raised instead of returning a result
        self.error: BaseException | None = None
        self.token: CancelToken | None = None
        self.message = ""
        self._rollout: Rollout | None = None
        self._worker = Worker("romakit-action")
        self._done_callbacks: list[Callable[[BatchResult | None], None]] = []
        self._progress_callbacks: list[Callable[[int, int], None]] = []
        self._chunks_done = 0

        self.operation = w.Dropdown(description="Operation", layout=w.Layout(width="320px"))
        self.preview_button = w.Button(description="Preview (dry run)", icon="search", layout=w.Layout(width="auto"))
        self.preview = w.HTML("<i>Pick devices, then press Preview: nothing is sent before Run.</i>")
        self.confirm = w.Checkbox(description="I confirm", indent=False, disabled=True, layout=w.Layout(width="auto"))
        self.blast = w.Text(
            description="Type count",
            placeholder="number of devices",
            layout=w.Layout(width="300px", display="none"),
        )
        #: shown when the gateway is ONLINE in IoTDA: logging in as it knocks the field gateway off
        self.takeover = w.Checkbox(description="Take over", indent=False, value=False,
                                   layout=w.Layout(width="auto", display="none"))
        self.run_button = w.Button(description="Run", button_style="danger", icon="play", disabled=True)
        self.cancel_button = w.Button(description="Cancel", icon="stop", disabled=True)
        self.progress = w.IntProgress(min=0, max=1, value=0, description="Progress", layout=w.Layout(width="420px"))
        self.progress_label = w.Label()
        self.status = w.HTML()
        # -- rollout policy: the form (defaults shown, editable) and the canary gate -------------
        self.rollout_info = w.HTML()
        self.rollout_form = RolloutForm(rollout)
        self.gate = CanaryGate()
        self.rollout_box = w.VBox([self.rollout_info, self.rollout_form.widget, self.gate.widget])
        self.rollout_section = w.Accordion(children=[self.rollout_box], titles=("Rollout policy",))
        self.rollout_form.on_change(self._rollout_form_changed)

        self.operation.observe(lambda _c: self.invalidate("the operation changed"), "value")
        self.preview_button.on_click(lambda _b: self.make_preview())
        self.run_button.on_click(lambda _b: self.run())
        self.cancel_button.on_click(lambda _b: self.cancel())
        picker.on_selection_change(lambda _p: self.invalidate("the selection changed"))

        self.widget = w.VBox(
            [
                w.HBox([self.operation, self.preview_button]),
                self.preview,
                self.rollout_section,
                w.HBox([self.confirm, self.blast]),
                self.takeover,
                w.HBox([self.run_button, self.cancel_button]),
                w.HBox([self.progress, self.progress_label]),
                self.status,
            ]
        )
        self.set_target(target)
        self.rollout = rollout

    # -- target ----------------------------------------------------------------------------
    def set_target(self, target: Any) -> None:
        """Act on another client (a LinkClient or a Gateway); the preview is dropped."""
        if self._worker.running:
            raise RuntimeError("cannot change the target while an operation runs; cancel or wait first")
        kind = client_kind(target)
        self.target = target
        self.kind = kind
        ops = [(op.label, op.name) for op in for_kind(kind, pickable=True)]
        self.operation.options = ops
        self.operation.value = ops[0][1]
        self.invalidate(None)

    @property
    def rollout(self) -> Rollout | None:
        """The rollout policy passed to the operation as ``rollout=`` (None: not passed)."""
        return self._rollout

    @rollout.setter
    def rollout(self, policy: Rollout | None) -> None:
        if policy is not None and policy.canary and policy.gate is None and self.rollout_form.wait_for_me.value:
            policy = dataclasses.replace(policy, gate=self.gate.ask)  # in a notebook, a person decides
        self._rollout = policy
        self.rollout_form.set(policy)
        self._show_rollout()

    def _rollout_form_changed(self) -> None:
        """The user edited the form: the policy (with the panel's gate) follows it."""
        try:
            self._rollout = self.rollout_form.policy(gate=self.gate.ask)
        except InputError as e:
            self._rollout = None
            self._say(str(e), error=True)
        self._show_rollout()

    def _show_rollout(self) -> None:
        policy = self._rollout
        if policy is None:
            self.rollout_info.value = "<i>No rollout policy: every chunk is sent as fast as the client allows.</i>"
        else:
            describe = getattr(policy, "describe", None)
            text = describe() if callable(describe) else repr(policy)
            self.rollout_info.value = f"<b>Policy:</b> {html.escape(text)}"
        self.invalidate("the rollout policy changed")

    # -- preview -----------------------------------------------------------------------------
    def invalidate(self, why: str | None) -> None:
        """Drop the preview and the confirmation (the next Run needs a new preview).

        Ignored while a run goes on: that run keeps the plan it was started with."""
        if self._worker.running:
            return
        self._drop_plan(why)

    def _drop_plan(self, why: str | None) -> None:
        had = self.plan is not None
        self.plan = None
        self.confirm.value = False
        self.confirm.disabled = True
        self.confirm.description = "I confirm"
        self.blast.value = ""
        self.blast.layout.display = "none"
        self.run_button.disabled = True
        if had and why:
            self.preview.value = f"<i>{html.escape(why)}: press Preview again.</i>"

    def make_preview(self) -> Plan | None:
        """The dry run: count the devices, by product and by gateway, and the chunks."""
        if self._worker.running:
            self._say("an operation is running; wait for it or cancel it first", error=True)
            return None
        op = operation(self.operation.value)
        p = self.picker
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
        plan = make_plan(self.target, op, p, self._rollout)
        self.plan = plan
        self.preview.value = plan_html(plan, op, self.blast_radius) + self._takeover_check()
        self.confirm.description = f"I confirm: {plan.what}"
        self.confirm.value = False
        self.confirm.disabled = False
        self.blast.value = ""
        self.blast.layout.display = "" if plan.devices > self.blast_radius else "none"
        self.run_button.disabled = False
        self._say(f"preview ready: {plural(plan.devices, 'device')} in {plural(plan.chunks, 'chunk')}; nothing sent yet")
        return plan

    def _takeover_check(self) -> str:
        """For a gateway that is not connected: ask the inventory whether it is ONLINE; if so,
        show the takeover box, saying what it does to the field gateway."""
        self.takeover.layout.display, self.takeover.value = "none", False
        check = getattr(self.target, "check_takeover", None)
        if self.kind != GATEWAY or not callable(check) or getattr(self.target, "connected", False):
            return ""
        try:
            check()
        except Exception as e:  # noqa: BLE001 - TakeoverRefused, or the inventory unreachable: say it
            if type(e).__name__ != "TakeoverRefused":
                return f"<p><i>could not read the gateway's status: {html.escape(str(e))[:200]}</i></p>"
            gid = html.escape(str(self.target.target))
            self.takeover.description = (f"Take over {gid}: disconnect the field gateway for this run "
                                         "(IoTDA allows one connection per device)")
            self.takeover.layout.display = ""
            return (f"<p style='color:#b00'><b>{gid} is ONLINE in IoTDA</b>: the field gateway is connected. "
                    "Logging in as it disconnects it, and its children stop reporting until it reconnects "
                    "after the run.</p>")
        return ""

    # -- run -----------------------------------------------------------------------------------
    def run(self) -> bool:
        """Start the previewed operation in the background; False (with a message) if refused."""
        if self._worker.running:
            return self._refuse("an operation is already running")
        plan = self.plan
        if plan is None:
            return self._refuse("press Preview first: Run sends exactly what the preview showed")
        if plan.ids != self.picker.selected or plan.operation != self.operation.value:
            self.invalidate("the selection changed")
            return self._refuse("the selection changed since the preview: press Preview again")
        if not self.confirm.value:
            return self._refuse(f"tick the confirm box first: this will {plan.what}")
        if plan.devices > self.blast_radius:
            typed = self.blast.value.strip().replace(",", "").replace("_", "")
            if typed != str(plan.devices):
                return self._refuse(
                    f"{plan.devices:,} devices is above the blast radius of {self.blast_radius:,}: "
                    f"type {plan.devices} in the box to confirm"
                )
        if self.takeover.layout.display != "none":
            if not self.takeover.value:
                return self._refuse(f"{self.target.target} is ONLINE in IoTDA: tick '{self.takeover.description}' "
                                    "to log in anyway (it disconnects the field gateway)")
            self.target.takeover = True
        fn = getattr(self.target, plan.operation)
        token = CancelToken()
        self.token = token
        self.result = None
        self.error = None
        self._chunks_done = 0
        self.progress.max = max(plan.devices, 1)
        self.progress.value = 0
        self.progress.bar_style = "info"
        self.progress_label.value = f"0/{plan.devices:,} devices, 0/{plan.chunks:,} chunks"
        self._set_running(True)
        self._say(f"running {plan.operation} on {plan.devices:,} devices…")
        self._worker.start(lambda: self._work(plan, fn, token))
        return True

    def _work(self, plan: Plan, fn: Any, token: CancelToken) -> None:
        result = None
        try:
            if self.kind == GATEWAY and callable(getattr(self.target, "connect", None)):
                self.target.connect()  # no-op when already connected
            kwargs: dict[str, Any] = {"progress": self._on_progress, "cancel": token}
            if plan.names:
                kwargs["names"] = plan.names
            if self._rollout is not None:
                kwargs["rollout"] = self._rollout
            result = fn(plan.ids, **kwargs)
            self.result = result
            c = result.counts
            parts = ", ".join(f"{n:,} {o}" for o, n in c.items() if n)
            stop = f" <b>stopped:</b> {html.escape(str(result.stopped))}" if result.stopped else ""
            self.progress.bar_style = "success" if result.ok else "warning"
            self._say(f"done: {parts} (op {html.escape(result.op_id)}).{stop}", raw=True)
        except Exception as e:  # noqa: BLE001 - shown to the user, kept in .error
            self.error = e
            self.progress.bar_style = "danger"
            self._say(f"the operation failed: {type(e).__name__}: {e}", error=True)
        finally:
            self._drop_plan(None)  # the next run needs a new preview and confirmation
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
        self._chunks_done += 1
        self.progress.max = max(total, 1)
        self.progress.value = min(done, total)
        chunks = self.plan.chunks if self.plan is not None else "?"
        self.progress_label.value = f"{done:,}/{total:,} devices, {self._chunks_done:,}/{chunks} chunks"
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
    def _set_running(self, running: bool) -> None:
        self.run_button.disabled = running or self.plan is None
        self.cancel_button.disabled = not running
        self.preview_button.disabled = running
        self.operation.disabled = running
        self.confirm.disabled = running or self.plan is None

    def _refuse(self, message: str) -> bool:
        return self._say(message, error=True)

    def __repr__(self) -> str:
        state = "running" if self.running else ("previewed" if self.plan else "idle")
        return f"<ActionPanel: {self.operation.value} on {self.target.target} ({state})>"
