"""Refused credentials are never hammered, and errors are classified on the HTTP status
and API Gateway's real codes (sandbox over loopback; refusals counted at the sandbox)."""

from __future__ import annotations

import pytest

import romakit as rk
from romakit import outcomes as oc

FAST = rk.RetryPolicy(attempts=3, backoff=0.0, max_retry_after=0.0)


SANDBOX = {"devices": 2500, "seed": 29, "mqtt": False}  # the module's sandbox (conftest's sb fixture)


@pytest.fixture(autouse=True)
def _fresh(sb):
    sb.clear_faults()
    sb.gate.unlock()
    sb.link.clear_log()
    yield


def _refused(sb) -> int:
    return sum(1 for r in sb.link.requests if r[3] in (401, 403))


def _ids(sb, n: int) -> list[int]:
    return [d["id"] for d in sb.fleet.snapshot()[:n]]


def _client(sb, sk: str | None = None, **kw) -> rk.LinkClient:
    c = sb.credentials
    kw.setdefault("retry", FAST)
    return rk.LinkClient(sb.link_endpoint, c.project_id, c.instance_id, rk.AkSk(c.ak, sk or c.sk),
                         progress=False, **kw)


def test_a_wrong_sk_is_refused_once_by_the_preflight_and_nothing_is_sent(sb):
    with _client(sb, "0" * 40, chunk_size=100) as bad:
        with pytest.raises(rk.AuthRefused, match="APIG.0301.*verify aksk signature fail") as e:
            bad.force_offline(_ids(sb, 2000))  # 20 chunks, 8 in flight
    assert e.value.auth_refused and "0" * 40 not in str(e.value)
    assert _refused(sb) == 1  # the pre-flight read only
    assert not [r for r in sb.link.requests if r[2].endswith("force-offline")]
    assert not sb.gate.locked(sb.credentials.ak)


def test_without_the_preflight_a_wrong_sk_is_refused_only_for_the_chunks_in_flight(sb):
    """What the engine's own stop bounds when there is no pre-flight: the chunks in flight."""
    with _client(sb, "0" * 40, chunk_size=100, concurrency=4, preflight=False) as bad:
        res = bad.force_offline(_ids(sb, 2000))
    refused = _refused(sb)
    assert 1 <= refused <= 4 < 20  # of 20 chunks, only those in flight at the first refusal
    assert res.counts["skipped"] >= 1600 and res.stopped.startswith("credentials refused: HTTP 401 APIG.0301")
    skipped = res.frame[res.frame.outcome == "skipped"]
    assert set(skipped.error_code.astype(str)) == {oc.AUTH_REFUSED}
    assert set(res.frame.loc[res.frame.outcome == "failed", "http_status"].dropna()) == {401}
    assert not res.retry_ids()  # a refused key is not a transient failure


def test_refused_mid_run_stops_the_run_with_the_rest_skipped(sb):
    c = sb.credentials
    tok = rk.Token.from_password(c.domain, c.user, c.password, region=sb.region, iam_endpoint=sb.iam_endpoint)
    fixed = rk.Token(tok._credential().secret)  # pasted: it cannot renew itself

    def progress(done: int, total: int) -> None:
        if done == 100:
            sb.iam.expire_all()

    with rk.LinkClient(sb.link_endpoint, c.project_id, c.instance_id, fixed, progress=False, retry=FAST,
                       chunk_size=100, concurrency=1) as link:
        res = link.force_offline(_ids(sb, 1000), progress=progress)
    assert res.counts == {"success": 100, "failed": 100, "unknown": 0, "skipped": 800}
    assert "token expires" in res.stopped and _refused(sb) == 1
    assert len(res.frame) == 1000  # every device accounted for


def test_a_twenty_minute_clock_skew_is_named_in_the_error(sb):
    sb.set_fault(clock_offset_s=20 * 60)  # the gateway's clock: 20 min ahead of this machine's
    with _client(sb) as link:
        with pytest.raises(rk.AuthRefused) as e:
            link.force_offline(_ids(sb, 300))
    msg = str(e.value)
    assert "likely cause: this machine's clock is 20 min behind the server's" in msg
    assert 19 * 60 < e.value.clock_skew < 21 * 60 and _refused(sb) == 1
    sb.set_fault(clock_offset_s=30)  # half a minute off is within the window: no hint, no refusal
    with _client(sb) as link:
        facts = link.preflight()
    assert 25 < facts["clock_skew_s"] < 35


def test_the_sandbox_locks_an_ak_after_five_refused_signatures(sb):
    c = sb.credentials
    with _client(sb, "f" * 40, preflight=False, retry=rk.RetryPolicy(attempts=1)) as bad:
        for _ in range(6):
            with pytest.raises(rk.ApiError):
                bad.device_page(0, 1)
    assert sb.gate.locked(c.ak)
    with _client(sb) as good:  # now even the right SK is refused
        with pytest.raises(rk.AuthRefused, match="AK access failed to reach the limit, forbidden"):
            good.preflight()


def test_another_project_is_403_apig_0302_and_stops(sb):
    c = sb.credentials
    with pytest.raises(rk.InputError, match="auth is scoped to project 'x', the client to"):
        rk.LinkClient(sb.link_endpoint, c.project_id, c.instance_id, rk.AkSk(c.ak, c.sk, project_id="x"))
    with rk.LinkClient(sb.link_endpoint, "another0project", c.instance_id, rk.AkSk(c.ak, c.sk),
                       progress=False) as link:
        with pytest.raises(rk.AuthRefused, match="403 APIG.0302") as e:
            link.force_offline(_ids(sb, 10))
    assert e.value.status == 403 and _refused(sb) == 1


@pytest.mark.parametrize(("status", "code"), [(502, "APIG.0202"), (503, "ROMA.00110008"), (429, "APIGW.0308")])
def test_a_real_429_or_5xx_code_is_retried_and_in_retry_ids(sb, status, code):
    sb.set_fault(error_rate=1.0, error_status=status, error_code=code, retry_after=0)
    with _client(sb, chunk_size=50, preflight=False) as link:
        # the codes and retries alone: under 429s the adaptive rate would pace them (test_adaptive.py)
        res = link.force_offline(_ids(sb, 100), adaptive=False)
    assert res.counts["failed"] == 100
    assert set(res.frame.attempts) == {3}  # retried to the policy's end
    assert set(res.frame.http_status) == {status} and set(res.frame.error_code.astype(str)) == {code}
    assert sorted(res.retry_ids()) == sorted(_ids(sb, 100))
    sb.clear_faults()
    with _client(sb) as link:
        again = res.retry(link)
    assert again.ok and set(again.frame.http_status) == {200}


def test_is_transient_reads_the_status_first():
    assert oc.is_transient("failed", "ROMA.00110008", 503)
    assert oc.is_transient("failed", "APIGW.0308", None)
    assert not oc.is_transient("failed", "APIG.0301", 401)
    assert not oc.is_transient("failed", "SCB.00000000", 400)
    err = rk.ApiError(401, "APIGW.0301", "x", clock_skew=-1260)
    assert err.auth_refused and not err.retryable and "21 min ahead of the server's" in str(err)
    assert rk.ApiError(429, "APIG.0308", "x").throttled and rk.ApiError(429, "APIG.0308", "x").retryable
