"""``CanaryGate``: show the canary's outcome and wait for a person to continue or stop."""

from __future__ import annotations

import html
import logging
import threading
from collections.abc import Callable

import ipywidgets as w

from romakit.engine.rollout import CanaryReport
from romakit.widgets._base import Widget


class CanaryGate(Widget):
    """The gate of a rollout, as buttons.

    ``ask(report)`` is handed to :class:`~romakit.Rollout` as its ``gate``: the batch
    engine calls it (off the kernel's thread) once the canary is done; it shows the
    canary's counts and blocks until *Continue* or *Stop* is pressed (or ``timeout``
    passes: then it stops). Drive it from Python: ``gate.asked.wait(t)`` then
    ``gate.continue_button.click()``.

    When the canary failed, *Stop* is the main (primary-styled) action and *Continue*
    a plain button; ``on_ask(cb)`` lets the panel say in its status line that the run
    waits for the decision.
    """

    def __init__(self, timeout: float = 3600.0) -> None:
        self.timeout = timeout
        self.report: CanaryReport | None = None
        #: set while a canary waits for a decision
        self.asked = threading.Event()
        self._decided = threading.Event()
        self._go = False
        self._ask_callbacks: list[Callable[[CanaryReport], None]] = []
        self.info = w.HTML()
        self.continue_button = w.Button(description="Continue the rollout", button_style="success", icon="play", disabled=True,
                                          layout=w.Layout(width="auto"))
        self.stop_button = w.Button(description="Stop here", button_style="warning", icon="stop", disabled=True,
                                      layout=w.Layout(width="auto"))
        self.continue_button.on_click(lambda _b: self.decide(True))
        self.stop_button.on_click(lambda _b: self.decide(False))
        self.widget = w.VBox([self.info, w.HBox([self.continue_button, self.stop_button])])
        self.widget.layout.display = "none"

    def ask(self, report: CanaryReport) -> bool:
        """Show ``report`` and wait for the decision (True: continue)."""
        self.report = report
        self._decided.clear()
        advice = "looks healthy" if report.passed else "is above the abort threshold"
        counts = ", ".join(f"{n:,} {o}" for o, n in report.counts.items() if n)
        self.info.value = (
            f"<b>Canary done</b>: {html.escape(counts)}. {html.escape(str(report))} — it {advice}. "
            "Continue with the rest, or stop (the rest ends <code>skipped</code> and can be resumed)."
        )
        self.widget.layout.display = ""
        # the main (primary-styled) action is the safe one when the canary failed
        self.continue_button.button_style = "success" if report.passed else ""
        self.stop_button.button_style = "warning" if report.passed else "primary"
        self.continue_button.description = "Continue the rollout" if report.passed else "Continue anyway"
        self.stop_button.description = "Stop here" if report.passed else "Stop here (recommended)"
        self.continue_button.disabled = self.stop_button.disabled = False
        self.asked.set()
        for cb in list(self._ask_callbacks):
            try:
                cb(report)
            except Exception:  # noqa: BLE001 - a status line must not stop the gate
                logging.getLogger("romakit.widgets").exception("CanaryGate on_ask callback failed")
        decided = self._decided.wait(self.timeout)
        go = decided and self._go
        self.continue_button.disabled = self.stop_button.disabled = True
        self.info.value += f"<br><i>{'continued' if go else 'stopped'} at the gate.</i>"
        self.asked.clear()
        return go

    def on_ask(self, callback: Callable[[CanaryReport], None]) -> None:
        """Call ``callback(report)`` when the gate starts waiting (on the engine's thread)."""
        self._ask_callbacks.append(callback)

    def decide(self, go: bool) -> None:
        """Answer the waiting canary (a button does this)."""
        self._go = bool(go)
        self._decided.set()

    def __repr__(self) -> str:
        state = "waiting for a decision" if self.asked.is_set() else "idle"
        return f"<CanaryGate: {state}>"
