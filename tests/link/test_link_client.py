"""LinkClient and AsyncLinkClient against the sandbox over real loopback HTTP."""

from __future__ import annotations

import asyncio

import httpx
import pandas as pd
import pytest

import romakit as rk
from romakit import outcomes as oc


def test_devices_reads_every_page_with_readable_enums(sb, link):
    f = link.devices()
    assert len(f) == len(sb.fleet) == 2000
    assert f["id"].is_unique
    assert set(f["online_status"].cat.categories) >= {"online", "offline", "never_connected"}
    assert set(f["node_type"].dropna()) == {"direct", "gateway", "child"}
    assert {"product_name", "product_id", "parent_device_id", "client_id"} <= set(f.columns)
    assert isinstance(f["created_datetime"].dtype, pd.DatetimeTZDtype)


def test_devices_filters_map_readable_values(sb, link):
    online = link.devices(online_status="online")
    assert len(online) and set(online["online_status"]) == {"online"}
    both = link.devices(online_status=["online", "offline"])
    assert set(both["online_status"]) == {"online", "offline"}
    gws = link.devices(node_type="gateway")
    assert len(gws) == len(sb.fleet.gateways())
    pid = int(gws["product_id"].iloc[0])
    assert set(link.devices(product_id=pid)["product_id"]) == {pid}


def test_bad_filters_refused_before_sending(link):
    with pytest.raises(rk.InputError, match="unknown device filter"):
        link.devices(colour="red")
    with pytest.raises(rk.InputError, match="online_status"):
        link.devices(online_status="sleepy")


def test_device_detail_and_typed_404(sb, link):
    dev = sb.fleet.all()[0]
    assert link.device(dev["id"])["device_name"] == dev["device_name"]
    with pytest.raises(rk.ApiError) as e:
        link.device(99_999_999_999)
    assert e.value.status == 404 and e.value.error_code == "ROMA.00110006" and e.value.request_id


def test_token_auth_and_bad_credentials(sb):
    with sb.link_client(auth="token", progress=False) as c:
        assert len(c.device_page(0, 5)["items"]) == 5
    c = sb.credentials
    with rk.LinkClient(sb.link_endpoint, c.project_id, c.instance_id, rk.AkSk(c.ak, "0" * 40), progress=False) as bad:
        with pytest.raises(rk.ApiError) as e:
            bad.device_page(0, 1)
    assert e.value.status in (401, 403) and e.value.error_code == "APIG.0301" and e.value.auth_refused


def test_force_offline_takes_devices_offline_and_names_them(sb, link):
    online = [d["id"] for d in sb.fleet.all() if d["online_status"] == 1][:120]
    res = link.force_offline(online, chunk_size=50, rollout=False)  # chunks as asked, no slow start
    assert res.ok and len(res) == 120 and res.frame["chunk"].nunique() == 3
    assert res.frame["device_name"].notna().all() and res.frame["request_id"].notna().all()
    assert {sb.fleet.get(i)["online_status"] for i in online} == {2}


def test_force_offline_10000_devices_every_id_accounted_for():
    with rk.sandbox(devices=12000, seed=3, mqtt=False) as big, big.link_client(progress=False) as link:
        ids = [d["id"] for d in big.fleet.all()][:10000]
        fail = set(ids[::997])
        big.set_fault(fail_ids=fail)
        missing = [99_999_999_000 + i for i in range(5)]  # ids the service does not know
        res = link.force_offline(ids + missing, chunk_size=300, concurrency=8)
    f = res.frame
    assert len(f) == 10005 and f["device_id"].is_unique
    assert sorted(map(int, f["device_id"])) == sorted(ids + missing)
    assert set(res.ids("failed")) == fail | set(missing)
    assert res.counts["success"] == 10000 - len(fail) and res.counts["unknown"] == 0


def test_retries_through_throttling_and_server_errors(sb, link):
    ids = [d["id"] for d in sb.fleet.all()][:400]
    sb.set_fault(rate_limit=20, retry_after=0.2, error_rate=0.2)
    res = link.force_offline(ids, chunk_size=10, concurrency=8, retry=rk.RetryPolicy(attempts=15, backoff=0.01, max_backoff=0.05))
    assert res.ok, res.summary()
    assert res.frame["attempts"].max() > 1  # some chunk needed another try
    codes = {r[3] for r in sb.link.requests}
    assert 429 in codes and 500 in codes


def test_exhausted_retries_end_failed_with_the_service_code(sb, link):
    sb.set_fault(error_rate=1.0)
    res = link.force_offline([d["id"] for d in sb.fleet.all()][:30], chunk_size=10, retry=rk.RetryPolicy(attempts=2, backoff=0.0))
    assert res.counts["failed"] == 30 and set(res.frame["error_code"]) == {"APIG.9999"}
    assert res.frame["request_id"].notna().all()
    assert sorted(res.retry_ids()) == sorted(res.ids())


def test_no_answer_in_time_leaves_devices_unknown(sb):
    sb.set_fault(latency_ms=2000)
    try:
        with sb.link_client(progress=False, timeout=0.2, retry=rk.RetryPolicy(attempts=1)) as c:
            res = c.force_offline([d["id"] for d in sb.fleet.all()][:10], chunk_size=5)
    finally:
        sb.clear_faults()
    assert res.counts["unknown"] == 10 and set(res.frame["error_code"]) == {oc.TIMEOUT}


def test_unreachable_service_fails_fast_as_connect_error():
    c = rk.LinkClient("http://127.0.0.1:9", "p" * 32, "i" * 36, rk.Token("t"), progress=False,
                      retry=rk.RetryPolicy(attempts=2, backoff=0.0))
    res = c.force_offline([1, 2, 3])
    assert res.counts["failed"] == 3 and set(res.frame["error_code"]) == {oc.CONNECT_ERROR}
    assert res.retry_ids() == [1, 2, 3]


def test_delete_devices_both_body_spellings(sb, link):
    children = [d["id"] for d in sb.fleet.all() if d["node_type"] == 0][-6:]
    assert link.delete_devices(children[:3]).ok
    assert link.delete_devices(children[3:], body_field="resources").ok
    assert all(sb.fleet.get(i) is None for i in children)


def test_bad_ids_refused_before_anything_is_sent(sb, link):
    before = len(sb.link.requests)
    for bad in ([1, True], [0], ["x"], [float("nan")], [-3], []):
        with pytest.raises(rk.InputError):
            link.force_offline(bad)
    assert len(sb.link.requests) == before


def test_client_arguments_checked():
    with pytest.raises(rk.InputError, match="project_id"):
        rk.LinkClient("https://x.example", "p" * 33, "i", rk.Token("t"))
    with pytest.raises(rk.InputError, match="plain HTTP"):
        rk.LinkClient("http://roma.example.com", "p", "i", rk.Token("t"))
    with pytest.raises(rk.InputError, match="auth"):
        rk.LinkClient("https://roma.example.com", "p", "i", auth="secret")
    assert rk.LinkClient("http://roma.example.com", "p", "i", rk.Token("t"), allow_insecure=True)


def test_sync_client_mirrors_its_async_core(sb, link):
    """Every method of the sync client is its async core's (same doc and signature, run
    to completion), every setting read-only; the keywords are the settings' fields."""
    import inspect

    for name in ("request", "preflight", "devices", "device", "force_offline", "delete_devices", "identity"):
        sync, core = getattr(rk.LinkClient, name), getattr(rk.AsyncLinkClient, name)
        assert sync.__doc__ == core.__doc__ and inspect.signature(sync) == inspect.signature(core), name
        assert not inspect.iscoroutinefunction(sync), name
    assert link.identity() == link.aio.identity() and link.settings is link.aio.settings
    assert link.chunk_size == link.settings.chunk_size and link.target == sb.credentials.instance_id
    with pytest.raises(AttributeError):
        link.chunk_size = 3
    params = inspect.signature(rk.LinkClient).parameters
    assert list(params)[:5] == ["endpoint", "project_id", "instance_id", "auth", "region"] and "preflight" in params
    with pytest.raises(TypeError, match="rate_per_second"):
        rk.LinkClient("https://roma.example.com", "p", "i", rk.Token("t"), rate_per_second=3)


def test_repr_never_shows_secrets(sb, link):
    assert sb.credentials.sk not in repr(link) and sb.credentials.sk not in repr(sb)
    assert sb.credentials.token not in repr(sb.link_client(auth="token"))


def test_async_client_in_a_running_loop(sb):
    c = sb.credentials

    async def main():
        async with rk.AsyncLinkClient(sb.link_endpoint, c.project_id, c.instance_id, rk.AkSk(c.ak, c.sk), progress=False) as a:
            frame = await a.devices(node_type="gateway")
            res = await a.force_offline(frame["id"].tolist()[:5])
            return frame, res

    frame, res = asyncio.run(main())
    assert len(frame) == len(sb.fleet.gateways()) and res.ok


def test_sync_client_works_inside_a_running_loop(sb, link):
    """A notebook cell runs inside the kernel's loop: the sync API must still work."""

    async def cell():
        return link.devices(node_type="gateway")

    assert len(asyncio.run(cell())) == len(sb.fleet.gateways())


def test_error_body_parsing_takes_every_request_id_spelling():
    """Unit test of the error parser: body request_id, the seed's requestId, or the header."""
    from romakit.link.answers import api_error as _api_error

    def resp(status, body, headers=None):
        return httpx.Response(status, json=body, headers=headers or {})

    assert _api_error(resp(400, {"error_code": "SCB.00000000", "error_msg": "m", "requestId": "a"})).request_id == "a"
    assert _api_error(resp(500, {"error_code": "APIG.9999", "request_id": "b"})).request_id == "b"
    e = _api_error(resp(429, {"error_code": "APIG.0308"}, {"X-Request-Id": "c", "Retry-After": "3"}))
    assert (e.request_id, e.retry_after, e.retryable) == ("c", 3.0, True)
    e = _api_error(httpx.Response(502, content=b"<html>bad gateway</html>"))
    assert (e.status, e.error_code, e.retryable) == (502, None, True)


@pytest.mark.parametrize("body", [
    b'{"success":[{"id":1,"device_name":"a","device_id":1},{"id":2,"device_name":""}],"failed":[{"id":3}]}',
    b'{"success":[{"device_id":7,"device_name":"legacy"}],"failed":null,"request_id":"r-1"}',
    b'{"success":[],"requestId":"r-2","extra":{"x":[1,2]}}',
    b'{"success":[],"request_id":"both-1","requestId":"both-2"}',
    b'{"success":[],"request_id":"","requestId":"second"}',
    b'{"success":[{"id":"12","device_name":"digits"}],"failed":[{"id":5}]}',  # generic path
    b'{"success":[{"id":"1"}],"failed":[{"id":4,"device_name":17}]}',  # generic path: str(17)
    b'{"success":[{"id":1,"id":2}]}',
    b'{"request_id":42}',
    b'{}',
])
def test_force_offline_answers_read_as_the_generic_reader_does(body):
    """The typed fast path gives what the generic reader (plain JSON, simple_items) gives."""
    import json

    from romakit.link.answers import request_id_of, simple_items, verdicts

    resp = httpx.Response(200, content=body, headers={"X-Request-Id": "hdr"})
    doc = json.loads(body)
    rid = request_id_of(resp, doc)
    assert verdicts(resp) == (simple_items(doc.get("success"), "success", rid),
                              simple_items(doc.get("failed"), "failed", rid), rid)


@pytest.mark.parametrize("body, says", [
    (b"<html>bad gateway</html>", "not JSON"),
    (b'[{"id":1}]', "not an object"),
    (b'{"success":{"id":1}}', "'success' is dict"),
    (b'{"success":[{"device_name":"no id"}]}', "no usable id"),
    (b'{"failed":[{"id":null,"device_id":3}]}', "no usable id"),
    (b'{"success":[{"id":true}]}', "no usable id"),
    (b'{"failed":[{"id":5.9}]}', "no usable id"),
    (b'{"success":[7]}', "not an object"),
])
def test_force_offline_answers_refused_keep_the_request_id(body, says):
    from romakit.errors import MalformedResponse
    from romakit.link.answers import verdicts

    with pytest.raises(MalformedResponse) as e:
        verdicts(httpx.Response(200, content=body, headers={"X-Request-Id": "hdr"}))
    assert says in str(e.value) and e.value.request_id == "hdr"


def test_import_romakit_is_light():
    import subprocess
    import sys

    code = "import sys, romakit; print(','.join(m for m in ('pandas','httpx','paho','ipywidgets','uvicorn','amqtt','numpy','matplotlib') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == ""


def test_httpx_auth_classes_are_httpx_auth():
    assert isinstance(rk.AkSk("AK", "SK"), httpx.Auth) and isinstance(rk.Token("t"), httpx.Auth)
