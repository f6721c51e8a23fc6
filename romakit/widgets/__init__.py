"""The Jupyter front: :class:`DevicePicker`, :class:`ActionPanel`, :class:`ResultsView`
and :func:`console`, which puts them together.

Imported only when used (``rk.console`` or ``import romakit.widgets``): ``import
romakit`` and the clients never load ipywidgets. The widgets never speak HTTP or
MQTT themselves; they call the clients' batch methods. Every control is a public
attribute, so each widget can be driven from Python (set values, ``button.click()``).

One widget per module, over :mod:`._base` (display bundle, status line, ``Worker``):
``picker`` (with ``filters``), ``action`` (with ``preview``, the dry run, and
``staging``, what a retry or resume stages), ``rollout_form``, ``canary_gate``,
``results_view``, ``timeline_view`` (the journal's events around an operation),
``console`` (with ``fanout_tab``, its *All gateways* tab, and the timeline's tab) and
``cleanup`` (a notebook's last step, as a button: ``rk.clean_up``). Each widget's box
carries a CSS class (``rk-picker``, ``rk-panel``, ``rk-results``, ``rk-console``,
``rk-cleanup``) for styling and browser tests. The
plan, the guard and the safety flow the panel displays are the engine's
(:mod:`romakit.engine.plan`, :mod:`~romakit.engine.guard`, :mod:`~romakit.engine.flow`).
Operation facts come from :mod:`romakit.operations`, outcome colours from
:mod:`romakit.outcomes`, and every use of itables goes through :mod:`._itables`.
"""

from __future__ import annotations

from romakit.widgets.action import ActionPanel
from romakit.widgets.cleanup import CleanUp, clean_up
from romakit.widgets.console import Console, console
from romakit.widgets.picker import DevicePicker
from romakit.widgets.results_view import ResultsView
from romakit.widgets.timeline_view import TimelineView

__all__ = ["ActionPanel", "CleanUp", "Console", "DevicePicker", "ResultsView", "TimelineView", "clean_up", "console"]
