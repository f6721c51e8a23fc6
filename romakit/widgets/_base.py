"""What every romakit widget shares: its display bundle, its status line and its worker.

Each widget is a plain class holding its controls as public attributes and its
layout in ``.widget`` (so it can be driven from Python: set a control's ``value``,
call ``button.click()``). :class:`Widget` gives it the notebook display, a short
stable ``text/plain`` (its ``repr``, which nbval compares) beside the live widget;
:class:`Worker` runs its long jobs off the kernel's thread.
"""

from __future__ import annotations

import html
import logging
import re
import threading
from collections.abc import Callable
from typing import Any

import ipywidgets as w

log = logging.getLogger("romakit.widgets")

#: the colour of an error in a status line
ERROR_COLOUR = "#b00"
_TAGS = re.compile(r"<[^>]+>")
#: what a closed widget shows instead of its controls
CLOSED_NOTE = "Closed: the client and sandbox this widget used are stopped. Run the notebook again to use it."


def bundle(widget: w.Widget, text: str, **kwargs: Any) -> dict:
    """The widget's display bundle with a short, stable ``text/plain`` (nbval compares it)."""
    make = getattr(widget, "_repr_mimebundle_", None)
    data = make(**kwargs) if callable(make) else {}  # a closed widget has none
    if isinstance(data, tuple):
        data = data[0]
    data = dict(data or {})
    data["text/plain"] = text
    return data


def error_html(text: str) -> str:
    """``text`` (already HTML) shown as an error."""
    return f"<span style='color:{ERROR_COLOUR}'>{text}</span>"


class Widget:
    """Base of the romakit widgets: displays ``self.widget`` with ``repr(self)`` as its text.

    A widget with a status line sets ``self.status`` (an ``HTML``) and reports through
    :meth:`_say`, which also keeps the plain text in ``self.message``.
    """

    widget: w.Widget
    status: w.HTML
    message: str = ""
    #: True once :meth:`close` has run
    closed: bool = False

    def _say(self, message: str, *, error: bool = False, raw: bool = False) -> bool:
        """Show ``message`` in the status line (``raw``: it is HTML already); False on an error."""
        self.message = html.unescape(_TAGS.sub("", message)) if raw else message
        text = message if raw else html.escape(message)
        self.status.value = error_html(text) if error else text
        return not error

    def _repr_mimebundle_(self, **kwargs: Any) -> dict:
        return bundle(self.widget, repr(self), **kwargs)

    def close(self, note: str = CLOSED_NOTE) -> None:
        """Leave the widget visibly closed: its controls give way to ``note``. A widget
        whose client or sandbox is gone must not look alive."""
        self.closed = True
        if isinstance(self.widget, w.Box):
            self.widget.children = (w.HTML(
                "<div style='padding:6px 10px;border-left:4px solid #9e9e9e;background:#f5f5f5;color:#555'>"
                f"{html.escape(note)}</div>"),)


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

