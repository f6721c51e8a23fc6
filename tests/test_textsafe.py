"""Service text made safe to show: every control character and bidi override escaped
(visible, never obeyed); plain text, accents and CJK untouched."""

from __future__ import annotations

import pytest

from romakit.textsafe import terminal


@pytest.mark.parametrize("raw, shown", [
    ("\x1b]0;title\x07", "\\x1b]0;title\\x07"),
    ("a\x1b[2Jb", "a\\x1b[2Jb"),
    ("\x9b31m", "\\x9b31m"),  # C1 CSI
    ("x\u202eevil\u2066", "x\\u202eevil\\u2066"),
    ("tab\there\r\nline", "tab\\x09here\\x0d\\x0aline"),
    ("\x00\x7f", "\\x00\\x7f"),
    ("Zähler 电表 — ok", "Zähler 电表 — ok"),
])
def test_terminal_escapes_controls_and_bidi(raw, shown):
    assert terminal(raw) == shown


def test_terminal_keeps_romakits_own_newlines_when_asked():
    assert terminal("a\nb\x1b", keep_newlines=True) == "a\nb\\x1b"
    assert terminal(None) == "None"
