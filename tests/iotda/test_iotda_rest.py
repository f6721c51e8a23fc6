"""IoTDA's REST inventory: signing matched byte for byte with huaweicloudsdkcore (plain
and derived), the sandbox's ListDevices / ShowDevice with every filter and marker paging,
and the official huaweicloudsdkiotda client listing devices against it."""

from __future__ import annotations

import urllib.parse
from contextlib import contextmanager
from datetime import UTC, datetime
from unittest import mock

import httpx
import pytest
from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.sdk_request import SdkRequest
from huaweicloudsdkcore.signer import signer as sdk_signer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import romakit as rk
from romakit.errors import ApiError, InputError
from romakit.iotda.rest import COLUMNS
from romakit.signing import UNSIGNED_HEADERS

AK, SK = "HPUAEXAMPLEAK0123456", "sK3cr3t/Example+Key=ü"
FIXED = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)
REGION = "cn-north-4"


class _Frozen(datetime):
    @classmethod
    def utcnow(cls) -> datetime:  # type: ignore[override]
        return FIXED.replace(tzinfo=None)


@contextmanager
def sdk_clock_frozen():
    with mock.patch.object(sdk_signer, "datetime", _Frozen):
        yield


def sdk_request(request: httpx.Request) -> SdkRequest:
    headers = {}
    for raw_name, raw_value in request.headers.raw:
        name = raw_name.decode("ascii")
        if name.lower() in UNSIGNED_HEADERS:
            continue
        headers["Content-Type" if name.lower() == "content-type" else name] = raw_value.decode("utf-8")
    return SdkRequest(method=request.method, schema=request.url.scheme, host=request.url.netloc.decode("ascii"),
                      resource_path=request.url.raw_path.split(b"?", 1)[0].decode("ascii"),
                      query_params=urllib.parse.parse_qsl(request.url.query.decode("ascii"), keep_blank_values=True),
                      header_params=headers, body=request.content or None)


segments = st.text(alphabet=st.sampled_from(list("abcXYZ019-_.~ %+;=@:") + ["ü", "中"]), min_size=1, max_size=8)
params = st.lists(st.tuples(st.sampled_from(["limit", "marker", "gateway_id", "a b", "ü"]),
                            st.text(alphabet=st.sampled_from(list("az09 +/&=%~") + ["é"]), max_size=6)), max_size=4)
hosts = st.sampled_from(["127.0.0.1:8443", "abc123.st1.iotda-app.cn-north-4.myhuaweicloud.com",
                         "iotda.cn-north-4.myhuaweicloud.com"])


@pytest.mark.slow
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(method=st.sampled_from(["GET", "POST", "DELETE", "PUT"]), path=st.lists(segments, min_size=1, max_size=4),
       query=params, host=hosts, body=st.none() | st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
       token=st.none() | st.just("gQpjbi1ub3J0aC00SECRET+/="), derived=st.sampled_from([True, False, None]))
def test_iotda_signing_matches_the_sdk_byte_for_byte(method, path, query, host, body, token, derived) -> None:
    """Plain and derived (V11-HMAC-SHA256, ``iotdm``) signatures equal the SDK's on
    generated requests; ``derived=None`` follows the SDK's default derived predicate."""
    url = f"http://{host}/" + "/".join(urllib.parse.quote(s, safe="") for s in path)
    with httpx.Client() as client:
        request = client.build_request(method, url, params=query or None, json=body,
                                       headers={"X-Project-Id": "0123456789abcdef"})
    sdk_req = sdk_request(request)
    ours = rk.IotdaAkSk(AK, SK, region=REGION, derived=derived, security_token=token, now=lambda: FIXED)
    ours.sign(request)
    creds = BasicCredentials(AK, SK)
    if token:
        creds.with_security_token(token)
    if derived is not False:
        predicate = (lambda r: True) if derived else BasicCredentials.get_default_derived_predicate()
        creds.with_derived_predicate(predicate)
        creds._process_derived_auth_params("iotdm", REGION)
    with sdk_clock_frozen():
        creds.sign_request(sdk_req)
    assert request.headers["Authorization"] == sdk_req.header_params["Authorization"]
    is_derived = request.headers["Authorization"].startswith("V11-HMAC-SHA256")
    # auto: derived except on a default endpoint (service.region.myhuaweicloud.com)
    assert is_derived == (derived if derived is not None else not host.startswith("iotda."))


def test_derived_signing_needs_a_region_and_hides_the_secret() -> None:
    with pytest.raises(InputError, match="region"):
        rk.IotdaAkSk(AK, SK, derived=True)
    text = repr(rk.IotdaAkSk(AK, SK, region=REGION, security_token="tok-secret"))
    assert SK not in text and "tok-secret" not in text and "***" in text


@pytest.fixture(scope="module")
def inv(sb):
    with sb.iotda_client() as c:
        yield c


def big_gateway(sb) -> str:
    return max(sb.gateways(), key=lambda g: len(sb.children(g)))


@pytest.mark.parametrize("signing", ["derived", "plain"])
def test_inventory_lists_every_device_over_marker_pages(sb, signing) -> None:
    before = sb.iotda.requests
    with sb.iotda_client(signing) as c:
        df = c.devices()
    assert list(df.columns) == list(COLUMNS)
    assert len(df) == len(sb.fleet) and df["device_id"].is_unique
    assert sb.iotda.requests - before == -(-len(sb.fleet) // 50)  # pages of 50
    assert set(df["status"].dropna()) <= {"ONLINE", "OFFLINE", "INACTIVE", "FROZEN"}


def test_inventory_filters(sb, inv) -> None:
    gid = big_gateway(sb)
    kids = inv.devices(gateway_id=gid)
    assert sorted(kids["device_id"]) == sorted(sb.children(gid)) and len(kids) > 50  # more than one page
    assert (kids["gateway_id"] == gid).all() and (kids["node_type"] == "ENDPOINT").all()
    assert sorted(inv.devices(gateway_id=gid, is_cascade_query=True)["device_id"]) == sorted(kids["device_id"])
    one = kids.iloc[0]
    for key in ("node_id", "device_name", "product_id", "app_id"):
        got = inv.devices(**{key: one[key]})
        assert len(got) >= 1 and (got[key] == one[key]).all(), key
    everything = inv.devices()
    assert len(inv.devices(start_time="20000101T000000Z")) == len(everything)
    assert len(inv.devices(end_time="20000101T000000Z")) == 0
    assert len(inv.devices(gateway_id="no-such-gateway")) == 0
    with pytest.raises(InputError, match="unknown ListDevices filter"):
        inv.devices(online_status="online")
    with pytest.raises(InputError, match="yyyyMMddTHHmmssZ"):
        inv.devices(start_time="2025-01-01")


def test_show_device_and_status_follow_the_connection(sb, inv) -> None:
    gid = next(g["client_id"] for g in sb.fleet.gateways() if g["status"] == 0)
    shown = inv.device(gid)
    assert shown["device_id"] == gid and shown["auth_info"]["auth_type"] == "SECRET"
    assert "secret" not in shown["auth_info"] and shown["status"] != "ONLINE"
    with sb.gateway(gid, inventory=None):
        assert inv.status(gid) == "ONLINE"
    assert sb.broker.wait_offline(gid, 10)  # the broker lets a closed connection go asynchronously
    assert inv.status(gid) in ("OFFLINE", "INACTIVE")
    with pytest.raises(ApiError) as info:
        inv.device("no-such-device")
    assert info.value.status == 404


def test_wrong_credentials_are_refused(sb) -> None:
    bad = rk.IotdaClient(sb.iotda_endpoint, sb.credentials.project_id, rk.IotdaAkSk(sb.credentials.ak, "wrong-sk",
                                                                                      region=REGION, derived=True))
    with pytest.raises(ApiError) as info:
        bad.devices()
    assert info.value.status == 401 and info.value.error_code == "APIG.0301"


@pytest.mark.parametrize("derived", [True, False])
def test_the_official_iotda_sdk_lists_devices_from_the_sandbox(sb, derived) -> None:
    from huaweicloudsdkcore.region.region import Region
    from huaweicloudsdkiotda.v5 import IoTDAClient, ListDevicesRequest, ShowDeviceRequest

    c = sb.credentials
    creds = BasicCredentials(c.ak, c.sk, c.project_id)
    if derived:
        creds.with_derived_predicate(lambda r: True)
    client = (IoTDAClient.new_builder().with_credentials(creds)
              .with_region(Region(REGION, sb.iotda_endpoint)).build())
    gid = big_gateway(sb)
    seen, marker = [], None
    while True:
        page = client.list_devices(ListDevicesRequest(gateway_id=gid, limit=50, marker=marker))
        seen += [d.device_id for d in page.devices]
        if len(page.devices) < 50:
            break
        marker = page.page.marker
    assert sorted(seen) == sorted(sb.children(gid))
    assert client.show_device(ShowDeviceRequest(device_id=gid)).device_id == gid
