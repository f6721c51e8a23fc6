"""One LINK request as the sandbox's operations read it, and the error answers they raise.

Input is read strictly: integers in the query and path are ASCII digits (``int()``
alone would take " 5", "+5", "1_0" and "５"); ids in bodies are numbers whose rounded
value lies in 1..99,999,999,999,999,999; a body nested too deep for the JSON reader is
"not valid JSON". All of these are 400 ``SCB.00000000`` naming the parameter.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from romakit.jsondepth import MAX_DEPTH, too_deep
from romakit.sim.columns import MAX_ID

INT_RE = re.compile(r"-?[0-9]+")


class Answer(Exception):
    """An error answer, raised from deep inside a handler."""

    def __init__(self, status: int, code: str, msg: str, headers: dict[str, str] | None = None) -> None:
        # header bytes that were not UTF-8 arrive as lone surrogates: never echo them raw
        msg = msg.encode("utf-8", "backslashreplace").decode("utf-8")
        super().__init__(f"{status} {code}: {msg}")
        self.status, self.code, self.msg, self.headers = status, code, msg, headers or {}


def bad(operation: str, parameter: str, processor: str, detail: str = "") -> Answer:
    """400 ``SCB.00000000``, worded as LINK words a bad parameter."""
    msg = (f"Parameter is not valid for operation [romalink.link-device.{operation}]. "
           f"Parameter is [{parameter}]. Processor is [{processor}].")
    if detail:
        msg = f"{msg} {detail}"
    return Answer(400, "SCB.00000000", msg[:200])


def not_found(what: object) -> Answer:
    """404 ``ROMA.00110006``: no device with that id."""
    return Answer(404, "ROMA.00110006",
                  f"The resource does not exist. Check whether the resource ID {what} is correct.")


def whole(value: Any, op: str, name: str) -> int | None:
    """A JSON number as an int (a finite fraction rounded down); None stays None; else 400."""
    if value is None or (type(value) is int):
        return value
    if type(value) is float and math.isfinite(value):
        return math.floor(value)
    raise bad(op, name, "body", f"{name} must be an integer.")


def path_id(raw: str, op: str) -> int:
    """The device id of a path: ASCII digits (else 400); out of 1..MAX_ID is simply not found."""
    if not INT_RE.fullmatch(raw):
        raise bad(op, "device_id", "path", f"device_id {raw[:40]!r} is not an integer.")
    if len(raw.lstrip("-0")) > 17 or not 1 <= int(raw) <= MAX_ID:
        raise not_found(raw[:40])
    return int(raw)


def _reject_constant(c: str) -> None:
    raise ValueError(f"{c} is not valid JSON")


class LinkRequest:
    """One request as the operations see it: path argument, body (parsed once), query."""

    _UNPARSED = object()

    def __init__(self, body: bytes, query: Any) -> None:
        self.body, self.query, self.arg, self.n_ids = body, query, "", 0
        self._data: Any = self._UNPARSED

    def json(self) -> Any:
        """The body as JSON (None when empty); ValueError when it is not JSON."""
        if self._data is self._UNPARSED:
            try:
                if too_deep(self.body):  # refused before the decoder recurses into it
                    raise ValueError(f"JSON nested past {MAX_DEPTH} levels")
                self._data = json.loads(self.body, parse_constant=_reject_constant) if self.body else None
            except (ValueError, UnicodeDecodeError) as e:
                self._data = ValueError(f"{type(e).__name__}: {str(e)[:100]}")
        if isinstance(self._data, ValueError):
            raise self._data
        return self._data

    def json_object(self, op: str, param: str) -> dict:
        try:
            data = self.json()
        except ValueError:
            raise bad(op, param, "body", "The body is not valid JSON.") from None
        if not isinstance(data, dict):
            raise bad(op, param, "body", "The body must be a JSON object.")
        return data

    def count_ids(self, method: str, path: str) -> None:
        """Count the ids a request carries, for the request log (never raises)."""
        tail = path.rstrip("/").split("/")
        last = tail[-1]
        if method in ("GET", "DELETE") and len(tail) > 1 and tail[-2] == "devices" and last.isdigit():
            self.n_ids = 1
            return
        if not ((method == "POST" and last == "force-offline") or (method == "DELETE" and last == "devices")):
            return
        try:
            data = self.json()
        except ValueError:
            return
        if isinstance(data, dict):
            self.n_ids = sum(len(v) for k, v in data.items()
                             if k in ("device_ids", "resources") and isinstance(v, list))


def id_list(value: Any, op: str, param: str, max_len: int) -> list[int]:
    """A JSON list of device ids -> ints (fractions rounded down) in 1..MAX_ID; anything else -> 400."""
    if not isinstance(value, list):
        raise bad(op, param, "body", "device ids must be a list of integers.")
    if len(value) > max_len:
        raise bad(op, param, "body", f"At most {max_len} device ids per call.")
    out = []
    for v in value:
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise bad(op, param, "body", f"device id {str(v)[:30]!r} is not a number.")
        if isinstance(v, float):
            if not math.isfinite(v):
                raise bad(op, param, "body", "device ids must be finite numbers.")
            v = math.floor(v)
        if not 1 <= v <= MAX_ID:  # DeviceInfoSimple.id is 1..MAX_ID: an id outside can only be a mistake
            raise bad(op, param, "body", f"device id {str(v)[:30]} is out of range 1..{MAX_ID}.")
        out.append(v)
    return out
