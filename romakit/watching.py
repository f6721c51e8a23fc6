"""Watch a fleet: status changes recorded as events in the journal, cycle after cycle.

``rk.watch(link, every="30s", product_id=...)`` starts a background thread that reads
the fleet every ``every`` and records each change (``online``, ``offline``,
``inactive``, ``abnormal``, ``frozen``, ``appeared``, ``gone``) in the journal's
``events`` table, with the service's own time of it where the service has one. The
same runs in a terminal as ``romakit watch`` (:mod:`romakit.cli.watching`).

What a cycle reads (cost follows what changes where the API allows it):

* ROMA Connect LINK: one full listing every ``full_every`` cycles (and the first) finds
  devices that appeared or went; the cycles between list only the devices not online
  (``online_status`` = never connected or offline), usually a small share of a fleet.
  A device that left that set came online or was deleted: up to ``probe`` of them are
  read one by one (ShowDevice: its status and login time, or gone); more than that
  and the cycle lists everything instead. A device still offline whose
  ``last_login_datetime`` moved logged in and dropped between two cycles: both
  changes are recorded. Service times: ``last_login_datetime`` for ``online``,
  ``last_active_time`` for ``offline``.
* IoTDA (:class:`~romakit.IotdaClient`, devices and a gateway's children with
  ``gateway_id=``): its ListDevices has no status filter, so every cycle lists the
  devices matching the filters; up to ``probe`` changed devices are read (ShowDevice)
  for their ``connection_status_update_time``.

Restarts lose nothing: the watch's known state is stored as a snapshot in the journal
(on its first cycle, after full cycles with many changes, and when it stops), and a
watch of the same name resumes from its last snapshot and the events after it, so its
first cycle's diff records what changed while nothing watched.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from romakit.errors import ApiError, InputError
from romakit.store.events import APPEARED, CODE, GONE, STATUSES, State, record, resume, seconds
from romakit.store.journal import Journal
from romakit.store.schema import enabled

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from romakit.store.backend import Conn

log = logging.getLogger("romakit.watch")
ONLINE, OFFLINE = CODE["online"], CODE["offline"]
_NOT_ONLINE = ["never_connected", "offline"]
_LINK_STATUS = {"never_connected": CODE["inactive"], "online": ONLINE, "offline": OFFLINE}


def _ms(series: Any) -> np.ndarray:
    """A frame's UTC time column -> epoch ms (int64, -1 where missing)."""
    import pandas as pd

    t = pd.to_datetime(series, utc=True)
    out = np.full(len(t), -1, np.int64)
    ok = t.notna().to_numpy()
    out[ok] = t[ok].to_numpy("datetime64[ms]").astype(np.int64)
    return out


#: the forms IoTDA writes times in: ShowDevice's active times (``yyyy-MM-ddTHH:mm:ss.SSSZ``)
#: and its compact one (``yyyyMMddTHHmmssZ``, create_time and messages)
_IOTDA_TIME_FORMATS = ("%Y-%m-%dT%H:%M:%S.%fZ", "%Y%m%dT%H%M%SZ")


def _iotda_ms(text: Any) -> int:
    """An IoTDA time (UTC, either form) -> epoch ms, -1 when absent or odd."""
    from datetime import UTC, datetime

    for form in _IOTDA_TIME_FORMATS:
        try:
            return round(datetime.strptime(str(text), form).replace(tzinfo=UTC).timestamp() * 1000)
        except ValueError:
            continue
    return -1


class _Link:
    """What a watch reads of ROMA Connect LINK."""

    light = True
    #: the last listing was read while the fleet changed under it (no consistent read)
    unsettled = False

    def __init__(self, client: Any, filters: dict[str, Any]) -> None:
        if "online_status" in filters:
            raise InputError("watch: online_status is what a watch follows; filter by anything else")
        self.client, self.filters = client, filters
        client.devices  # noqa: B018 - a client without a listing is refused here, not in the thread
        self.target = str(client.instance_id)

    def _state(self, frame: pd.DataFrame) -> State:
        status = frame["online_status"].astype(str).map(_LINK_STATUS).fillna(CODE["inactive"]).to_numpy(np.int8)
        return State(frame["id"].to_numpy(np.int64), status, _ms(frame["last_login_datetime"]),
                     _ms(frame["last_active_time"]))

    def _list(self, **filters: Any) -> pd.DataFrame:
        frame = self.client.devices(**filters)
        self.unsettled = self.unsettled or "romakit_total_mismatch" in frame.attrs
        return frame

    def full(self) -> State:
        return self._state(self._list(**self.filters))

    def not_online(self) -> State:
        return self._state(self._list(online_status=_NOT_ONLINE, **self.filters))

    def probe(self, keys: np.ndarray) -> State:
        """Those of ``keys`` that still exist, read one by one."""
        found = []
        for k in keys.tolist():
            try:
                d = self.client.device(int(k))
            except ApiError as e:
                if e.status == 404:
                    continue
                raise
            found.append(d)
        if not found:
            return State.empty()
        from romakit.link.models import devices_frame

        return self._state(devices_frame(found))

    def times(self, keys: np.ndarray) -> dict[Any, int]:
        return {}


class _Iotda:
    """What a watch reads of IoTDA's inventory (devices, or a gateway's children)."""

    light = False
    unsettled = False

    def __init__(self, client: Any, filters: dict[str, Any], probe: int) -> None:
        self.client, self.filters, self._probe = client, filters, probe
        gw = filters.get("gateway_id")
        self.target = f"{client.project_id}/{gw}" if gw else str(client.project_id)

    def full(self) -> State:
        frame = self.client.devices(**self.filters)
        status = frame["status"].astype(str).str.lower().map(CODE).fillna(CODE["inactive"]).to_numpy(np.int8)
        n = len(frame)
        keys = np.array(frame["device_id"].astype(str).tolist(), dtype=object)
        return State(keys, status, np.full(n, -1, np.int64), np.full(n, -1, np.int64))

    def times(self, keys: np.ndarray) -> dict[Any, int]:
        """``connection_status_update_time`` (epoch ms) of up to ``probe`` of ``keys``."""
        out = {}
        for k in keys[:self._probe].tolist():
            try:
                out[k] = _iotda_ms(self.client.device(k).get("connection_status_update_time"))
            except ApiError:
                continue
        return out


def diff(old: State, new: State) -> list[tuple[Any, str, str | None, int, str | None]]:
    """The changes from ``old`` to ``new``: ``(key, kind, previous, service_ms, detail)``
    (service_ms -1: the service gave no time)."""
    out: list[tuple[Any, str, str | None, int, str | None]] = []
    nn = len(new.keys)
    pos = np.searchsorted(new.keys, old.keys) if nn else np.zeros(len(old.keys), np.int64)
    in_new = (pos < nn) & (new.keys[np.minimum(pos, max(nn - 1, 0))] == old.keys) if nn else np.zeros(len(pos), bool)
    for i in np.flatnonzero(~in_new).tolist():
        out.append((old.keys[i], GONE, STATUSES[old.status[i]], -1, None))
    back = np.searchsorted(old.keys, new.keys) if len(old.keys) else np.zeros(nn, np.int64)
    no = len(old.keys)
    in_old = (back < no) & (old.keys[np.minimum(back, max(no - 1, 0))] == new.keys) if no else np.zeros(nn, bool)
    for j in np.flatnonzero(~in_old).tolist():
        s = int(new.status[j])
        out.append((new.keys[j], APPEARED, None, _when(new, j, s), STATUSES[s]))
    o = np.flatnonzero(in_new)
    n = pos[in_new]
    os_, ns = old.status[o], new.status[n]
    changed = os_ != ns
    relog = ~changed & (new.login[n] > old.login[o]) & (old.login[o] >= 0)
    for i, j in zip(o[changed].tolist(), n[changed].tolist(), strict=True):
        s = int(new.status[j])
        out.append((new.keys[j], STATUSES[s], STATUSES[old.status[i]], _when(new, j, s), None))
    for j in n[relog].tolist():
        s, k = int(new.status[j]), new.keys[j]
        if s == ONLINE:  # dropped and logged in again between two reads
            out += [(k, "offline", "online", -1, "between cycles"), (k, "online", "offline", int(new.login[j]), None)]
        else:
            out += [(k, "online", STATUSES[s], int(new.login[j]), "between cycles"),
                    (k, STATUSES[s], "online", _when(new, j, s), None)]
    return out


def _when(state: State, j: int, status: int) -> int:
    return int(state.login[j] if status == ONLINE else state.active[j] if status == OFFLINE else -1)


def _merge(old: State, part: State, drop: np.ndarray) -> State:
    """``old`` with the devices of ``part`` put in (new or updated) and ``drop`` removed."""
    keep = ~np.isin(old.keys, part.keys) & ~np.isin(old.keys, drop)
    return State(np.concatenate([old.keys[keep], part.keys]), np.concatenate([old.status[keep], part.status]),
                 np.concatenate([old.login[keep], part.login]), np.concatenate([old.active[keep], part.active]))


def _replay(state: State, later: list[Any]) -> State:
    """``state`` with the events recorded after it applied (a restarted watch's state)."""
    if not later:
        return state
    text = state.keys.dtype == object
    rows = {k: [int(s), int(a), int(b)] for k, s, a, b in zip(state.keys.tolist(), state.status.tolist(),
                                                          state.login.tolist(), state.active.tolist(), strict=True)}
    for dev, kind, detail, service in later:
        k = dev if text else int(dev)
        ms = -1 if service is None else int(round(service * 1000))
        if kind == GONE:
            rows.pop(k, None)
            continue
        s = CODE.get(detail if kind == APPEARED else kind, CODE["inactive"])
        row = rows.setdefault(k, [s, -1, -1])
        row[0] = s
        if ms >= 0:
            row[1 if s == ONLINE else 2] = max(row[1 if s == ONLINE else 2], ms)
    keys = np.array(list(rows), dtype=object if text else np.int64)
    vals = np.array(list(rows.values()), np.int64).reshape(-1, 3)
    return State(keys, vals[:, 0].astype(np.int8), vals[:, 1].copy(), vals[:, 2].copy())


class Watch:
    """A running watch: :meth:`stop` it, read what it recorded with :meth:`events`;
    ``cycles`` counts the cycles done, ``error`` holds what stopped it if it failed."""

    def __init__(self, client: Any, every: Any = "30s", *, name: str | None = None, journal: Any = None,
                 full_every: int = 10, probe: int = 100, snapshot_after: int | None = None,
                 duration: Any = None, on_cycle: Callable[[Watch, list[tuple]], None] | None = None,
                 **filters: Any) -> None:
        #: called after each cycle with the watch and the event rows it recorded (in its thread)
        self.on_cycle = on_cycle
        self.every = seconds(every)
        self.duration = None if duration is None else seconds(duration, "for")
        if not isinstance(full_every, int) or full_every < 1 or not isinstance(probe, int) or probe < 0:
            raise InputError(f"full_every={full_every!r} must be an int >= 1 and probe={probe!r} an int >= 0")
        filters = {k: v for k, v in filters.items() if v is not None}
        if inspect.iscoroutinefunction(getattr(client, "devices", None)):
            raise InputError("a watch runs in its own thread: give it the synchronous client (rk.LinkClient)")
        is_iotda = not hasattr(client, "force_offline")  # the inventory client lists, it does not act
        self._source: Any = _Iotda(client, filters, probe) if is_iotda else _Link(client, filters)
        self.kind = "iotda" if is_iotda else "link"
        self.target, self.filters, self.full_every, self.probe = self._source.target, filters, full_every, probe
        digest = hashlib.sha1(json.dumps(filters, sort_keys=True, default=str).encode()).hexdigest()[:8]
        self.watch_id = name or f"{self.kind}:{self.target}:{digest}"
        own = getattr(client, "journal", None)
        self.journal = Journal.of(journal if journal is not None else own if isinstance(own, Journal) else None)
        if self.journal.url is None and not enabled():
            raise InputError("a watch records into the journal, and ROMAKIT_JOURNAL switches it off: "
                             "give journal= (a file or a postgresql:// URL)")
        self._snapshot_after = snapshot_after
        self.cycles = 0
        self.recorded = 0
        #: cycles whose listing the fleet changed under every time it was read (a
        #: reconnect storm): counted here and said once, not warned of each cycle
        self.unsettled = 0
        self.error: BaseException | None = None
        self._state: State | None = None
        self._pending = 0
        self._stop = threading.Event()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None

    # -- running ------------------------------------------------------------------------
    def start(self) -> Watch:
        """Run in a background thread (its journal connection is its own)."""
        self._thread = threading.Thread(target=self._run, name=f"romakit-watch {self.watch_id}", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        from romakit.link.listing import MISMATCH_SAID

        MISMATCH_SAID.set(True)  # this thread's reads: counted in ``unsettled``, said by the watch
        deadline = None if self.duration is None else time.monotonic() + self.duration
        try:
            with self.journal.connect() as conn:
                self.load(conn)
                while True:
                    self.cycle(conn)
                    if deadline is not None and time.monotonic() >= deadline:
                        break
                    wait = self.every if deadline is None else min(self.every, max(0.0, deadline - time.monotonic()))
                    if self._stop.wait(wait):
                        break
                self.snapshot(conn)
        except BaseException as e:  # kept for the handle (a background thread has no caller)
            self.error = e
            log.warning("watch %s stopped: %s: %s", self.watch_id, type(e).__name__, e)
        finally:
            with self._cond:
                self._stop.set()
                self._cond.notify_all()

    def load(self, conn: Conn) -> None:
        """Resume from this watch's last snapshot in the journal, and the events after it."""
        snap, later, _ = resume(conn, self.watch_id)
        self._state = None if snap is None else _replay(snap, later)

    def cycle(self, conn: Conn) -> int:
        """Read the fleet once, record what changed; returns the events recorded."""
        old, src = self._state, self._source
        src.unsettled = False
        full = old is None or not src.light or self.cycles % self.full_every == 0
        new = None
        if not full and old is not None:
            low = src.not_online()
            was_low = old.keys[old.status != ONLINE]
            left = was_low[~np.isin(was_low, low.keys)]
            if len(left) <= self.probe:
                seen = src.probe(left)
                new = _merge(old, _merge(low, seen, np.array([], old.keys.dtype)), left[~np.isin(left, seen.keys)])
        if new is None:
            new = src.full()
            full = True
            if src.unsettled and old is not None:  # who is missing from a read the fleet changed under is not gone
                new = _merge(old, new, np.array([], old.keys.dtype))
        now = time.time()
        changes = [] if old is None else diff(old, new)
        if changes and not src.light:
            times = src.times(np.array([c[0] for c in changes], dtype=object))
            changes = [(k, kind, prev, times.get(k, ms) if kind != GONE else -1, d) for k, kind, prev, ms, d in changes]
        rows = [(self.watch_id, now, None if ms < 0 else ms / 1000, self.target, str(k), kind, prev, detail)
                for k, kind, prev, ms, detail in changes]
        self._pending += len(rows)
        threshold = self._snapshot_after if self._snapshot_after is not None else max(1000, len(new) // 20)
        snap = old is None or (full and self._pending >= threshold)
        record(conn, rows, (self.watch_id, self.target, self.filters, new) if snap else None)
        if snap:
            self._pending = 0
        self._state = new
        with self._cond:
            self.cycles += 1
            self.recorded += len(rows)
            self.unsettled += bool(src.unsettled)
            self._cond.notify_all()
        if self.on_cycle is not None:
            self.on_cycle(self, rows)
        return len(rows)

    def snapshot(self, conn: Conn) -> None:
        """Store the known state now (when events were recorded since the last one)."""
        if self._state is not None and self._pending:
            record(conn, [], (self.watch_id, self.target, self.filters, self._state))
            self._pending = 0

    # -- the handle -----------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def wait(self, cycles: int, timeout: float | None = None) -> bool:
        """Block until ``cycles`` cycles are done in all (or the watch stopped, or
        ``timeout`` seconds passed); True when they are."""
        with self._cond:
            self._cond.wait_for(lambda: self.cycles >= cycles or self._stop.is_set(), timeout)
            return self.cycles >= cycles

    def stop(self, timeout: float | None = 60.0) -> Watch:
        """Stop after the cycle in progress (its snapshot stored); raises what stopped it if it failed."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        if self.error is not None:
            raise self.error
        return self

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the watch to end by itself (``duration``); True when it has."""
        if self._thread is not None:
            self._thread.join(timeout)
        return not self.running

    def events(self, since: Any = None) -> pd.DataFrame:
        """What this watch recorded (since its start, or ``since``): :func:`romakit.timeline`'s frame."""
        from romakit.timelines import timeline

        return timeline(since=since if since is not None else 0, watch_id=self.watch_id, journal=self.journal)

    def __repr__(self) -> str:
        what = ", ".join(f"{k}={v!r}" for k, v in self.filters.items())
        state = "failed" if self.error else "running" if self.running else "stopped"
        return (f"<Watch {self.watch_id!r} {state}: {self.kind} {self.target}{' (' + what + ')' if what else ''}"
                f" every {self.every:g}s, {self.cycles} cycles, {self.recorded} events"
                f"{f' ({self.unsettled} read while the fleet changed)' if self.unsettled else ''}"
                f" -> {self.journal.location}>")


def watch(client: Any, every: Any = "30s", *, name: str | None = None, journal: Any = None, full_every: int = 10,
          probe: int = 100, duration: Any = None, **filters: Any) -> Watch:
    """Watch ``client``'s fleet (a LinkClient, or an IotdaClient) every ``every`` in the
    background, recording status changes in the journal; returns the running
    :class:`Watch` (``.stop()``, ``.events()``, ``.cycles``).

    Cost: on LINK, a full listing every ``full_every`` cycles (appeared and gone
    devices); in between only the devices not online are listed, and up to ``probe``
    devices that left that set are read one by one (more: a full listing). IoTDA's
    listing has no status filter: each cycle lists what the filters match, and up to
    ``probe`` changed devices are read for their ``connection_status_update_time``.

    ``filters`` are the client's listing filters (``product_id=``, ``tag=``; IoTDA:
    ``gateway_id=`` for a gateway's children). ``name`` names the watch (default: from
    the target and the filters): a watch of the same name resumes from its last
    snapshot in the journal and the events after it, so a restart loses no change.
    ``journal`` defaults to the client's; ``duration`` ends it by itself (``"2h"``)."""
    return Watch(client, every, name=name, journal=journal, full_every=full_every, probe=probe,
                 duration=duration, **filters).start()

