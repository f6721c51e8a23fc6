"""``rk.clean_up(...)``: a notebook's last step as a button the reader presses on purpose.

*Run All* runs every cell, the last one included: a clean-up that closed everything there
would leave every widget above dead ("Closed") the moment the notebook has run. So the
last cell shows this instead: one button that closes what it was given, in that order
(widgets first, so each shows a note in place of its controls; then watches, gateways,
clients, and the sandbox last). ``now=True`` closes at once: what papermill, nbval and
scripts pass (a notebook's ``close_at_end`` parameter), so nothing is left running there.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import Any

import ipywidgets as w

from romakit.widgets._base import Widget

#: what the button's note says before it is pressed
WAITING = ("Run All leaves everything above running, so the widgets stay usable. Press the button when you are "
           "done: it closes them, then the clients and the sandbox (restarting the kernel does the same).")


def _name(thing: Any) -> str:
    """A short, stable name: the thing's class (a function's own name)."""
    if callable(thing) and not hasattr(thing, "close") and not hasattr(thing, "stop"):
        return getattr(thing, "__name__", type(thing).__name__)
    return type(thing).__name__


def _closer(thing: Any) -> Callable[[], Any]:
    """How to close ``thing``: its ``close()``, else its ``stop()`` (a watch), else call it."""
    for attr in ("close", "stop"):
        method = getattr(thing, attr, None)
        if callable(method):
            return method
    if callable(thing):
        return thing
    raise TypeError(f"rk.clean_up: {type(thing).__name__} has no close() or stop() and is not callable")


class CleanUp(Widget):
    """One button that closes ``things`` in the order given (see :func:`clean_up`)."""

    def __init__(self, *things: Any, now: bool = False) -> None:
        self.things = list(things)
        self._closers = [_closer(t) for t in self.things]  # refused here, not when pressed
        #: the names of what was closed, in order (empty until pressed)
        self.done: list[str] = []
        #: what could not be closed: name -> the error's text
        self.failed: dict[str, str] = {}
        self.button = w.Button(description="Clean up: close everything above", icon="power-off",
                               button_style="warning", layout=w.Layout(width="auto"))
        self.button.on_click(lambda _b: self.run())
        self.status = w.HTML(f"<small>{html.escape(WAITING)}</small>")
        self.widget = w.VBox([self.button, self.status])
        self.widget.add_class("rk-cleanup")
        if now:
            self.run()

    @property
    def names(self) -> list[str]:
        return [_name(t) for t in self.things]

    def run(self) -> bool:
        """Close everything, in order (once: pressing again does nothing). True when all closed."""
        if self.done or self.failed:
            return not self.failed
        for thing, close in zip(self.things, self._closers, strict=True):
            try:
                close()
            except Exception as e:  # noqa: BLE001 - said, and the rest is still closed
                self.failed[_name(thing)] = f"{type(e).__name__}: {e}"
            else:
                self.done.append(_name(thing))
        self.button.disabled = True
        self.button.description = "Cleaned up"
        text = f"Closed {', '.join(self.done) or 'nothing'}. Run the notebook again to start over."
        if self.failed:
            text += " Could not close: " + "; ".join(f"{k} ({v})" for k, v in self.failed.items())
        self._say(text, error=bool(self.failed))
        return not self.failed

    def click(self) -> bool:
        """The same as pressing the button."""
        return self.run()

    def __repr__(self) -> str:
        if self.done or self.failed:
            bad = f"; could not close {', '.join(self.failed)}" if self.failed else ""
            return f"<CleanUp: closed {', '.join(self.done) or 'nothing'}{bad}>"
        return (f"<CleanUp: {', '.join(self.names)} left running for you; press the button (or call .run()) "
                "when you are done>")


def clean_up(*things: Any, now: bool = False) -> CleanUp:
    """A notebook's clean-up as a button: pressed (or ``.run()``), it closes ``things`` in
    the order given: widgets (each then shows a note instead of its controls), watches
    (``stop()``), gateways and clients, the sandbox last; a function is called. ``now``:
    close at once (papermill, nbval and scripts, through a ``close_at_end`` parameter).

    *Run All* then leaves every widget above usable, and nothing closes by accident."""
    return CleanUp(*things, now=now)


__all__ = ["CleanUp", "clean_up"]
