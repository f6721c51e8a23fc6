"""What the engine exchanges with the outside: a protocol's :class:`Answer` per chunk,
and the :class:`BatchObserver` hooks a journal (or anything else) implements.

The engine knows no journal: it calls whatever observer it is given.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypedDict

from romakit.errors import RomakitError

if TYPE_CHECKING:  # pragma: no cover
    from romakit.results import BatchResult


@dataclass
class Answer:
    """What one chunk's request got back: the service's verdict per device.

    ``success`` holds ``(id, name)`` pairs, ``failed`` holds ``(id, name, error_code,
    error_msg)``; requested ids mentioned in neither end ``unknown`` (not in answer).
    """

    success: Sequence[tuple[Hashable, str | None]] = ()
    failed: Sequence[tuple[Hashable, str | None, str | None, str | None]] = ()
    request_id: str | None = None
    event_id: str | None = None
    #: the HTTP status of the answer (REST); None over MQTT
    http_status: int | None = None


class ChunkRows(TypedDict):
    """One chunk's outcome rows, column-wise (one item per id in the per-device lists),
    as the engine keeps them and hands them to :meth:`BatchObserver.chunk_done`."""

    ids: list
    names: list[str | None]
    outcome: list[str]
    error_code: list[str | None]
    error_msg: list[str | None]
    #: tries made
    attempts: int
    request_id: str | None
    event_id: str | None
    #: epoch seconds of the last try, and of its answer (None: none)
    sent_at: float | None
    answered_at: float | None
    #: the answer's HTTP status (REST); None over MQTT or without an answer
    http_status: int | None
    #: ``"read"`` when settled by reading the devices before a re-send, else None
    settled_by: str | None


#: a protocol's one request: ``send(ids, chunk_no, attempt) -> Answer``
SendChunk = Callable[[list, int, int], Awaitable[Answer]]


class RecordFailed(RomakitError):
    """An observer could not record what it must (a journal that cannot be written).

    Raised by :meth:`BatchObserver.started`: the run does not start. Raised by
    :meth:`BatchObserver.chunk_sent`: that chunk is not sent and the run stops, the rest
    ``skipped`` with this message as the reason. Raised by
    :meth:`BatchObserver.chunk_done`: the run stops (the chunk's answer stands in the
    result; the record keeps the chunk as sent, its devices ``unknown``)."""


class BatchObserver:
    """Hooks called by the engine (the journal implements them). All no-ops here.

    Called on the engine's event loop: implementations must be quick and raise nothing
    but :class:`RecordFailed`.
    """

    def policy(self, op_id: str, rollout: dict | None) -> None:
        """Called just before :meth:`started` with the run's rollout policy (``Rollout.to_dict``)."""

    def started(self, op_id: str, operation: str, target: str, chunks: list[list]) -> None: ...

    def chunk_split(self, op_id: str, chunk: int, ids: list, new_chunk: int, new_ids: list) -> None:
        """The window took only ``ids`` of planned ``chunk``; the rest is planned as ``new_chunk``."""

    def chunk_sent(self, op_id: str, chunk: int, attempt: int) -> None:
        """Called before each try of ``chunk`` goes out (write-ahead: recorded as sent first)."""

    def chunk_done(self, op_id: str, chunk: int, rows: ChunkRows) -> None:
        """Called with ``chunk``'s outcome rows once it has them."""

    def snapshot(self, op_id: str, chunk: int, rows: list[tuple[str, str, dict]]) -> None:
        """A deletion's records of ``chunk``'s devices, read just before it is sent:
        ``(device id, the gateway or instance it is under, record)`` (no secret);
        :class:`RecordFailed` when they cannot be kept (the chunk is then not sent)."""

    def finished(self, result: BatchResult) -> None: ...
