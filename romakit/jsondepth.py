"""How deep a JSON text nests, found before it is decoded.

A hostile or broken service can answer ``[[[[…]]]]`` 200,000 deep. Python's and
msgspec's decoders recurse once per level and stop only at the interpreter's recursion
limit; while the stack is that deep, a garbage-collector pass can run an unrelated
finaliser that fails in its turn (a warning reaching ``sys.unraisablehook``). Every
answer these services give nests a handful of levels, so a body nested past
:data:`MAX_DEPTH` is refused on sight instead: one pass over its brackets outside
strings, in C (``re``) and numpy, never a recursion.

A typed msgspec decoder may go first without that pass when it runs under
:func:`gc_paused`: on a body that deep it stops with ``RecursionError`` (msgspec guards
its recursion) and no collector pass runs at depth; the caller then takes its generic
path, which refuses the body.

No third-party import at module level (numpy is loaded only for a body that could be
that deep).
"""

from __future__ import annotations

import gc
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

#: deeper than any answer of LINK, IoTDA or IAM (they nest under ten levels)
MAX_DEPTH = 64

#: a JSON string (escapes included): its brackets are text, not structure
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.S)
_NOT_BRACKET = re.compile(rb"[^\[\]{}]+")
_OPENERS = (0x5B, 0x7B)  # "[" and "{"


def depth(raw: bytes | bytearray | str) -> int:
    """The deepest nesting of arrays and objects in ``raw`` (0 for a scalar); counted on
    the brackets outside strings, so it is exact for JSON and bounded for anything else."""
    data = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else bytes(raw)
    brackets = _NOT_BRACKET.sub(b"", _STRING.sub(b"", data))
    if not brackets:
        return 0
    import numpy as np

    codes = np.frombuffer(brackets, dtype=np.uint8)
    steps = np.where((codes == _OPENERS[0]) | (codes == _OPENERS[1]), 1, -1)
    return int(steps.cumsum().max(initial=0))


def too_deep(raw: bytes | bytearray | str, limit: int = MAX_DEPTH) -> bool:
    """True when ``raw`` nests deeper than ``limit``. Costs two counts for a body with
    fewer openers than ``limit`` (most answers), one bracket pass otherwise."""
    if isinstance(raw, str):
        if raw.count("[") + raw.count("{") <= limit:
            return False
    elif raw.count(b"[") + raw.count(b"{") <= limit:
        return False
    return depth(raw) > limit


@contextmanager
def gc_paused() -> Iterator[None]:
    """No collector passes inside: a typed decoder's fast path (a page makes thousands of
    objects, and passes over them would cost more than the decoding; a body nested too
    deep fails as ``RecursionError`` with no finaliser run at depth). Synchronous code only."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


class TooDeep(ValueError):
    """A JSON text nested past :data:`MAX_DEPTH` (a ``ValueError``, as undecodable JSON is)."""


def loads(raw: bytes | bytearray | str) -> Any:
    """``json.loads(raw)``, refusing (:class:`TooDeep`) a text nested past :data:`MAX_DEPTH`
    before the decoder recurses into it."""
    if too_deep(raw):
        raise TooDeep(f"JSON nested past {MAX_DEPTH} levels ({len(raw)} bytes)")
    return json.loads(raw)


__all__ = ["MAX_DEPTH", "TooDeep", "depth", "gc_paused", "loads", "too_deep"]
