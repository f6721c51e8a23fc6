"""Reading which forced devices came back, at a cost that shrinks with those still offline.

:class:`Poll` holds one follow's state (the pending devices and when each was forced,
on the service's clock) and reads the service once per :meth:`Poll.cycle`; what each
cycle cost is kept in :class:`Reads`. :func:`run_follow` polls until all are back or
the time is up. The judging and the reading of the result are in
:mod:`romakit.results.follow`.

The cost rule: a cycle reads the pending devices one by one (ShowDevice, about
``SHOW_COST`` listed devices each) or, when that is cheaper, the offline set (only the
forced devices' products when that is smaller still); a pending device that left the
offline set counts as back at the cycle's time, and its own record is read (its login
time then says when) only when that costs about what the listing did. So no cycle
costs more than about twice what reading the pending devices by id would: the reads
follow the devices still offline, never the fleet. Two exceptions, said in the reads:
on the first read, devices already back (a follow begun after they returned) are read
for their login times, by the cheaper of one by one and the online listing, once; and
when the fleet's total fell (a device deleted), the devices that left are read so to
tell the gone from the back.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from romakit.errors import ApiError

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

#: one ShowDevice costs about what this many listed devices cost (a page holds 999)
SHOW_COST = 20
PAGE = 999
#: at most this many per-product listings of the offline set in one cycle
MAX_PRODUCT_LISTINGS = 16


@dataclass
class Reads:
    """What following cost: per cycle, requests made and devices read, and how many
    devices were still pending when it began."""

    cycles: list[dict[str, Any]] = field(default_factory=list)

    def frame(self) -> pd.DataFrame:
        import pandas as pd

        cols = ["cycle", "at", "pending", "requests", "devices_read", "left", "how"]
        return pd.DataFrame(self.cycles, columns=cols)


def _ms(v: Any) -> int | None:
    """A service timestamp (epoch ms, or a pandas/np time) -> epoch ms, None when absent."""
    import pandas as pd

    if v is None or (not isinstance(v, (list, tuple)) and pd.isna(v)):
        return None
    if isinstance(v, (int, float)):
        return int(v)
    return int(pd.Timestamp(v).value // 1_000_000)


def _status(v: Any) -> str:
    if v in (1, "1", "online"):
        return "online"
    if v in (2, "2", "offline"):
        return "offline"
    if v in (0, "0", "never_connected"):
        return "never_connected"
    return "unknown"


class Poll:
    """The state of one follow: pending ids and their forced time (service clock, ms).

    Each :meth:`cycle` costs at most what reading the pending devices one by one would
    (``show_cost`` device-equivalents each), so a follow's reads shrink with the devices
    still offline, not with the fleet: the offline set is listed (only the forced
    devices' products when that is smaller) only while it is the cheaper read, and a
    pending device that left it counts as back at the cycle's time unless its own
    record can be read for about what the listing cost (then its login time says when).
    """

    def __init__(self, forced: Mapping[Any, int], reader: Any, *, sent: Mapping[Any, int] | None = None,
                 show_cost: int = SHOW_COST) -> None:
        self.forced: dict[Any, int] = dict(forced)
        #: when each request went out (service clock, ms): a device read online whose login
        #: is after it reconnected while its request was answered (``forced`` is the answer's time)
        self.sent: dict[Any, int] = dict(sent) if sent is not None else {}
        self.pending = set(self.forced)
        self.back: dict[Any, int | None] = {}
        #: how each device back was timed: ``login`` (the service's login time),
        #: ``online`` (read online, no newer login stamp: the read's time) or ``left``
        #: (left the offline set: the cycle's time, an upper bound)
        self.back_by: dict[Any, str] = {}
        self.seen: dict[Any, dict[str, Any]] = {}
        self.gone: set[Any] = set()
        self.reader = reader
        self.reads = Reads()
        self.show_cost = show_cost
        self._offline_total: int | None = None
        #: offline devices per product as last read, and the product of each pending device
        self._offline_of: dict[Any, int] = {}
        self._product: dict[Any, Any] = {}
        self._fleet_total: int | None = None

    async def _call(self, name: str, *args: Any, **kw: Any) -> Any:
        fn = getattr(self.reader, name)
        if inspect.iscoroutinefunction(fn):
            return await fn(*args, **kw)
        return await asyncio.to_thread(fn, *args, **kw)

    def _cost(self, requests: int, devices: int) -> int:
        """A read's cost in device-equivalents: a request's overhead plus each device."""
        return requests * self.show_cost + devices

    def _judge(self, did: Any, status: str, login: int | None, now_ms: int) -> None:
        forced = self.forced[did]
        if login is not None and login > forced:
            self.back[did], self.back_by[did] = login, "login"
        elif status == "online" and login is not None and login > self.sent.get(did, forced):
            self.back[did], self.back_by[did] = login, "login"  # back before the answer to its force arrived
        elif status == "online":  # online again, its login stamp not after the force: the status says back
            self.back[did], self.back_by[did] = now_ms, "online"
        else:
            return
        self.pending.discard(did)

    async def _show(self, ids: list[Any], now_ms: int, concurrency: int = 16) -> int:
        """ShowDevice for each of ``ids``; returns requests made."""
        sem = asyncio.Semaphore(concurrency)

        async def one(did: Any) -> None:
            async with sem:
                try:
                    d = await self._call("device", did)
                except ApiError as e:
                    if getattr(e, "status", None) == 404:
                        self.gone.add(did)
                        self.pending.discard(did)
                        self.back.pop(did, None)
                        self.back_by.pop(did, None)
                        return
                    raise
            if not isinstance(d, Mapping):
                return
            self.seen[did] = {k: d.get(k) for k in ("device_name", "product_name", "parent_device_name", "tags")}
            prod = d.get("product")
            if isinstance(prod, Mapping):
                self.seen[did]["product_name"] = self.seen[did]["product_name"] or prod.get("product_name")
                self._product.setdefault(did, prod.get("product_id"))
            self.seen[did]["online_status"] = _status(d.get("online_status"))
            if did in self.back:  # counted back when it left the offline set: its login says when
                login = _ms(d.get("last_login_datetime"))
                if login is not None and login > self.forced[did]:
                    self.back[did], self.back_by[did] = login, "login"
                return
            self._judge(did, _status(d.get("online_status")), _ms(d.get("last_login_datetime")), now_ms)

        await asyncio.gather(*(one(i) for i in ids))
        return len(ids)

    def _listing_plan(self, pending: list[Any]) -> tuple[list[Any] | None, int | None]:
        """How to list the offline set: per product of the pending devices (a list) or
        whole (None), and what that is expected to cost (None: not known yet)."""
        total = self._offline_total
        if total is None:
            return None, None
        whole = self._cost(max(-(-total // PAGE), 1), total)
        products = {self._product.get(d) for d in pending}
        if None in products or len(products) > MAX_PRODUCT_LISTINGS:
            return None, whole
        n = [self._offline_of.get(p, 0) for p in products]
        split = sum(self._cost(max(-(-k // PAGE), 1), k) for k in n)
        return (sorted(products), split) if split < whole else (None, whole)

    async def _offline(self, products: list[Any] | None, wanted: set[Any]) -> tuple[dict[Any, tuple[str, int | None]], int, int]:
        """The offline set (of ``products``): {id: (status, login ms)} for ``wanted`` ids,
        requests made, devices read."""
        if products is None:
            frames = [await self._call("devices", online_status="offline")]
        else:
            frames = list(await asyncio.gather(*(self._call("devices", online_status="offline", product_id=p)
                                                 for p in products)))
        found: dict[Any, tuple[str, int | None]] = {}
        requests = devices = 0
        counts: dict[Any, int] = {}
        for k, frame in enumerate(frames):
            n = len(frame)
            requests += max(-(-n // PAGE), 1)
            devices += n
            if products is not None:
                counts[products[k]] = n
            elif n and "product_id" in frame.columns:
                counts = {p: int(c) for p, c in frame["product_id"].value_counts().items()}
            if n:
                found.update(self._take(frame, wanted))
        if products is None:
            self._offline_of, self._offline_total = counts, devices
        else:
            self._offline_total = (self._offline_total or 0) - sum(self._offline_of.get(p, 0) for p in products) + devices
            self._offline_of.update(counts)
        return found, requests, devices

    def _take(self, frame: pd.DataFrame, wanted: set[Any]) -> dict[Any, tuple[str, int | None]]:
        """The ``wanted`` devices of a listing: {id: (status, login ms)}; what the
        listing says of them is kept for the stragglers' table."""
        import numpy as np

        ids = frame["id"].to_numpy()
        keep = np.flatnonzero(np.fromiter((i in wanted for i in ids.tolist()), bool, len(ids)))
        sub = frame.iloc[keep]
        st = sub["online_status"].astype(object).tolist()
        logins = sub["last_login_datetime"].tolist() if "last_login_datetime" in sub.columns else [None] * len(sub)
        prods = sub["product_id"].tolist() if "product_id" in sub.columns else [None] * len(sub)
        cols = [c for c in ("device_name", "product_name", "parent_device_name", "tags") if c in sub.columns]
        rows: Iterable[tuple] = sub[cols].itertuples(index=False, name=None) if cols else [()] * len(sub)
        found = {}
        for did, s, login, prod, row in zip(sub["id"].tolist(), st, logins, prods, rows, strict=True):
            found[did] = (_status(s), _ms(login))
            self.seen[did] = {**dict(zip(cols, row, strict=True)), "online_status": _status(s)}
            if prod is not None and not _missing(prod):
                self._product[did] = int(prod)
        return found

    async def _fleet_shrank(self) -> tuple[bool, int]:
        """Whether the fleet's total fell since the last look (a device deleted: one that
        left the offline set may be gone, not back); requests made (one, when it can ask)."""
        if not hasattr(self.reader, "device_page"):
            return False, 0
        probe = await self._call("device_page", 0, 1)
        total = int(probe.get("total") or 0) if isinstance(probe, Mapping) else None
        before, self._fleet_total = self._fleet_total, total
        return (total is not None and before is not None and total < before), 1

    async def _left(self, left: list[Any], now_ms: int, listed: int, first: bool) -> tuple[int, int, str]:
        """The pending devices that left the offline set count as back at ``now_ms``. Their
        own records are read (their login time says when) when that costs about what the
        listing did (``listed``); and, by the cheaper of one by one and the online
        listing, when the fleet shrank (one may be gone, not back) or on the ``first``
        read (the follow began after they came back: nothing else can say when).
        Returns requests made, devices read and how."""
        shrank, requests = await self._fleet_shrank()
        devices = requests
        for did in left:
            self.back[did], self.back_by[did] = now_ms, "left"
            self.pending.discard(did)
        by_id = self._cost(len(left), len(left))
        if by_id <= listed or not hasattr(self.reader, "device_page"):
            if by_id > listed and not (shrank or first):
                return requests, devices, " + left = back"
            return requests + await self._show(left, now_ms), devices + len(left), " + by id"
        if not (shrank or first):
            return requests, devices, " + left = back"
        probe = await self._call("device_page", 0, 1, online_status="online")  # its total, one item
        online_total = int(probe.get("total") or 0) if isinstance(probe, Mapping) else 10**9
        requests, devices = requests + 1, devices + 1
        if by_id <= self._cost(max(-(-online_total // PAGE), 1), online_total):
            return requests + await self._show(left, now_ms), devices + len(left), " + by id"
        frame = await self._call("devices", online_status="online")
        requests += max(-(-len(frame) // PAGE), 1)
        devices += len(frame)
        online = self._take(frame, set(left)) if len(frame) else {}
        for did, (_, login) in online.items():
            if login is not None and login > self.sent.get(did, self.forced[did]):
                self.back[did], self.back_by[did] = login, "login"
        rest = [d for d in left if d not in online]  # neither offline nor online: gone, or changed again
        if not rest:
            return requests, devices, " + online listing"
        return requests + await self._show(rest, now_ms), devices + len(rest), " + online listing + by id"

    async def cycle(self, no: int) -> None:
        """One poll: read what answers the question for the pending devices, judge them."""
        if not self.pending:
            return
        now_ms = int(time.time() * 1000)
        pending = list(self.pending)
        at = len(pending)
        requests = devices_read = left_n = 0
        products, listing = self._listing_plan(pending)
        by_id = self._cost(at, at)
        if listing is not None and by_id <= listing or at * self.show_cost <= PAGE:  # few: one by one
            requests += await self._show(pending, now_ms)
            devices_read += at
            how = "by id"
        else:
            if self._fleet_total is None and no == 0:
                _, req = await self._fleet_shrank()  # the fleet's size before anything left the offline set
                requests += req
                devices_read += req
            found, req, n = await self._offline(products, set(pending))
            requests += req
            devices_read += n
            how = "offline listing" if products is None else f"offline listing of {len(products)} products"
            left = []
            for did in pending:
                if did in found:
                    self._judge(did, *found[did], now_ms)
                else:
                    left.append(did)
            if left:  # left the offline set since the last read: back (or gone) by now
                req, dev, how_left = await self._left(left, now_ms, self._cost(req, n), first=no == 0)
                requests += req
                devices_read += dev
                left_n = len(left)
                how += how_left
        self.reads.cycles.append({"cycle": no, "at": now_ms / 1000, "pending": at, "requests": requests,
                                  "devices_read": devices_read, "left": left_n, "how": how})


def _missing(v: Any) -> bool:
    import pandas as pd

    return v is None or (not isinstance(v, (list, tuple)) and bool(pd.isna(v)))


async def run_follow(forced: Mapping[Any, int], reader: Any, *, within: float, every: float,
                     on_cycle: Callable[[Poll], Any] | None = None, cycles: int | None = None,
                     sent: Mapping[Any, int] | None = None) -> Poll:
    """Poll ``reader`` until every one of ``forced`` is back, ``within`` seconds passed or
    (``cycles``) that many reads were made (``sent``: see :class:`Poll`)."""
    state = Poll(forced, reader, sent=sent)
    t0 = time.monotonic()
    no = 0
    while state.pending:
        await state.cycle(no)
        no += 1
        if on_cycle is not None:
            on_cycle(state)
        left = within - (time.monotonic() - t0)
        if not state.pending or left <= 0 or (cycles is not None and no >= cycles):
            break
        await asyncio.sleep(min(every, left))
    return state
