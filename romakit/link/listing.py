"""Reading a whole fleet: ListDevices pages fetched concurrently, each decoded straight
from its bytes into columns, one DataFrame built column-wise at the end.

The fast path decodes a page with msgspec into typed structs that hold only the fields
the frame keeps (about 1 µs a device); a page the typed decoder refuses (an odd but
valid type somewhere) goes through the generic path (plain JSON, the same checks as
:func:`~romakit.link.answers.check_page`), so nothing the old reader accepted is lost.

Paging by offset under a changing fleet can skip or repeat devices. Every page carries
the service's ``total``; a read is *consistent* when every page reported the same total
and the unique devices read equal it. An inconsistent read is done again (up to
``rounds`` times); when the fleet never holds still, the last read is returned with a
warning and ``frame.attrs["romakit_total_mismatch"]`` (what was read, what the service
said), never a silently incomplete frame. Devices seen twice are kept once.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from itertools import chain
from typing import TYPE_CHECKING

import msgspec

from romakit.errors import MalformedResponse
from romakit.link.answers import check_page
from romakit.link.models import DEVICE_COLUMNS, PRODUCT_COLUMNS, columns_frame, dict_columns

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

log = logging.getLogger("romakit.link")

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


class _Device(_Product, gc=False):
    """A device; the product's fields at the top level (inherited) are read only when
    ``product`` is missing."""

    id: _Int = None
    device_id: _Int = None
    device_name: _Str = None
    client_id: _Str = None
    node_id: _Str = None
    node_type: _Int = None
    device_type: _Int = None
    online_status: _Int = None
    status: _Int = None
    parent_device_id: _Int = None
    parent_device_name: _Str = None
    product: _Product | None = None
    app_id: _Str = None
    app_name: _Str = None
    tags: list[str] | None = None
    description: _Str = None
    created_datetime: _Int = None
    last_updated_datetime: _Int = None
    last_login_datetime: _Int = None
    last_active_time: _Int = None
    client_ip: _Str = None
    keep_alive: _Text = None
    version: _Text = None


class _Page(msgspec.Struct, gc=False):
    total: int
    items: list[_Device] | None = None


_DECODER = msgspec.json.Decoder(_Page, strict=False)
_GENERIC = msgspec.json.Decoder()
_OWN = tuple(c for c in DEVICE_COLUMNS if c not in PRODUCT_COLUMNS and c != "id")


class Page:
    """One decoded page: the service's ``total`` and the page's columns."""

    __slots__ = ("columns", "n", "total")

    def __init__(self, total: int, columns: dict[str, list]) -> None:
        self.total = total
        self.columns = columns
        self.n = len(columns["id"])


def decode_page(raw: bytes) -> Page:
    """A ListDevices answer's bytes -> :class:`Page` (MalformedResponse when it is not one)."""
    with gc_paused():
        return _decode_page(raw)


@contextmanager
def gc_paused() -> Iterator[None]:
    """No collector passes inside (a page makes thousands of objects that all live on;
    passes over them would cost more than the decoding). Synchronous code only."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _decode_page(raw: bytes) -> Page:
    try:
        page = _DECODER.decode(raw)
    except (msgspec.ValidationError, msgspec.DecodeError):
        return _generic_page(raw)
    if page.total < 0:
        raise MalformedResponse(f"ListDevices answer has no usable 'total' (got {page.total!r})")
    items = page.items
    if items is None:
        if page.total:
            raise MalformedResponse("ListDevices answer has no 'items' list")
        items = []
    cols: dict[str, list] = {"id": [d.id if d.id is not None else d.device_id for d in items]}
    if None in cols["id"]:
        raise MalformedResponse("an item of the ListDevices answer has no usable 'id'")
    for name in _OWN:
        cols[name] = [getattr(d, name) for d in items]
    products = [d.product for d in items]
    for name in PRODUCT_COLUMNS:
        cols[name] = [getattr(p, name) if p is not None else None for p in products]
    if None in products:  # the product's fields may sit at the top level instead
        for i, (d, p) in enumerate(zip(items, products, strict=True)):
            if p is None:
                for name in PRODUCT_COLUMNS:
                    cols[name][i] = getattr(d, name)
    return Page(page.total, cols)


def _generic_page(raw: bytes) -> Page:
    """The slow path: plain JSON, the dict checks, the same columns."""
    try:
        body = _GENERIC.decode(raw)
    except msgspec.DecodeError:
        raise MalformedResponse(f"ListDevices answer is not JSON ({len(raw)} bytes)") from None
    page = check_page(body)
    return Page(page["total"], dict_columns(page["items"]))


FetchPage = Callable[[int], Awaitable[Page]]


async def read_all(fetch: FetchPage, page_size: int, concurrency: int, *, rounds: int = 3) -> pd.DataFrame:
    """Every page that ``fetch(offset)`` gives, read concurrently, as one frame.

    ``concurrency`` pages are in flight at once. The read is repeated while it is
    inconsistent (see the module docstring), at most ``rounds`` times.
    """
    for n in range(1, rounds + 1):
        pages = await _one_round(fetch, page_size, concurrency)
        totals = {p.total for p in pages}
        frame = _frame(pages)
        if len(totals) == 1 and len(frame) == pages[0].total:
            return frame
        log.info("devices(): the fleet changed while it was read (totals %s, %d unique devices); reading again "
                 "(round %d of %d)",
                 sorted(totals), len(frame), n, rounds)
    log.warning("devices(): the fleet changed while it was read, every time: %d devices read, the service reported "
                "total(s) %s after %d reads; some devices may be missing or gone (try again, or narrow the "
                "filters)", len(frame), sorted(totals), rounds)
    frame.attrs["romakit_total_mismatch"] = {"read": len(frame), "totals": sorted(totals)}
    return frame


async def _one_round(fetch: FetchPage, page_size: int, concurrency: int) -> list[Page]:
    first = await fetch(0)
    offsets = range(page_size, first.total, page_size)
    pages: list[Page | None] = [first, *([None] * len(offsets))]
    queue = iter(enumerate(offsets, start=1))

    async def worker() -> None:
        for i, off in queue:  # a shared iterator: each offset is taken once
            pages[i] = await fetch(off)

    if offsets:
        await asyncio.gather(*(worker() for _ in range(min(concurrency, len(offsets)))))
    out = [p for p in pages if p is not None]
    # the fleet grew while it was read: what lies past the first page's total
    while out[-1].n == page_size and out[-1].total > len(out) * page_size:
        out.append(await fetch(len(out) * page_size))
    return out


def _frame(pages: list[Page]) -> pd.DataFrame:
    if len(pages) == 1:
        cols = pages[0].columns
    else:
        cols = {c: list(chain.from_iterable(p.columns[c] for p in pages)) for c in DEVICE_COLUMNS}
    with gc_paused():
        frame = columns_frame(cols)
    dup = frame["id"].duplicated()
    if dup.any():  # the fleet shifted between pages: keep each device once
        frame = frame[~dup.to_numpy()].reset_index(drop=True)
    return frame
