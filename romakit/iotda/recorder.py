"""Every downstream event a gateway saw, with how it was matched, for ``Gateway.events()``.

The recorder is written from paho's network thread and read from anywhere, so it is
guarded by one condition variable; ``wait()`` lets a caller (a test, a notebook) wait
for an event with a timeout instead of sleeping. It holds at most ``max_rows`` rows and
about ``max_bytes`` bytes of them (the oldest go first, counted in ``dropped``), so a
gateway left open for days, or sent huge events, does not grow without bound; one event
larger than an eighth of ``max_bytes`` keeps only the device ids that fit in that share
(``n_devices`` still says how many it had; the others are counted in ``dropped_ids``).
Both bounds are attributes: ``gateway.recorder.max_bytes = 16 * 2**20`` sets one.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from romakit.iotda.envelope import DownEvent

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

# how a downstream event related to romakit's pending requests
MATCHED = "matched"  # the answer to a request that was waiting for it
DUPLICATE = "duplicate"  # a second answer to a request already answered: ignored
LATE = "late"  # the answer to a request that had already given up (timeout, link lost): ignored
UNMATCHED = "unmatched"  # an answer nobody asked for (unknown event_id): ignored
MALFORMED = "malformed"  # not the documented shape
NOTIFY = "notify"  # platform-initiated (add/delete notify, sync answers)
OTHER = "other"  # another service or event type on the same topic
MATCHES = (MATCHED, DUPLICATE, LATE, UNMATCHED, MALFORMED, NOTIFY, OTHER)

#: the bytes the rows may take by default (a row of a few ids takes well under 1 KiB)
DEFAULT_MAX_BYTES = 64 * 2**20
#: a row's own cost beyond its ids (the object, its fields), and an id's beyond its characters
_ROW_BYTES, _ID_BYTES = 400, 60

COLUMNS = (
    "received_at",
    "event_type",
    "event_id",
    "match",
    "event_time",
    "version",
    "n_devices",
    "n_successful",
    "n_failed",
    "device_ids",
    "problem",
)


@dataclass(frozen=True)
class Record:
    """One downstream event as the gateway saw it."""

    received_at: float  # epoch seconds
    event_type: str | None
    event_id: str | None
    match: str
    event_time: str | None = None
    version: int | None = None
    n_devices: int = 0
    n_successful: int = 0
    n_failed: int = 0
    device_ids: tuple[str, ...] = ()
    problem: str | None = None

    @classmethod
    def of(cls, ev: DownEvent, match: str, problem: str | None = None) -> Record:
        ids = tuple(ev.device_ids)
        return cls(
            received_at=time.time(),
            event_type=ev.event_type,
            event_id=ev.event_id,
            match=match,
            event_time=ev.event_time,
            version=ev.version,
            n_devices=len(ids),
            n_successful=len(ev.successful),
            n_failed=len(ev.failed),
            device_ids=ids,
            problem=problem or ev.problem or ev.notes,
        )


def _cost(record: Record) -> int:
    """About the bytes ``record`` holds (its ids and text; the row itself)."""
    text = len(record.problem or "") + len(record.event_id or "") + len(record.event_time or "")
    return _ROW_BYTES + text + sum(_ID_BYTES + len(i) for i in record.device_ids)


class EventRecorder:
    """A thread-safe log of :class:`Record` rows, bounded in rows and in bytes."""

    def __init__(self, max_rows: int = 100_000, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.max_rows, self.max_bytes = max_rows, max_bytes
        self._rows: deque[Record] = deque()
        self._sizes: deque[int] = deque()
        self._cv = threading.Condition()
        #: about the bytes the rows hold now
        self.bytes = 0
        #: rows pushed out by ``max_rows`` or ``max_bytes``
        self.dropped = 0
        #: device ids not kept from events too large to keep whole
        self.dropped_ids = 0
        self._total = 0

    def __len__(self) -> int:
        with self._cv:
            return len(self._rows)

    def __repr__(self) -> str:
        return f"EventRecorder({len(self)} events)"

    def add(self, record: Record) -> None:
        with self._cv:
            record, cost = self._fitted(record)
            while self._rows and (len(self._rows) >= self.max_rows or self.bytes + cost > self.max_bytes):
                self._rows.popleft()
                self.bytes -= self._sizes.popleft()
                self.dropped += 1
            self._rows.append(record)
            self._sizes.append(cost)
            self.bytes += cost
            self._total += 1
            self._cv.notify_all()

    def _fitted(self, record: Record) -> tuple[Record, int]:
        """The record and its cost, its ids cut to an eighth of ``max_bytes`` if need be."""
        cost, share = _cost(record), self.max_bytes // 8
        if cost <= share:
            return record, cost
        kept, room = 0, share - _cost(replace(record, device_ids=()))
        for i in record.device_ids:
            room -= _ID_BYTES + len(i)
            if room < 0:
                break
            kept += 1
        cut = len(record.device_ids) - kept
        self.dropped_ids += cut
        note = f"{cut} of its {len(record.device_ids)} device ids not kept (the recorder's max_bytes)"
        problem = (record.problem or "")[:1000]  # and a text past any use cut too
        record = replace(record, device_ids=record.device_ids[:kept], problem=f"{problem}; {note}" if problem else note)
        return record, _cost(record)

    def records(self) -> list[Record]:
        """A copy of the rows, oldest first."""
        with self._cv:
            return list(self._rows)

    def wait(self, predicate: Callable[[list[Record]], bool], timeout: float) -> bool:
        """Wait until ``predicate(rows)`` holds; False when ``timeout`` seconds pass first."""
        with self._cv:
            return self._cv.wait_for(lambda: predicate(list(self._rows)), timeout)

    def wait_for_event(self, event_type: str, *, count: int = 1, timeout: float = 10.0, since: int = 0) -> bool:
        """Wait for ``count`` events of ``event_type`` among the rows recorded after ``since``
        (a value of :attr:`total` taken earlier)."""
        def enough() -> bool:
            k = min(self._total - since, len(self._rows))
            new = itertools.islice(reversed(self._rows), max(k, 0))
            return sum(1 for r in new if r.event_type == event_type) >= count

        with self._cv:
            return self._cv.wait_for(enough, timeout)

    @property
    def total(self) -> int:
        """Rows ever recorded (dropped ones included): a mark for ``wait_for_event(since=...)``."""
        with self._cv:
            return self._total

    def clear(self) -> None:
        with self._cv:
            self._rows.clear()
            self._sizes.clear()
            self.bytes = 0

    def frame(self) -> pd.DataFrame:
        """The rows as a DataFrame (pandas loaded here, not before)."""
        import pandas as pd

        rows = self.records()
        data = {c: [getattr(r, c) for r in rows] for c in COLUMNS}
        df = pd.DataFrame(data, columns=list(COLUMNS))
        df["received_at"] = pd.to_datetime(pd.Series(data["received_at"], dtype="float64"), unit="s", utc=True)
        df["match"] = pd.Categorical(df["match"], categories=MATCHES)
        df["event_type"] = df["event_type"].astype("category")
        df["version"] = pd.array(data["version"], dtype="Int64")
        for c in ("n_devices", "n_successful", "n_failed"):
            df[c] = df[c].astype("int64")
        df["device_ids"] = [list(ids) for ids in data["device_ids"]]
        return df


__all__ = ["EventRecorder", "Record", "MATCHES", "MATCHED", "DUPLICATE", "LATE", "UNMATCHED", "MALFORMED", "NOTIFY", "OTHER"]
