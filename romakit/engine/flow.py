"""The safety flow of a send from a notebook: preview, confirm, guard, run.

:class:`SafetyFlow` is the state machine the ``ActionPanel`` displays; it imports no
widget, so its rules are tested on their own::

    idle --stage--> previewed --confirm--> confirmed --start--> running <--> gate
      ^                |  ^                    |                   |
      +----drop--------+  +------unconfirm-----+                   +--> done | stopped
    any state --disable--> disabled (a closed client; an unreachable service, found by
    the probe just before sending); set_client starts again at idle

A run starts only from ``confirmed``, and only when the guard's typed count is right;
a closed client refuses at every step, before anything is sent.
"""

from __future__ import annotations

import dataclasses
import socket
import threading
from typing import Any
from urllib.parse import urlsplit

from romakit.engine.guard import Guard
from romakit.engine.plan import BatchPlan
from romakit.engine.rollout import CanaryReport, Rollout
from romakit.operations import LINK, client_kind

IDLE, PREVIEWED, CONFIRMED, RUNNING, GATE, DONE, STOPPED, DISABLED = (
    "idle", "previewed", "confirmed", "running", "gate", "done", "stopped", "disabled")
#: state -> the states it may go to
MOVES = {
    IDLE: {IDLE, PREVIEWED, DISABLED},
    PREVIEWED: {IDLE, PREVIEWED, CONFIRMED, DISABLED},
    CONFIRMED: {IDLE, PREVIEWED, CONFIRMED, RUNNING, DISABLED},
    RUNNING: {GATE, DONE, STOPPED, DISABLED},
    GATE: {RUNNING},
    DONE: {IDLE, PREVIEWED, DISABLED},
    STOPPED: {IDLE, PREVIEWED, DISABLED},
    DISABLED: {DISABLED},
}
#: seconds a reachability probe may take
PROBE_TIMEOUT = 3.0


def closed_reason(client: Any) -> str | None:
    """Why ``client`` can no longer send (it was closed), or None."""
    if getattr(client, "closed", False) is True:
        return f"this {type(client).__name__} for {client.target} was closed: make a new client (and panel) to act again"
    return None


def unreachable_reason(client: Any) -> str | None:
    """Why ``client``'s service cannot be reached now (a TCP connect, no request), or None.
    Only LINK is probed: a Gateway proves it reaches its broker by connecting."""
    reason = closed_reason(client)
    if reason or client_kind(client) != LINK:
        return reason
    url = urlsplit(str(client.endpoint))
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((url.hostname, port), timeout=PROBE_TIMEOUT).close()
    except OSError as e:
        return (f"cannot reach {url.scheme}://{url.hostname}:{port} ({type(e).__name__}: {e.strerror or e}); "
                "is the sandbox (or the network) gone?")
    return None


class SafetyFlow:
    """One panel's way from a preview to a run, for ``client`` under ``guard``.

    Each step returns None when it went ahead, else why it was refused (a sentence for
    the person). ``staged`` is what the panel shows for the plan (its preview)."""

    def __init__(self, client: Any, guard: Guard) -> None:
        self.client = client
        self.guard = guard
        self.state = IDLE
        self.plan: BatchPlan | None = None
        self.what = ""
        self.staged: Any = None
        self.typed = ""
        #: why the flow is disabled, or None
        self.disabled_reason: str | None = None
        self._lock = threading.RLock()

    def _to(self, state: str) -> None:
        if state not in MOVES[self.state]:
            raise AssertionError(f"safety flow: {self.state} -> {state} is not a move")
        self.state = state

    @property
    def running(self) -> bool:
        return self.state in (RUNNING, GATE)

    def _forget(self) -> None:
        self.plan, self.staged, self.typed = None, None, ""

    def _blocked(self, running: str) -> str | None:
        """``running`` while a run goes on, else the client's closed reason, else None."""
        return running if self.running else self.check_client()

    def check_client(self) -> str | None:
        """The client's closed reason (the flow is then disabled), or None."""
        reason = self.disabled_reason or closed_reason(self.client)
        if reason:
            self.disable(reason)
        return reason

    def disable(self, reason: str) -> None:
        """Nothing more is sent through this flow: the plan is dropped, the reason kept."""
        with self._lock:
            self.disabled_reason = reason
            self._forget()
            if self.state != DISABLED:
                self.state = DISABLED  # from any state: a run in progress was refused before sending

    def set_client(self, client: Any) -> None:
        """Act through another client: the plan is dropped, a disabled flow starts again."""
        with self._lock:
            if self.running:
                raise RuntimeError("cannot change the target while an operation runs; cancel or wait first")
            self.client = client
            self.disabled_reason = None
            self.state = IDLE
            self._forget()

    # -- before the run ---------------------------------------------------------------------
    def stage(self, plan: BatchPlan, what: str, staged: Any = None) -> str | None:
        """Show ``plan`` (``what``: what it does, in words): ``previewed``, unconfirmed."""
        with self._lock:
            refused = self._blocked("an operation is running; wait for it or cancel it first")
            if refused:
                return refused
            self._to(PREVIEWED)
            self.plan, self.what, self.staged, self.typed = plan, what, staged, ""
            return None

    def drop(self) -> bool:
        """Forget the plan and its confirmation (ignored while running); True if one was staged."""
        with self._lock:
            if self.running or self.state == DISABLED:
                return False
            had = self.plan is not None
            self._forget()
            self._to(IDLE)
            return had

    def confirm(self, ticked: bool) -> None:
        """The person ticks (or unticks) the confirmation of the staged plan."""
        with self._lock:
            if self.state in (PREVIEWED, CONFIRMED):
                self._to(CONFIRMED if ticked else PREVIEWED)

    def type_count(self, text: str) -> None:
        """What the person typed in the count box."""
        self.typed = text or ""

    @property
    def wants_count(self) -> bool:
        return self.plan is not None and self.guard.wants_count(self.plan)

    # -- the run ---------------------------------------------------------------------------
    def start(self, *, stale: bool = False, unticked: str | None = None) -> str | None:
        """``running`` if the guard lets the staged plan go; else why not. ``stale``: what
        the plan was made from changed since (the panel's selection); ``unticked``: a
        further consent the run needs and does not have, in words (a gateway's takeover)."""
        with self._lock:
            refused = self._blocked("an operation is already running")
            if refused:
                return refused
            plan = self.plan
            if plan is None:
                return "press Preview first: Run sends exactly what the preview showed"
            if stale:
                self.drop()
                return "the selection changed since the preview: press Preview again"
            if self.state != CONFIRMED:
                return f"tick the confirm box first: this will {self.what}"
            if not self.guard.counted(plan, self.typed):
                return self.guard.ask(plan)
            if unticked:
                return unticked
            self._to(RUNNING)
            return None

    def gated(self, policy: Rollout | bool | None) -> Rollout | bool | None:
        """``policy`` with its gate passing through ``gate`` while a person decides."""
        if not isinstance(policy, Rollout) or policy.gate is None:
            return policy
        ask = policy.gate

        def gate(report: CanaryReport) -> Any:
            with self._lock:
                if self.state == RUNNING:
                    self._to(GATE)
            try:
                return ask(report)
            finally:
                with self._lock:
                    if self.state == GATE:
                        self._to(RUNNING)

        return dataclasses.replace(policy, gate=gate)

    def finish(self, stopped: bool) -> None:
        """The run is over: ``stopped`` (cancelled, aborted, refused at the gate, raised)
        or ``done``; the plan is spent (the next run needs a new preview)."""
        with self._lock:
            if self.state == DISABLED:
                return
            self._to(STOPPED if stopped else DONE)
            self._forget()

    def probe(self) -> str | None:
        """Just before sending: why the client's service cannot be reached (the flow is
        then disabled), or None."""
        reason = unreachable_reason(self.client)
        if reason:
            self.disable(reason)
        return reason

    def __repr__(self) -> str:
        return f"<SafetyFlow: {self.state}>"


__all__ = ["CONFIRMED", "DISABLED", "DONE", "GATE", "IDLE", "PREVIEWED", "RUNNING", "STOPPED",
           "SafetyFlow", "closed_reason", "unreachable_reason"]
