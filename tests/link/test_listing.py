"""The fleet listing (romakit.link.listing): the column-wise frame from raw bytes equals
the dict path; odd values take the general path; paging stays correct while the fleet
changes (real sockets to the sandbox; the fleet is changed between page reads by a
transport that wraps the real one)."""

from __future__ import annotations

import json

import httpx
import pandas as pd
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
