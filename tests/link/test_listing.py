"""The fleet listing (romakit.link.listing): the column-wise frame from raw bytes equals
the dict path; odd values take the general path; paging stays correct while the fleet
changes (real sockets to the sandbox; the fleet is changed between page reads by a
transport that wraps the real one)."""

from __future__ import annotations

import json

import httpx
import pandas as pd
import pyarrow as pa
import pytest

import romakit as rk
from romakit.link import listing, models


@pytest.fixture()
def sb():
    s = rk.sandbox(devices=2600, seed=14, mqtt=False)  # three pages of 999
    yield s
    s.close()


def _wire(sb) -> list[dict]:
    return json.loads(json.dumps(sb.fleet.all()))


def test_frame_from_bytes_equals_the_dict_path(sb):
    with sb.link_client(progress=False) as link:
        fast = link.devices()
    ref = models.devices_frame(_wire(sb))
    pd.testing.assert_frame_equal(fast, ref)
    assert len(fast) == 2600 and fast["id"].is_unique


def test_odd_values_take_the_general_path():
    items = [
        {"id": "7100001", "device_name": "a", "online_status": 7, "keep_alive": 60, "version": 2,
         "product_id": 5, "product_name": "P", "created_datetime": 1.7e12},
        {"device_id": 7100002, "device_name": "b", "online_status": 1, "keep_alive": "120", "tags": ["x"],
         "product": {"product_id": 6, "product_name": "Q", "protocol_type": 0}},
    ]
    page = listing.decode_page(json.dumps({"total": 2, "items": items}).encode())
    f = models.columns_frame(page.columns)
    assert f["id"].tolist() == [7100001, 7100002]
    assert f["online_status"].astype(object).tolist() == ["7", "online"]  # unknown code kept as text
    assert f["keep_alive"].tolist() == [60, 120] and f["version"].tolist() == ["2", pd.NA]
    assert f["product_id"].tolist() == [5, 6] and f["product_name"].astype(object).tolist() == ["P", "Q"]
    assert f["protocol_type"].astype(object).tolist()[1] == "mqtt"
    pd.testing.assert_frame_equal(f, models.devices_frame(items))


def _body(items: list[dict], total: int | None = None) -> bytes:
    return json.dumps({"total": len(items) if total is None else total, "items": items}).encode()


def test_a_page_is_held_as_compact_arrays(sb):
    """What a page leaves behind until the frame is built: arrays (text of few values as
    dictionary codes, enum codes as int8), one tags tuple per distinct tag set."""
    items = _wire(sb)[:999]
    cols = listing.decode_page(_body(items)).columns
    assert all(isinstance(cols[c], pa.Array) for c in models.DEVICE_COLUMNS if c != "tags")
    assert pa.types.is_dictionary(cols["product_name"].type) and cols["online_status"].type == pa.int8()
    assert cols["device_name"].type == pa.large_string() and cols["keep_alive"].type == pa.int64()  # sent as "120"
    distinct = {tuple(d["tags"]) for d in items}
    assert len({id(t) for t in cols["tags"]}) == len(distinct) < len(items)


def test_pages_of_every_kind_join_into_the_frame_the_dict_path_makes(sb):
    """Typed pages with different dictionaries, a page whose enum codes do not fit int8,
    one with text where numbers belong (the general path for that column), one with the
    product's fields at the top level (the generic decoder): one frame, as from dicts."""
    wire = _wire(sb)
    plain, other = wire[:999], wire[999:1998]
    for d in other[:5]:
        d["product"]["product_name"] = "A product only this page has"
    odd = [dict(d) for d in wire[1998:2010]]
    odd[0]["online_status"] = 300  # not a documented code, nor an int8
    odd[1]["keep_alive"] = "sixty"  # not a number: missing, as the general path makes it
    odd[2]["version"] = 7
    odd[3]["created_datetime"] = "1700000000000"  # text where a number belongs
    flat = [dict(d) for d in wire[2010:2020]]
    for d in flat:
        d.update(d.pop("product"))  # the product's fields at the top level
    flat[0]["tags"] = None
    pages = [listing.decode_page(_body(p, 2020)) for p in (plain, other, odd, flat)]
    frame = listing._frame(pages)
    ref = models.devices_frame(plain + other + odd + flat)
    pd.testing.assert_frame_equal(frame, ref)
    assert frame["online_status"].astype(object)[1998] == "300" and frame["keep_alive"].isna()[1999]
    assert "A product only this page has" in frame["product_name"].cat.categories


@pytest.mark.parametrize("body", [
    b"<html>", b'{"items": []}', b'{"total": 3}', b'{"total": 1, "items": [{"device_name": "no id"}]}',
    b'{"total": true, "items": []}', b'{"total": -1, "items": []}',
])
def test_malformed_pages_are_refused(body):
    with pytest.raises(rk.MalformedResponse):
        listing.decode_page(body)


class _Changing(httpx.AsyncBaseTransport):
    """The real transport; after every ``every``-th page answer, ``change()`` runs."""

    def __init__(self, change, every: int = 1) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.change, self.every, self.pages = change, every, 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        resp = await self.inner.handle_async_request(request)
        if request.method == "GET" and request.url.path.endswith("/devices"):
            self.pages += 1
            if self.pages % self.every == 0:
                self.change(self.pages)
        return resp

    async def aclose(self) -> None:
        await self.inner.aclose()


def _client(sb, transport, concurrency: int = 1):
    c = sb.credentials
    return rk.LinkClient(sb.link_endpoint, c.project_id, c.instance_id, rk.AkSk(c.ak, c.sk),
                         transport=transport, concurrency=concurrency, progress=False)


def test_devices_deleted_while_paging_are_not_lost(sb):
    """Deleting devices of page 1 after it was read shifts the later pages left: a naive
    reader skips devices. The totals disagree, so the listing is read again."""
    first_page = [d["id"] for d in sb.fleet.snapshot()[:50]]
    done = []

    def change(n: int) -> None:
        if n == 1 and not done:
            done.append(sb.fleet.delete(first_page))

    with _client(sb, _Changing(change)) as link:
        f = link.devices()
    assert done and sorted(f["id"]) == sorted(d["id"] for d in sb.fleet.snapshot())
    assert len(f) == 2550 and f["id"].is_unique


def test_devices_added_while_paging_are_read(sb):
    product = next(p["product_id"] for p in sb.fleet.products() if p["product_type"] == 0)
    made = []

    def change(n: int) -> None:
        # after the first answer: the pages asked for once its total is known are answered
        # after the change, whatever the order of the others (after the second answer, the
        # third page could already be answered too, and every total agree on the old count)
        if n == 1 and not made:
            made.extend(sb.fleet.create(device_name=f"late-{i:03d}", product_id=product, node_id=f"late-node-{i:03d}")["id"]
                        for i in range(1200))  # past the first page's total: a fourth page

    with _client(sb, _Changing(change), concurrency=2) as link:
        f = link.devices()
    assert len(made) == 1200 and len(f) == 3800 and f["id"].is_unique
    assert set(made) <= set(f["id"])


def test_a_fleet_that_never_holds_still_is_said_not_hidden(sb, caplog):
    ids = iter(d["id"] for d in sb.fleet.snapshot())
    with _client(sb, _Changing(lambda n: sb.fleet.delete([next(ids)]))) as link:
        with caplog.at_level("WARNING", logger="romakit.link"):
            f = link.devices()
    assert "the fleet changed while it was read" in caplog.text
    mismatch = f.attrs["romakit_total_mismatch"]
    assert mismatch["read"] == len(f) and mismatch["totals"]


def test_filtered_listing_and_an_empty_one(sb):
    with sb.link_client(progress=False) as link:
        gws = link.devices(node_type="gateway")
        none = link.devices(device_name="no-such-device-name")
    assert len(gws) == len(sb.fleet.gateways()) and set(gws["node_type"]) == {"gateway"}
    assert len(none) == 0 and list(none.columns) == list(models.DEVICE_COLUMNS)


class _Watching(httpx.AsyncBaseTransport):
    """The real transport, counting page requests in flight (the most at once) and,
    once, answering the page at ``corrupt_offset`` with bytes that are not a page."""

    def __init__(self, corrupt_offset: str | None = None) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.in_flight = self.most = 0
        self.offsets: list[str] = []
        self.corrupt_offset = corrupt_offset

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        paging = request.method == "GET" and request.url.path.endswith("/devices")
        if paging:
            self.offsets.append(request.url.params["offset"])
            self.in_flight += 1
            self.most = max(self.most, self.in_flight)
        try:
            resp = await self.inner.handle_async_request(request)
        finally:
            self.in_flight -= paging
        if paging and request.url.params["offset"] == self.corrupt_offset:
            self.corrupt_offset = None
            await resp.aread()
            return httpx.Response(200, headers={"content-type": "application/json"}, content=b'{"total": "oops"')
        return resp

    async def aclose(self) -> None:
        await self.inner.aclose()


@pytest.mark.parametrize("concurrency", [1, 2])
def test_the_next_page_is_asked_for_before_a_page_is_decoded(sb, monkeypatch, concurrency):
    """A lane decodes a page only once its next page's request is written (so decoding
    overlaps the wait), and never holds more pages in flight than ``concurrency``."""
    from romakit.link import client as link_client

    events: list[str] = []
    decode, written = listing.decode_page, link_client._on_written
    monkeypatch.setattr(listing, "decode_page", lambda raw: (events.append("decode"), decode(raw))[1])
    monkeypatch.setattr(link_client, "_on_written", lambda cb: written(lambda: (events.append("written"), cb())))
    watch = _Watching()
    with _client(sb, watch, concurrency=concurrency) as link:
        f = link.devices()
    assert len(f) == 2600 and f["id"].is_unique
    assert watch.most <= concurrency
    assert events.count("decode") == 3 and events[0] == "decode"  # the first page, read alone
    if concurrency == 1:  # one lane, pages 2 and 3: the third is asked for before the second is decoded
        assert events[1:] == ["written", "written", "decode", "decode"]


def test_a_page_that_does_not_decode_is_read_again(sb):
    watch = _Watching(corrupt_offset="999")
    with _client(sb, watch, concurrency=1) as link:
        f = link.devices()
    assert len(f) == 2600 and f["id"].is_unique
    assert sorted(watch.offsets) == ["0", "1998", "1998", "999", "999"]  # the page asked ahead, again after
    assert watch.most == 1  # the re-read alone in its lane: never two pages in flight


class _Refusing(_Watching):
    """The real transport, answering the page at ``offset`` with a 400 (not retried)."""

    def __init__(self, offset: str) -> None:
        super().__init__()
        self.refused = offset

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.params.get("offset") == self.refused:
            self.offsets.append(self.refused)
            return httpx.Response(400, json={"error_code": "ROMA.00110001", "error_msg": "refused (test)"})
        return await super().handle_async_request(request)


def test_a_refused_page_stops_the_whole_listing(sb):
    """The error is raised, and by then no other lane is still reading."""
    big = rk.sandbox(devices=9000, seed=14, mqtt=False)  # ten pages: the lanes have more to read
    try:
        watch = _Refusing("1998")
        with _client(big, watch, concurrency=3) as link:
            with pytest.raises(rk.ApiError) as e:
                link.devices()
            assert e.value.status == 400
            assert watch.in_flight == 0
            assert len(watch.offsets) < 10  # the other lanes stopped instead of reading on
    finally:
        big.close()


def test_a_storms_many_totals_are_logged_as_their_range():
    from romakit.link.listing import _totals

    assert _totals({320_067, 320_069}) == "[320067, 320069]"
    assert _totals(set(range(320_067, 320_583, 2))) == "320,067..320,581 (258 different)"  # not 258 numbers
