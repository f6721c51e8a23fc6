"""romakit's IAM credentials against the sandbox over loopback: tokens from a password
and an agency, temporary AK/SK from an agency and a token, region endpoints with the
project id looked up, and renewal before expiry and after one mid-batch."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

import romakit as rk
from romakit import regions

SANDBOX = {"devices": 400, "seed": 23, "mqtt": False}  # the module's sandbox (conftest's sb fixture)


@pytest.fixture(autouse=True)
def _fresh(sb):
    sb.clear_faults()
    sb.gate.unlock()
    yield


def _password_token(sb, **kw) -> rk.Token:
    c = sb.credentials
    return rk.Token.from_password(c.domain, c.user, c.password, region=sb.region, iam_endpoint=sb.iam_endpoint, **kw)


def _client(sb, auth, **kw) -> rk.LinkClient:
    """A client as for a real account: a region, the instance, auth; the sandbox's
    addresses stand in for the region's public ones."""
    return rk.LinkClient(region=sb.region, instance_id=sb.credentials.instance_id, auth=auth,
                         endpoint=sb.link_endpoint, iam_endpoint=sb.iam_endpoint, progress=False, **kw)


def _refused(sb) -> int:
    return sum(1 for r in sb.link.requests if r[3] in (401, 403))


def test_region_gives_the_endpoints():
    e = regions.endpoints("cn-north-4")
    assert (e.roma, e.iam, e.iotda) == ("https://roma.cn-north-4.myhuaweicloud.com",
                                        "https://iam.cn-north-4.myhuaweicloud.com",
                                        "https://iotda.cn-north-4.myhuaweicloud.com")
    link = rk.LinkClient(region="ap-southeast-3", project_id="p1", instance_id="i1", auth=rk.Token("t"))
    assert link.endpoint == "https://roma.ap-southeast-3.myhuaweicloud.com"
    link.close()
    with pytest.raises(rk.InputError, match="region must be a region id like 'cn-north-4', got 'cn_north_4'"):
        rk.LinkClient(region="cn_north_4", instance_id="i1", auth=rk.Token("t"))
    with pytest.raises(rk.InputError, match="give project_id, or region="):
        rk.LinkClient("https://roma.example.com", instance_id="i1", auth=rk.Token("t"))


def test_password_token_scoped_to_the_region_needs_no_project_lookup(sb):
    tok = _password_token(sb)
    assert tok.project_id == sb.credentials.project_id and tok.renewable and tok.issued == 1
    assert tok.expires_at > datetime.now(UTC).timestamp() + 23 * 3600
    assert sb.credentials.password not in repr(tok)
    with _client(sb, tok) as link:
        assert link.project_id == sb.credentials.project_id
        assert link.preflight()["total"] == 400
    assert not any(path == "/v3/projects" for _, path, _ in sb.iam_sim.requests)
    with pytest.raises(rk.ApiError, match="IAM: The username or password is wrong") as e:
        rk.Token.from_password(sb.credentials.domain, sb.credentials.user, "Pw-not-it",
                               region=sb.region, iam_endpoint=sb.iam_endpoint)
    assert e.value.status == 401 and "Pw-not-it" not in str(e.value)


def test_agency_keys_look_the_project_up_and_send_it_signed(sb):
    c = sb.credentials
    auth = rk.AkSk.from_agency(c.agency_domain, c.agency, auth=rk.AkSk(c.ak, c.sk), region=sb.region,
                               iam_endpoint=sb.iam_endpoint, duration=900)
    assert auth.temporary and auth.ak.startswith("TMP")
    sent = []
    with _client(sb, auth) as link:
        assert link.project_id is None  # not known until asked
        link.aio._http.event_hooks["request"].append(lambda r: _record(sent, r))
        res = link.force_offline(link.devices(online_status="online").id[:30])
        assert res.ok and link.project_id == c.project_id
    assert [p for _, p, _ in sb.iam_sim.requests].count("/v3/projects") == 1
    for req in sent:  # X-Project-Id and X-Security-Token on every request, both signed
        assert req["x-project-id"] == c.project_id and req["x-security-token"]
        assert {"x-project-id", "x-security-token"} <= set(req["signed"])
    assert c.sk not in repr(auth) and auth._credential().secret not in repr(auth)


async def _record(sent: list, request) -> None:
    auth = request.headers.get("authorization", "")
    sent.append({"x-project-id": request.headers.get("x-project-id"),
                 "x-security-token": request.headers.get("x-security-token"),
                 "signed": auth.split("SignedHeaders=", 1)[-1].split(",", 1)[0].split(";")})


@pytest.mark.parametrize("kind", ["password token", "agency key", "agency token", "key from a token"])
def test_credentials_expiring_mid_batch_are_renewed_and_every_device_accounted_for(sb, kind):
    c = sb.credentials
    made = {
        "password token": lambda: _password_token(sb),
        "agency key": lambda: rk.AkSk.from_agency(c.agency_domain, c.agency, auth=_password_token(sb),
                                                  iam_endpoint=sb.iam_endpoint),
        "agency token": lambda: rk.Token.from_agency(c.agency_domain, c.agency, auth=rk.AkSk(c.ak, c.sk),
                                                     region=sb.region, iam_endpoint=sb.iam_endpoint),
        "key from a token": lambda: rk.AkSk.from_token(_password_token(sb), iam_endpoint=sb.iam_endpoint),
    }
    auth = made[kind]()
    expired = []

    def progress(done: int, total: int) -> None:  # after the second chunk: IAM's credentials all expire
        if done == 40 and not expired:
            expired.append(sb.iam.expire_all())

    with _client(sb, auth, concurrency=1, chunk_size=20) as link:
        ids = list(link.devices().id[:200])
        sb.link.clear_log()
        res = link.force_offline(ids, progress=progress)
    assert expired and res.ok, res.summary()
    assert len(res.frame) == 200 and set(res.frame.device_id) == {str(i) for i in ids}
    assert auth.issued >= 2  # renewed once it was refused as expired
    assert _refused(sb) == 1  # one refused request, then the renewed credential


def test_credentials_are_renewed_before_they_expire(sb):
    clock = {"now": datetime.now(UTC)}
    tok = _password_token(sb, now=lambda: clock["now"])

    def progress(done: int, total: int) -> None:  # 23 h 58 min later by the client's clock
        if done == 20:
            clock["now"] = datetime.now(UTC) + timedelta(hours=23, minutes=58)

    with _client(sb, tok, concurrency=1, chunk_size=20) as link:
        ids = list(link.devices().id[:100])
        sb.link.clear_log()
        res = link.force_offline(ids, progress=progress)
    assert res.ok and tok.issued == 2 and _refused(sb) == 0
