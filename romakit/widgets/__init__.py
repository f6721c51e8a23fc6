"""The Jupyter front: :class:`DevicePicker`, :class:`ActionPanel`, :class:`ResultsView`
and :func:`console`, which puts them together.

Imported only when used (``rk.console`` or ``import romakit.widgets``): ``import
romakit`` and the clients never load ipywidgets. The widgets never speak HTTP or
MQTT themselves; they call the clients' batch methods. Every control is a public
attribute, so each widget can be driven from Python (set values, ``button.click()``).
"""

from __future__ import annotations

from romakit.widgets.action import ActionPanel
from romakit.widgets.console import Console, console
from romakit.widgets.picker import DevicePicker
from romakit.widgets.results_view import ResultsView

__all__ = ["ActionPanel", "Console", "DevicePicker", "ResultsView", "console"]
