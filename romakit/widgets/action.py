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
import inspect
import logging
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import ipywidgets as w

from romakit.engine import CancelToken
from romakit.errors import InputError
from romakit.widgets.canary_gate import CanaryGate
from romakit.widgets.picker import DevicePicker, _bundle
from romakit.widgets.rollout_form import RolloutForm

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from romakit.engine.rollout import Rollout
    from romakit.results import BatchResult

log = logging.getLogger("romakit.widgets")

LINK, GATEWAY = "link", "gateway"


@dataclass(frozen=True)
class Operation:
    """A batch operation the panel offers: method name, label, what it does, which client."""

    method: str
    label: str
    verb: str  # "{n}" and "{target}" are filled in
    kind: str


OPERATIONS = {
    op.method: op
    for op in (
        Operation("force_offline", "Force offline", "force {n} devices offline", LINK),
        Operation("delete_devices", "Delete devices", "permanently delete {n} devices from LINK instance {target}", LINK),
        Operation("delete_sub_devices", "Delete child devices", "permanently delete {n} child devices of gateway {target}", GATEWAY),
    )
}
#: devices above which the user must also type the number to confirm
DEFAULT_BLAST_RADIUS = 1000
_FALLBACK_CHUNK = 50
_TOP = 10


def target_kind(target: Any) -> str:
    """``"link"`` for a LinkClient-like object, ``"gateway"`` for a Gateway-like one."""
    if callable(getattr(target, "force_offline", None)) and callable(getattr(target, "devices", None)):
        return LINK
    if callable(getattr(target, "delete_sub_devices", None)):
        return GATEWAY
    raise InputError(f"target must be a romakit LinkClient or Gateway, got {type(target).__name__}")


def target_name(target: Any) -> str:
    """The instance id (LINK) or gateway device id the operation acts on."""
    return str(getattr(target, "instance_id", None) or getattr(target, "device_id", None) or type(target).__name__)


def chunk_size_of(target: Any, method: str) -> int:
    """The chunk size the client will use for ``method`` (for the preview)."""
    size = getattr(target, "chunk_size", None)
    if isinstance(size, int) and not isinstance(size, bool) and size > 0:
        return size
    try:
        default = inspect.signature(getattr(target, method)).parameters["chunk_size"].default
    except (KeyError, TypeError, ValueError, AttributeError):
        return _FALLBACK_CHUNK
    return default if isinstance(default, int) and default > 0 else _FALLBACK_CHUNK


class Worker:
    """Runs one job at a time on a daemon thread; :meth:`wait` blocks on an Event."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._done = threading.Event()
        self._done.set()

    @property
    def running(self) -> bool:
        return not self._done.is_set()

    def start(self, job: Callable[[], None]) -> None:
        if self.running:
            raise RuntimeError(f"{self.name} is already running")
        self._done.clear()
        threading.Thread(target=self._main, args=(job,), name=self.name, daemon=True).start()

    def _main(self, job: Callable[[], None]) -> None:
        try:
            job()
        except Exception:  # noqa: BLE001 - jobs report their own errors; never kill silently
            log.exception("%s failed", self.name)
        finally:
            self._done.set()

    def wait(self, timeout: float | None = None) -> bool:
        """True once nothing runs (at once when nothing was started); False on timeout."""
        return self._done.wait(timeout)


@dataclass
class Plan:
    """What a dry run found: exactly what *Run* will send."""

    operation: str
    target: str
    ids: list
    names: dict
    chunk_size: int
    chunks: int
    by_product: pd.Series
    by_parent: pd.Series
    what: str = ""  # "force 1,234 devices offline"
    rollout: str | None = None

    @property
    def devices(self) -> int:
        return len(self.ids)


class ActionPanel:
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
        kind = target_kind(target)
        self.target = target
        self.kind = kind
        ops = [(op.label, op.method) for op in OPERATIONS.values() if op.kind == kind]
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
            return self._say("an operation is running; wait for it or cancel it first", error=True)
        method = self.operation.value
        op = OPERATIONS[method]
        p = self.picker
        if op.kind == LINK and not p._int_ids:
            return self._say(f"{op.label} takes LINK device ids: build the picker with id_column='id'", error=True)
        if op.kind == GATEWAY and p._int_ids:
            return self._say(f"{op.label} takes IoTDA device ids: build the picker with id_column='client_id'", error=True)
        ids = p.selected
        if not ids:
            self.invalidate(None)
            self.preview.value = "<i>No devices selected.</i>"
            return self._say("nothing selected", error=True)
        frame = p.selected_frame
        size = chunk_size_of(self.target, method)
        canary = min(getattr(self._rollout, "canary", 0) or 0, len(ids))
        chunks = math.ceil(canary / size) + math.ceil((len(ids) - canary) / size)
        describe = getattr(self._rollout, "describe", None)
        plan = Plan(
            operation=method,
            target=target_name(self.target),
            ids=ids,
            names=p.names(),
            chunk_size=size,
            chunks=chunks,
            by_product=_counts(frame, "product_name", "(unknown product)"),
            by_parent=_counts(frame, "parent_device_name", "(no gateway)"),
            rollout=describe() if callable(describe) else None,
        )
        plan.what = op.verb.format(n=f"{plan.devices:,}", target=plan.target)
        self.plan = plan
        self.preview.value = _plan_html(plan, op, self.blast_radius)
        self.confirm.description = f"I confirm: {plan.what}"
        self.confirm.value = False
        self.confirm.disabled = False
        self.blast.value = ""
        self.blast.layout.display = "" if plan.devices > self.blast_radius else "none"
        self.run_button.disabled = False
        self._say(f"preview ready: {_n(plan.devices, 'device')} in {_n(plan.chunks, 'chunk')}; nothing sent yet")
        return plan

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
        self._say(message, error=True)
        return False

    def _say(self, message: str, *, error: bool = False, raw: bool = False) -> None:
        self.message = message if not raw else _strip_tags(message)
        text = message if raw else html.escape(message)
        self.status.value = f"<span style='color:#b00'>{text}</span>" if error else text
        return None

    def __repr__(self) -> str:
        state = "running" if self.running else ("previewed" if self.plan else "idle")
        return f"<ActionPanel: {self.operation.value} on {target_name(self.target)} ({state})>"

    def _repr_mimebundle_(self, **kwargs: Any) -> dict:
        return _bundle(self.widget, repr(self), **kwargs)


def _counts(frame: pd.DataFrame, column: str, missing: str) -> pd.Series:
    import pandas as pd

    if column not in frame.columns:
        return pd.Series(dtype="int64", name="devices")
    s = frame[column].astype("object").where(frame[column].notna(), missing)
    return s.value_counts().rename("devices")


def _table_html(counts: pd.Series, title: str) -> str:
    rows = counts.head(_TOP)
    body = "".join(f"<tr><td>{html.escape(str(k))}</td><td style='text-align:right'>{v:,}</td></tr>" for k, v in rows.items())
    if len(counts) > _TOP:
        rest = counts.iloc[_TOP:]
        body += f"<tr><td><i>{len(rest):,} others</i></td><td style='text-align:right'>{int(rest.sum()):,}</td></tr>"
    return f"<table><thead><tr><th>{html.escape(title)}</th><th>devices</th></tr></thead><tbody>{body}</tbody></table>"


def _plan_html(plan: Plan, op: Operation, blast_radius: int) -> str:
    guard = ""
    if plan.devices > blast_radius:
        guard = (f"<p><b>{plan.devices:,} devices is above the blast radius of {blast_radius:,}</b>: "
                 f"tick the box and type {plan.devices} to confirm.</p>")
    rollout = f"<p>Rollout: {html.escape(plan.rollout)}</p>" if plan.rollout else ""
    return (
        f"<p><b>Dry run</b> (nothing sent): {html.escape(op.label)} on <code>{html.escape(plan.target)}</code>: "
        f"<b>{_n(plan.devices, 'device')}</b> in {_n(plan.chunks, 'chunk')} of up to {plan.chunk_size:,}.</p>"
        f"{rollout}{guard}"
        "<div style='display:flex;gap:2em'>"
        f"{_table_html(plan.by_product, 'product')}{_table_html(plan.by_parent, 'gateway (parent)')}</div>"
    )


def _n(count: int, word: str) -> str:
    return f"{count:,} {word}{'' if count == 1 else 's'}"


def _strip_tags(text: str) -> str:
    import re

    return html.unescape(re.sub(r"<[^>]+>", "", text))
