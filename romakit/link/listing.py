"""Reading a whole fleet: ListDevices pages fetched concurrently, each decoded from its
bytes into compact column arrays as it arrives, one DataFrame built from them at the end.

The fast path decodes a page with msgspec into typed structs that hold only the fields
the frame keeps, turns them into columns at once (one tuple per device, transposed in
C) and each column into a pyarrow array while the page is hot in the cache: what a page
leaves behind until the frame is built is its arrays, not a thousand Python objects a
device. A page the typed decoder refuses (an odd but valid type somewhere, a device
without ``id`` or with its product's fields at the top level) goes through the generic
path (plain JSON, the same checks as :func:`~romakit.link.answers.check_page`); a column
pyarrow cannot take stays a list and goes through the frame's general path
(:func:`~romakit.link.models.column`), so nothing the old reader accepted is lost.

Paging by offset under a changing fleet can skip or repeat devices. Every page carries
the service's ``total``; a read is *consistent* when every page reported the same total
and the unique devices read equal it. An inconsistent read is done again (up to
``rounds`` times); when the fleet never holds still, the last read is returned with a
warning and ``frame.attrs["romakit_total_mismatch"]`` (what was read, what the service
said), never a silently incomplete frame. Devices seen twice are kept once. A caller
that reports such reads itself (a watch in a reconnect storm, where every cycle's read
can be one) sets :data:`MISMATCH_SAID` in its context: the warning is then logged at
INFO, and the attribute stays.

Whatever the service answers, a read is bounded: no page is read that the first page's
``total`` (and the growth one read allows) does not justify, nothing is allocated from
``total`` itself, and pages that contradict themselves (an empty or short page before the
total, more devices than the total or the page size, a total that keeps growing) end the
read; when every read contradicts itself, :class:`~romakit.errors.ListingContradiction`
says how. A listed device whose id no LINK device can have is left out of the frame and
named (a warning, and ``frame.attrs["romakit_malformed"]``): one corrupt record on the
service's side leaves the rest of the fleet readable, and is never dropped silently.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Awaitable, Callable, Iterator, Mapping
from itertools import chain
from typing import TYPE_CHECKING, Any

import msgspec

from romakit.errors import ListingContradiction, MalformedResponse
from romakit.jsondepth import MAX_DEPTH, gc_paused, too_deep
from romakit.link.answers import check_page, whole_number
from romakit.link.models import (
    DEVICE_COLUMNS,
    PRODUCT_COLUMNS,
    columns_frame,
    dict_columns,
    wire_array,
)
from romakit.wire import LINK_ID_MAX, LINK_ID_MIN

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

log = logging.getLogger("romakit.link")
#: True in the context of a caller that reports an inconsistent read itself (from
#: ``frame.attrs["romakit_total_mismatch"]``): the warning is then logged at INFO
MISMATCH_SAID: contextvars.ContextVar[bool] = contextvars.ContextVar("romakit_mismatch_said", default=False)

_Int = int | None
_Str = str | None
_Text = str | int | None  # keep_alive / version: strings in the SDK's model, numbers seen too


class _Product(msgspec.Struct, gc=False):
    product_id: _Int = None
    product_name: _Str = None
    manufacturer_id: _Str = None
    model: _Str = None
    protocol_type: _Int = None
    product_type: _Int = None


class _Device(msgspec.Struct, gc=False):
    """A device, only what the frame keeps (``device_id``, the legacy copy of ``id``, and
    product fields at the top level are read by the generic path, when ``id`` or
    ``product`` is missing)."""

    id: _Int = None
    device_name: _Str = None
    client_id: _Str = None
    node_id: _Str = None
    node_type: _Int = None
    device_type: _Int = None
    online_status: _Int = None
    status: _Int = None
    parent_device_id: _Int = None
    parent_device_name: _Str = None
    app_id: _Str = None
    app_name: _Str = None
    tags: tuple[str, ...] | None = None  # lists in the frame: made at the end (see _page)
    description: _Str = None
    created_datetime: _Int = None
    last_updated_datetime: _Int = None
    last_login_datetime: _Int = None
    last_active_time: _Int = None
    client_ip: _Str = None
    keep_alive: _Text = None
    version: _Text = None
    product: _Product | None = None  # last: the transposed columns end with it


class _Page(msgspec.Struct, gc=False):
    total: int
    items: list[_Device] | None = None


_DECODER = msgspec.json.Decoder(_Page, strict=False)
_GENERIC = msgspec.json.Decoder()
_OWN = _Device.__struct_fields__[:-1]
assert set(_OWN) | set(PRODUCT_COLUMNS) == set(DEVICE_COLUMNS) and _Product.__struct_fields__ == PRODUCT_COLUMNS
_astuple = msgspec.structs.astuple


class Page:
    """One decoded page: the service's ``total``, its device count ``n`` (as listed, the
    unusable ones included), its ``columns`` (each a pyarrow array, or a list of wire
    values, see :func:`~romakit.link.models.wire_array`) and the devices left out of them
    (``bad``: their id as text, name and problem)."""

    __slots__ = ("bad", "columns", "n", "total")

    def __init__(self, total: int, n: int, columns: dict[str, Any], bad: list[dict] | None = None) -> None:
        self.total, self.n, self.columns, self.bad = total, n, columns, bad or []


def decode_page(raw: bytes) -> Page:
    """A ListDevices answer's bytes -> :class:`Page` (MalformedResponse when it is not one)."""
    with gc_paused():
        return _decode_page(raw)


def _decode_page(raw: bytes) -> Page:
    try:
        page = _DECODER.decode(raw)
    except (msgspec.ValidationError, msgspec.DecodeError, RecursionError):  # (the collector is paused)
        return _generic_page(raw)
    if page.total < 0:
        raise MalformedResponse(f"ListDevices answer has no usable 'total' (got {page.total!r})")
    items = page.items
    if items is None:
        if page.total:
            raise MalformedResponse("ListDevices answer has no 'items' list")
        items = []
    if not items:
        return _page(page.total, {c: [] for c in DEVICE_COLUMNS})
    *own, products = zip(*map(_astuple, items), strict=True)  # one tuple a device, transposed in C
    ids = own[0]  # no id, an id out of range, or the product's fields at the top level:
    if ids.count(None) or min(ids) < LINK_ID_MIN or max(ids) > LINK_ID_MAX or products.count(None):
        return _generic_page(raw)
    cols: dict[str, Any] = dict(zip(_OWN, own, strict=True))
    tags = cols["tags"]  # each distinct tag set kept once (a fleet has few; tuples of strings
    seen: dict = {}  # also drop out of the collector's sight, lists would not): lists at the end
    cols["tags"] = list(map(seen.setdefault, tags, tags))
    cols.update(zip(PRODUCT_COLUMNS, zip(*map(_astuple, products), strict=True), strict=True))
    return _page(page.total, cols)


def _generic_page(raw: bytes) -> Page:
    """The slow path: plain JSON, the dict checks, the same columns."""
    if too_deep(raw):
        raise MalformedResponse(f"ListDevices answer is JSON nested too deep to read (past {MAX_DEPTH} levels, {len(raw)} bytes)")
    try:
        body = _GENERIC.decode(raw)
    except msgspec.DecodeError:
        raise MalformedResponse(f"ListDevices answer is not JSON ({len(raw)} bytes)") from None
    page = check_page(body)
    items, bad = _usable(page["items"])
    return _page(page["total"], dict_columns(items), len(page["items"]), bad)


def _usable(items: list) -> tuple[list, list[dict]]:
    """The items whose id a LINK device can have, and the others as :attr:`Page.bad` rows."""
    good, bad = [], []
    for it in items:
        dev = whole_number(it.get("id", it.get("device_id")))
        if dev is not None and LINK_ID_MIN <= dev <= LINK_ID_MAX:
            good.append(it)
            continue
        name = it.get("device_name")
        bad.append({"id": _text(dev), "device_name": None if name is None else str(name)[:64],
                    "problem": f"id out of range {LINK_ID_MIN}..{LINK_ID_MAX}"})
    return good, bad


def _text(n: Any) -> str:
    try:
        return str(n)
    except ValueError:  # past Python's 4,300 digits
        return f"<an int of {n.bit_length()} bits>"


def _page(total: int, cols: dict[str, Any], n: int | None = None, bad: list[dict] | None = None) -> Page:
    """Each column as a compact pyarrow array where it can be (tags stay Python values)."""
    out: dict[str, Any] = {}
    for c in DEVICE_COLUMNS:
        vals = cols[c]
        try:
            arr = wire_array(c, vals)
        except (TypeError, ValueError, OverflowError) as e:  # e.g. a number past 64 bits
            raise MalformedResponse(f"ListDevices answer's '{c}' holds a value no device frame can take ({e})") from None
        out[c] = list(vals) if arr is None else arr
    return Page(total, len(out["id"]) if n is None else n, out, bad)


FetchPage = Callable[[int], Awaitable[Page]]
#: ``raw(offset, on_sent)``: a page's bytes, calling ``on_sent()`` once its request is written
FetchRaw = Callable[[int, Callable[[], None]], Awaitable[bytes]]


async def read_all(fetch: FetchPage, page_size: int, concurrency: int, *, rounds: int = 3,
                   raw: FetchRaw | None = None) -> pd.DataFrame:
    """Every page that ``fetch(offset)`` gives, read concurrently, as one frame.

    ``concurrency`` pages are in flight at once. The read is repeated while it is
    inconsistent (see the module docstring), at most ``rounds`` times. With ``raw``,
    each lane asks for its next page before it decodes the one it has, so decoding
    overlaps the wait for the service instead of delaying the next request (a page
    that does not decode is read again with ``fetch``, its checks and retries).
    """
    problem: ListingContradiction | None = None
    for n in range(1, rounds + 1):
        try:
            pages = await _one_round(fetch, page_size, concurrency, raw)
        except ListingContradiction as e:
            problem = e
            log.info("devices(): the service's answers contradict themselves (%s); reading again (round %d of %d)",
                     e, n, rounds)
            continue
        problem = None
        totals = {p.total for p in pages}
        bad = [b for p in pages for b in p.bad]
        frame = _frame(pages)
        if len(totals) == 1 and len(frame) + len(bad) == pages[0].total:
            return _named(frame, bad)
        log.info("devices(): the fleet changed while it was read (totals %s, %d unique devices); reading again "
                 "(round %d of %d)",
                 _totals(totals), len(frame), n, rounds)
    if problem is not None:
        raise ListingContradiction(f"ListDevices answers contradict themselves in each of {rounds} reads (the last: "
                                   f"{problem}): no listing was returned; the service is at fault (try again later, "
                                   "or report it)")
    log.log(logging.INFO if MISMATCH_SAID.get() else logging.WARNING,
            "devices(): the fleet changed while it was read, every time: %d devices read, the service reported "
            "total(s) %s after %d reads; some devices may be missing or gone (try again, or narrow the "
            "filters)", len(frame), _totals(totals), rounds)
    frame.attrs["romakit_total_mismatch"] = {"read": len(frame), "totals": sorted(totals)}
    return _named(frame, bad)


def _totals(totals: set[int]) -> str:
    """The totals a read's pages reported, for a log line: a few listed, many as their
    range (a storm gives one a page)."""
    few = sorted(totals)
    return str(few) if len(few) <= 4 else f"{few[0]:,}..{few[-1]:,} ({len(few)} different)"


def _named(frame: pd.DataFrame, bad: list[dict]) -> pd.DataFrame:
    """The frame, with the devices left out of it named (a warning and its attrs)."""
    if bad:
        shown = "; ".join(f"id {b['id'][:40]} ({b['device_name']!r}): {b['problem']}" for b in bad[:5])
        more = f"; and {len(bad) - 5} more" if len(bad) > 5 else ""
        log.warning("devices(): %d listed device(s) left out, their record is unusable: %s%s (a fault of the "
                    "service's record: frame.attrs['romakit_malformed'] lists them)", len(bad), shown, more)
        frame.attrs["romakit_malformed"] = bad
    return frame


def _fits(page: Page, off: int, size: int, first: int, limit: int) -> None:
    """ListingContradiction when a page contradicts itself or the read (see the module docstring)."""
    n, total = page.n, page.total
    if n > size:
        problem = f"{n} devices in a page of {size} at offset {off}"
    elif n > max(total - off, 0):
        problem = f"{n} devices at offset {off} under a total {total}"
    elif n < min(size, total - off):
        problem = f"{'an empty page' if n == 0 else f'a page of {n} devices'} at offset {off} under a total {total}"
    elif total > limit:
        problem = f"the total grew from {first} to {total} during one read"
    else:
        return
    raise ListingContradiction(problem)


async def _one_round(fetch: FetchPage, page_size: int, concurrency: int, raw: FetchRaw | None) -> list[Page]:
    first = await fetch(0)
    # what one read allows the fleet to grow while it is read (more: it is read again)
    limit = first.total + max(page_size, first.total // 10)
    _fits(first, 0, page_size, first.total, limit)
    offsets = range(page_size, first.total, page_size)
    pages: dict[int, Page] = {0: first}  # by offset; never allocated from the service's total
    queue = iter(offsets)

    def took(off: int, page: Page) -> None:
        _fits(page, off, page_size, first.total, limit)
        pages[off] = page

    async def worker() -> None:
        if raw is None:
            for off in queue:  # a shared iterator: each offset is taken once
                took(off, await fetch(off))
            return
        taken = next(queue, None)
        ahead = _Asked(raw, taken) if taken is not None else None
        try:
            while taken is not None and ahead is not None:
                off = taken
                body = await ahead.body()
                taken = next(queue, None)
                ahead = _Asked(raw, taken) if taken is not None else None
                if ahead is not None:
                    await ahead.written()  # the next page is on its way before this one is decoded
                try:
                    page = decode_page(body)
                except MalformedResponse:  # read again with the checks and retries, alone in the lane
                    if ahead is not None:
                        await ahead.close()
                    page = await fetch(off)
                    ahead = _Asked(raw, taken) if taken is not None else None
                took(off, page)
        finally:
            if ahead is not None:
                await ahead.close()

    if offsets:
        lanes = [asyncio.ensure_future(worker()) for _ in range(min(concurrency, len(offsets)))]
        try:
            await asyncio.gather(*lanes)
        except BaseException:  # one lane failed (or the read was cancelled): no other reads on
            for lane in lanes:
                lane.cancel()
            await asyncio.gather(*lanes, return_exceptions=True)
            raise
    out = [pages[off] for off in sorted(pages)]
    # the fleet grew while it was read: what lies past the first page's total (up to the limit)
    while out[-1].n == page_size and out[-1].total > len(out) * page_size:
        off = len(out) * page_size
        page = await fetch(off)
        _fits(page, off, page_size, first.total, limit)
        out.append(page)
    return out


class _Asked:
    """One page's request, started at once: :meth:`written` returns when it is on the
    wire (or over), :meth:`body` gives its bytes."""

    __slots__ = ("_sent", "_task")

    def __init__(self, raw: FetchRaw, offset: int) -> None:
        self._sent: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._task = asyncio.ensure_future(raw(offset, self._on_sent))

    def _on_sent(self) -> None:
        if not self._sent.done():  # once per try: a retry writes again
            self._sent.set_result(None)

    async def written(self) -> None:
        if not (self._sent.done() or self._task.done()):
            await asyncio.wait((self._sent, self._task), return_when=asyncio.FIRST_COMPLETED)

    async def body(self) -> bytes:
        return await self._task

    async def close(self) -> None:
        """Stop the request (if still going) and collect its end, whatever it was."""
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


def _frame(pages: list[Page]) -> pd.DataFrame:
    """One frame from the pages, built column by column (:class:`_Columns`)."""
    with gc_paused():
        try:
            frame = columns_frame(_Columns(pages))
        except (TypeError, ValueError, OverflowError) as e:  # a value no column of its kind can hold
            raise MalformedResponse(f"ListDevices answers hold a value the device frame cannot take: {e}") from None
    dup = frame["id"].duplicated()
    if dup.any():  # the fleet shifted between pages: keep each device once
        frame = frame[~dup.to_numpy()].reset_index(drop=True)
    return frame


class _Columns(Mapping):
    """The pages' columns, each joined when it is asked for and then let go from the
    pages (so each may be asked for once): only one column is ever held twice, and the
    peak stays near the pages' arrays plus the frame."""

    def __init__(self, pages: list[Page]) -> None:
        self.pages = pages

    def __getitem__(self, col: str) -> Any:
        import pyarrow as pa

        chunks = [p.columns.pop(col) for p in self.pages]
        if col == "tags":
            return [list(t) if type(t) is tuple else t for t in chain.from_iterable(chunks)]
        if not chunks or not all(isinstance(x, pa.Array) for x in chunks):  # the general path, whole column
            return list(chain.from_iterable(x if isinstance(x, list) else x.to_pylist() for x in chunks))
        if len(chunks) == 1:
            return chunks[0]
        if isinstance(chunks[0], pa.DictionaryArray):  # one dictionary for all pages, then one array
            return pa.concat_arrays(pa.chunked_array(chunks).unify_dictionaries().chunks)
        if len({x.type for x in chunks}) > 1:  # int8 enum codes, and a page that needed int64
            chunks = [x.cast(pa.int64()) for x in chunks]
        return pa.concat_arrays(chunks)

    def __iter__(self) -> Iterator[str]:
        return iter(DEVICE_COLUMNS)

    def __len__(self) -> int:
        return len(DEVICE_COLUMNS)
