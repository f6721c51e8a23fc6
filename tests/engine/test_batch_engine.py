"""Unit tests of the batch engine with an in-process ``send`` (the protocols are tested
end to end against the sandbox elsewhere)."""

import asyncio

import pytest

from romakit import outcomes as oc
from romakit.engine import Answer, BatchObserver, CancelToken, RetryPolicy, run_batch
from romakit.errors import ApiError, InputError, MalformedResponse, TransportError

FAST = RetryPolicy(attempts=3, backoff=0.0, max_retry_after=0.0)


def run(ids, send, **kw):
    kw.setdefault("chunk_size", 10)
    kw.setdefault("retry", FAST)
    kw.setdefault("rollout", False)  # the raw engine; rollouts have their own tests
    return asyncio.run(run_batch(ids, operation="force_offline", target="inst", send=send, progress=False, **kw))


def test_every_id_once_in_request_order_with_mixed_verdicts():
    async def send(chunk, no, attempt):
        ok = [(i, f"d{i}") for i in chunk if i % 3]
        bad = [(i, None, None, None) for i in chunk if i % 3 == 0 and i % 2]
        return Answer(success=ok, failed=bad, request_id=f"r{no}")  # even multiples of 3: not mentioned

    ids = list(range(1, 101))
    res = run(ids, send)
    f = res.frame
    assert f["device_id"].tolist() == [str(i) for i in ids]
    assert res.counts == {"success": 67, "failed": 17, "unknown": 16, "skipped": 0}
    assert set(f.loc[f.outcome == "unknown", "error_code"]) == {oc.NOT_IN_ANSWER}
    assert set(f.loc[f.outcome == "failed", "error_code"]) == {oc.REPORTED_FAILED}
    assert f.loc[0, "device_name"] == "d1" and f.loc[0, "request_id"] == "r0"
    assert res.ids("failed") == [i for i in ids if i % 3 == 0 and i % 2]
    assert str(f["outcome"].dtype) == "category"


def test_an_answer_that_repeats_contradicts_or_oversteps_is_read_by_its_first_word(caplog):
    """Listed twice as a success: the first name. Listed both ways: failed (the service
    doubts it), named by either list, the first failure's reason. Ids not requested are
    counted, never added; a device the answer names with no name keeps the one given."""

    async def send(chunk, no, attempt):
        return Answer(success=[(1, "first"), (1, "second"), (2, "two"), (3, ""), (99, "stranger")],
                      failed=[(2, None, None, None), (2, "late", "X.1", "second reason"), (4, "four", "E.4", "gone")],
                      request_id="r")

    with caplog.at_level("WARNING", logger="romakit.engine"):
        res = run([1, 2, 3, 4, 5], send, names={3: "given", 5: "given5"})
    f = res.frame.set_index("device_id")
    assert f.loc["1", "device_name"] == "first" and f.loc["1", "outcome"] == "success"
    assert f.loc["2", "outcome"] == "failed" and f.loc["2", "device_name"] == "two"
    assert f.loc["2", "error_code"] == oc.REPORTED_FAILED and "no reason given" in f.loc["2", "error_msg"]
    assert f.loc["3", "device_name"] == "given" and f.loc["3", "outcome"] == "success"
    assert (f.loc["4", "outcome"], f.loc["4", "error_code"], f.loc["4", "error_msg"]) == ("failed", "E.4", "gone")
    assert f.loc["5", "outcome"] == "unknown" and f.loc["5", "error_code"] == oc.NOT_IN_ANSWER
    assert f.loc["5", "device_name"] == "given5" and len(f) == 5
    assert "1 ids that were not requested" in caplog.text


def test_a_clean_answer_keeps_the_names_it_gives_and_those_given():
    async def send(chunk, no, attempt):
        return Answer(success=[(i, f"n{i}" if i % 2 else None) for i in reversed(chunk)])

    res = run(list(range(1, 21)), send, names={i: f"g{i}" for i in range(1, 21)})
    f = res.frame
    assert res.ok and f["device_name"].tolist() == [f"n{i}" if i % 2 else f"g{i}" for i in range(1, 21)]
    assert set(f["error_code"].dropna()) == set() and set(f["error_msg"].dropna()) == set()


@pytest.mark.slow
def test_retryable_errors_are_retried_then_answered():
    tries: dict[int, int] = {}

    async def send(chunk, no, attempt):
        tries[no] = attempt
        if attempt == 1:
            raise ApiError(429, "APIG.0308", "throttled", "rid", retry_after=0)
        if attempt == 2:
            raise TransportError("reset", sent=True, code=oc.CONNECTION_LOST)
        return Answer(success=[(i, None) for i in chunk])

    # the retries alone: after 429s the adaptive rate would pace the rest (test_adaptive.py)
    res = run(list(range(1, 51)), send, adaptive=False)
    assert res.ok and set(res.frame["attempts"]) == {3} and set(tries.values()) == {3}


def test_exhausted_retries_leave_failed_or_unknown_by_cause():
    async def send(chunk, no, attempt):
        if no == 0:
            raise ApiError(500, "APIG.9999", "boom", "rid-x")
        if no == 1:
            raise TransportError("read timeout", sent=True, code=oc.TIMEOUT, request_id="rid-y")
        if no == 2:
            raise TransportError("refused", sent=False)
        if no == 3:
            raise MalformedResponse("not json")
        raise ApiError(404, "ROMA.00110006", "not found", "rid-z")

    res = run(list(range(1, 51)), send)
    by_chunk = res.frame.groupby("chunk", observed=True).agg(
        outcome=("outcome", "first"), code=("error_code", "first"), attempts=("attempts", "first")
    )
    assert by_chunk.loc[0].tolist() == ["failed", "APIG.9999", 3]
    assert by_chunk.loc[1].tolist() == ["unknown", oc.TIMEOUT, 3]
    assert by_chunk.loc[2].tolist() == ["failed", oc.CONNECT_ERROR, 3]
    assert by_chunk.loc[3].tolist() == ["unknown", oc.MALFORMED, 3]
    assert by_chunk.loc[4].tolist() == ["failed", "ROMA.00110006", 1]  # permanent: not retried
    # transient causes are worth a retry, the permanent 404 is not
    assert sorted(res.retry_ids()) == list(range(1, 41))
    assert res.frame.loc[res.frame.chunk == 0, "request_id"].iloc[0] == "rid-x"


def test_unanswered_chunks_not_resent_when_policy_says_so():
    calls = []

    async def send(chunk, no, attempt):
        calls.append(no)
        raise TransportError("no answer", sent=True, code=oc.TIMEOUT, event_id=f"ev{no}")

    res = run(list(range(1, 21)), send, retry=RetryPolicy(attempts=5, resend_unanswered=False))
    assert calls == [0, 1] or sorted(calls) == [0, 1]
    assert res.counts["unknown"] == 20 and set(res.frame["event_id"]) == {"ev0", "ev1"}


def test_attempt_timeout_bounds_a_hanging_send():
    async def send(chunk, no, attempt):
        await asyncio.Event().wait()  # never answers

    res = run([1, 2, 3], send, attempt_timeout=0.05, retry=RetryPolicy(attempts=1))
    assert res.counts["unknown"] == 3 and set(res.frame["error_code"]) == {oc.TIMEOUT}


def test_a_client_rate_spaces_request_starts_retries_included():
    """``rate``: request starts at most that many per second, however many may be in flight."""
    starts = []

    async def send(chunk, no, attempt):
        starts.append(asyncio.get_running_loop().time())
        if no == 0 and attempt == 1:
            raise ApiError(503, "APIG.0503", "busy")
        return Answer(success=[(i, None) for i in chunk])

    res = run(list(range(50)), send, rate=40.0, concurrency=8)
    assert res.counts["success"] == 50 and len(starts) == 6  # five chunks, one of them twice
    assert starts[-1] - starts[0] >= 0.9 * 5 / 40.0
    with pytest.raises(InputError, match="rate"):
        run([1], send, rate=0)


def test_window_of_requests_in_flight_is_bounded():
    in_flight = 0
    peak = 0
    gate = asyncio.Event()

    async def send(chunk, no, attempt):
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        if in_flight == 4:
            gate.set()
        await asyncio.wait_for(gate.wait(), 5)
        in_flight -= 1
        return Answer(success=[(i, None) for i in chunk])

    res = run(list(range(1, 201)), send, concurrency=4)
    assert res.ok and peak == 4


def test_cancel_skips_unsent_chunks_and_keeps_sent_ones():
    token = CancelToken()

    async def send(chunk, no, attempt):
        if no == 2:
            token.cancel("operator pressed cancel")
        return Answer(success=[(i, None) for i in chunk])

    res = run(list(range(1, 101)), send, concurrency=1, cancel=token)
    assert res.counts == {"success": 30, "failed": 0, "unknown": 0, "skipped": 70}
    assert res.stopped == "operator pressed cancel"
    skipped = res.frame[res.frame.outcome == "skipped"]
    assert set(skipped["error_code"]) == {oc.CANCELLED} and skipped["sent_at"].isna().all()
    assert len(res) == 100


def test_a_bug_in_send_never_loses_devices():
    async def send(chunk, no, attempt):
        if no == 1:
            raise KeyError("oops")
        return Answer(success=[(i, None) for i in chunk])

    res = run(list(range(1, 31)), send)
    assert res.counts["unknown"] == 10 and set(res.frame.loc[10:19, "error_code"]) == {oc.INTERNAL}


def test_observer_sees_every_chunk():
    seen = {"sent": [], "done": [], "finished": None}

    class Obs(BatchObserver):
        def started(self, op_id, operation, target, chunks):
            seen["chunks"] = len(chunks)

        def chunk_sent(self, op_id, chunk, attempt):
            seen["sent"].append(chunk)

        def chunk_done(self, op_id, chunk, rows):
            seen["done"].append(chunk)

        def finished(self, result):
            seen["finished"] = result.op_id

    async def send(chunk, no, attempt):
        return Answer(success=[(i, None) for i in chunk])

    res = run(list(range(1, 46)), send, observer=Obs(), op_id="op123")
    assert seen["chunks"] == 5 and sorted(seen["done"]) == [0, 1, 2, 3, 4]
    assert seen["finished"] == "op123" == res.op_id


def test_bad_engine_arguments_refused():
    async def send(chunk, no, attempt):
        return Answer()

    with pytest.raises(InputError):
        run([1], send, chunk_size=0)
    with pytest.raises(InputError):
        run([1], send, concurrency=0)
    with pytest.raises(InputError):
        RetryPolicy(attempts=0)


@pytest.mark.slow
def test_retry_policy_by_failure_type():
    tries = []

    async def send(chunk, no, attempt):
        tries.append(no)
        if no == 0:
            raise ApiError(429, "APIG.0308", "throttled", retry_after=0)
        raise ApiError(503, "APIG.9999", "down")

    policy = RetryPolicy(attempts=3, backoff=0.0, retry_on={"throttled"})
    res = run(list(range(1, 21)), send, retry=policy, concurrency=1, adaptive=False)
    assert tries.count(0) == 3 and tries.count(1) == 1  # 429 retried, 5xx not
    assert set(res.frame["attempts"]) == {3, 1}
    with pytest.raises(InputError, match="retry_on"):
        RetryPolicy(retry_on={"sometimes"})
