"""``rk.clean_up``: a notebook's last step as a button. Shown, it closes nothing (Run All
leaves every widget usable); pressed, or with ``now=True`` (papermill, nbval), it closes
what it was given in order, each widget showing its closed note, and says what it did."""

from __future__ import annotations

import pytest

import romakit as rk
from romakit.widgets import ActionPanel, CleanUp, DevicePicker, ResultsView
from romakit.widgets._base import CLOSED_NOTE

pytestmark = pytest.mark.timeout(120)


def _texts(widget) -> str:
    """Every HTML value under ``widget``."""
    out = [getattr(widget, "value", "")] if type(widget).__name__ == "HTML" else []
    for child in getattr(widget, "children", ()):
        out.append(_texts(child))
    return "\n".join(out)


def test_shown_it_closes_nothing_pressed_it_closes_everything_in_order():
    sb = rk.sandbox(devices=120, seed=43, mqtt=False)
    try:
        link = sb.link_client(progress=False)
        fleet = link.devices()
        picker = DevicePicker(fleet)
        view = ResultsView(target=link, fleet=fleet)
        panel = ActionPanel(link, picker, results=view)
        order: list[str] = []

        def forget_settings() -> None:
            order.append("forget_settings")

        done = rk.clean_up(picker, panel, view, forget_settings, link, sb)
        assert isinstance(done, CleanUp) and done.widget._dom_classes == ("rk-cleanup",)
        assert repr(done) == ("<CleanUp: DevicePicker, ActionPanel, ResultsView, forget_settings, LinkClient, Sandbox "
                              "left running for you; press the button (or call .run()) when you are done>")
        assert sb.running and not link.closed and not picker.closed and not order
        assert CLOSED_NOTE not in _texts(picker.widget) + _texts(panel.widget)
        assert "Run All leaves everything above running" in done.status.value

        done.button.click()
        assert order == ["forget_settings"] and link.closed and not sb.running
        assert picker.closed and panel.closed and view.closed
        for w in (picker, panel, view):
            assert CLOSED_NOTE in _texts(w.widget)
        assert done.done == ["DevicePicker", "ActionPanel", "ResultsView", "forget_settings", "LinkClient", "Sandbox"]
        assert repr(done) == "<CleanUp: closed DevicePicker, ActionPanel, ResultsView, forget_settings, LinkClient, Sandbox>"
        assert done.button.disabled and "Run the notebook again to start over" in done.message
        assert done.run() and order == ["forget_settings"]  # pressing again does nothing
    finally:
        sb.close()


def test_now_closes_at_once_and_a_failure_is_said_while_the_rest_still_closes():
    sb = rk.sandbox(devices=60, seed=43, mqtt=False)
    link = sb.link_client(progress=False)

    class Stubborn:
        def close(self) -> None:
            raise OSError("the disk is gone")

    done = rk.clean_up(Stubborn(), link, sb, now=True)
    assert not sb.running and link.closed
    assert done.failed == {"Stubborn": "OSError: the disk is gone"} and done.done == ["LinkClient", "Sandbox"]
    assert repr(done) == "<CleanUp: closed LinkClient, Sandbox; could not close Stubborn>"
    assert "Could not close: Stubborn (OSError: the disk is gone)" in done.message


def test_a_watch_is_stopped_and_a_thing_that_cannot_be_closed_is_refused_at_once():
    stopped = []

    class Watchish:
        def stop(self) -> None:
            stopped.append(True)

    rk.clean_up(Watchish(), now=True)
    assert stopped == [True]
    with pytest.raises(TypeError, match="has no close"):
        rk.clean_up(42)
