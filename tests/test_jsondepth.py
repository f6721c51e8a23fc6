"""The nesting depth of a JSON text, found before any decoder recurses into it."""

from __future__ import annotations

import json

import pytest

from romakit.jsondepth import MAX_DEPTH, TooDeep, depth, loads, too_deep


@pytest.mark.parametrize("text, want", [
    ("1", 0), ("[]", 1), ('{"a": [1, {"b": []}]}', 4),
    ('["]]]]", [[["[[["]]]]', 4),  # brackets inside strings are text
    ('["a\\"]]", [[1]]]', 3),  # an escaped quote does not end the string
    ('["\\\\", [[1]]]', 3),  # an escaped backslash before the closing quote does
])
def test_depth_counts_structure_not_text(text, want):
    json.loads(text)  # each is JSON
    assert depth(text) == want == depth(text.encode())


def test_closers_hidden_in_a_string_do_not_let_deep_nesting_through():
    text = '["' + "]" * 1000 + '", ' + "[" * 200 + "]" * 200 + "]"
    assert depth(text) == 201 and too_deep(text)


def test_a_body_200000_deep_is_refused_without_decoding_it():
    raw = b'{"error_code": ' + b"[" * 200_000 + b"]" * 200_000 + b"}"
    assert too_deep(raw)
    with pytest.raises(TooDeep, match=f"past {MAX_DEPTH} levels") as info:
        loads(raw)
    assert isinstance(info.value, ValueError)  # caught where undecodable JSON is


def test_many_shallow_objects_pass_and_decode():
    items = [{"device_id": i, "tags": ["a", "[b"], "product": {"name": "p]"}} for i in range(1000)]
    raw = json.dumps({"total": 1000, "items": items}).encode()
    assert not too_deep(raw) and loads(raw)["total"] == 1000
    assert too_deep(b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1)) and not too_deep(b"[" * MAX_DEPTH + b"]" * MAX_DEPTH)
