"""Whatever a service answers, a LINK client ends in bounded time and memory with a
romakit error that says what was wrong: a lying or ever-growing ``total``, a body
trickled one byte at a time, a body far past the size cap, JSON nested 200,000 deep, a
listed id no LINK device can have. Each answer comes from a hostile HTTP service on
loopback (:mod:`support.hostile`, real sockets)."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest
from support.hostile_wire import Hostile, Request, devices, head, send_json

import romakit as rk

PAGE = 999
pytestmark = pytest.mark.timeout(60)


def _listing(total_of, items_of):
    """A ListDevices service: ``total_of(offset)`` and ``items_of(offset)`` per page."""
    async def answer(req: Request, writer: asyncio.StreamWriter) -> None:
        off = int(req.query.get("offset", 0))
        await send_json(writer, {"total": total_of(off), "items": items_of(off)})
    return answer


def _full(off: int) -> list[dict]:
    return devices(off + 1, PAGE)


@pytest.mark.parametrize("total", [10**12, 10**8])
def test_a_total_the_pages_do_not_bear_out_stops_the_listing(total):
    # the first page is full, every later one empty: the service's total is a lie
    answer = _listing(lambda off: total, lambda off: _full(off) if off == 0 else [])
    with Hostile(answer) as svc, svc.client(concurrency=4) as link:
        with pytest.raises(rk.ListingContradiction, match="empty page") as info:
            link.devices()
    assert f"total {total}" in str(info.value)
    assert len(svc.requests) <= 3 * (1 + 2 * 4)  # each of three reads stops at its first lie (2 asked a lane)


def test_a_total_that_keeps_growing_with_full_pages_is_bounded():
    answer = _listing(lambda off: off + 2 * PAGE, _full)  # always two more full pages "to come"
    with Hostile(answer) as svc, svc.client(concurrency=2) as link:
        with pytest.raises(rk.ListingContradiction, match="grew"):
            link.devices()
    assert len(svc.requests) < 60


def test_more_items_than_the_total_is_a_contradiction():
    answer = _listing(lambda off: 5, lambda off: devices(1, 10))
    with Hostile(answer) as svc, svc.client() as link:
        with pytest.raises(rk.ListingContradiction, match="10 devices .* total 5"):
            link.devices()


def test_a_short_first_page_under_a_larger_total_is_a_contradiction():
    answer = _listing(lambda off: 10**8, lambda off: devices(1, 3))
    with Hostile(answer) as svc, svc.client() as link:
        with pytest.raises(rk.ListingContradiction, match="3 devices"):
            link.devices()


async def _trickle(req: Request, writer: asyncio.StreamWriter) -> None:
    """An answer's head at once, then its body one byte every half second, forever."""
    writer.write(head(200, 10**6))
    writer.write(b'{"total": 1, "items": [')
    while True:
        await writer.drain()
        await asyncio.sleep(0.5)
        writer.write(b" ")


@pytest.mark.parametrize("call", ["devices", "preflight", "device"])
def test_a_trickled_answer_ends_at_the_deadline(call):
    with Hostile(_trickle) as svc, svc.client(deadline=2.0, retry=rk.RetryPolicy(attempts=3, backoff=0)) as link:
        t0 = time.monotonic()
        with pytest.raises(rk.DeadlineExceeded, match="2.0 s") as info:
            link.device(1) if call == "device" else getattr(link, call)()
        took = time.monotonic() - t0
    assert took < 8, f"{call}() took {took:.1f} s past a 2 s deadline"
    assert isinstance(info.value, rk.TransportError) and len(svc.requests) == 1  # not tried again


def test_a_trickled_batch_answer_leaves_its_devices_unknown():
    async def answer(req: Request, writer: asyncio.StreamWriter) -> None:
        if req.method == "GET":
            await send_json(writer, {"total": 3, "items": devices(1, 1)})
        else:
            await _trickle(req, writer)

    with Hostile(answer) as svc, svc.client(deadline=1.0) as link:
        res = link.force_offline([1, 2, 3])
    assert res.counts["unknown"] == 3
    assert "1.0 s" in " ".join(map(str, res.frame["error_msg"].dropna()))


@pytest.mark.parametrize("chunked", [False, True])  # its size declared up front, or only streamed
def test_an_answer_past_the_size_cap_is_stopped_not_read(chunked):
    size = 50 * 2**20

    async def answer(req: Request, writer: asyncio.StreamWriter) -> None:
        writer.write(head(200, size, chunked=chunked))
        chunk = b" " * 2**16
        for _ in range(size // len(chunk)):
            writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk) if chunked else chunk)
            await writer.drain()
            req.sent += len(chunk)

    with Hostile(answer) as svc, svc.client(max_answer_bytes=2**20) as link:
        with pytest.raises(rk.AnswerTooLarge, match="1 MiB"):
            link.devices()
        deadline = time.monotonic() + 10
        while not svc.requests[0].aborted and time.monotonic() < deadline:  # the service sees the hang-up
            time.sleep(0.05)
    assert svc.requests[0].aborted and svc.requests[0].sent < size // 2


@pytest.mark.parametrize("status", [200, 500])
def test_json_nested_200000_deep_is_refused_without_recursion(status):
    nested = b"[" * 200_000 + b"]" * 200_000
    body = (b'{"total": 1, "items": ' if status == 200 else b'{"error_code": ') + nested + b"}"

    async def answer(req: Request, writer: asyncio.StreamWriter) -> None:
        await send_json(writer, body, status)

    with Hostile(answer) as svc, svc.client() as link:
        for call in (link.devices, lambda: link.device(7)):
            with pytest.raises(rk.MalformedResponse if status == 200 else rk.ApiError) as info:
                call()
            assert ("nested too deep" in str(info.value)) if status == 200 else info.value.status == 500
        res = link.force_offline([1, 2])
    assert res.counts["success"] == 0 and len(res.frame) == 2


def test_one_listed_id_out_of_range_is_named_and_the_rest_is_read(caplog):
    bad = 10**30

    def items(off: int) -> list[dict]:
        page = devices(off + 1, PAGE if off == 0 else 1)
        if off == 0:
            page[5] = {"id": bad, "device_name": "corrupt"}
        return page

    answer = _listing(lambda off: PAGE + 1, items)
    with Hostile(answer) as svc, svc.client() as link, caplog.at_level(logging.WARNING, logger="romakit.link"):
        fleet = link.devices()
    assert len(fleet) == PAGE and bad not in set(fleet["id"].astype(object))
    assert fleet.attrs["romakit_malformed"] == [{"id": str(bad), "device_name": "corrupt",
                                                 "problem": "id out of range 1..99999999999999999"}]
    assert str(bad) in caplog.text and "romakit_total_mismatch" not in fleet.attrs


def _deep_error(req: Request, writer: asyncio.StreamWriter):
    return send_json(writer, b'{"error_code": ' + b"[" * 200_000 + b"]" * 200_000 + b"}", 500)


def _lying_total(req: Request, writer: asyncio.StreamWriter):
    off = int(req.query.get("offset", 0))
    return send_json(writer, {"total": 10**12, "items": _full(off) if off == 0 else []})


@pytest.mark.parametrize(("answer", "says"), [
    (_lying_total, "contradict themselves"),
    pytest.param(_deep_error, "HTTP 500", marks=pytest.mark.slow),  # a 500: the command's retries, backing off
])
def test_the_command_ends_a_hostile_answer_with_a_message_and_exit_3(answer, says, monkeypatch, capsys):
    from romakit import cli

    monkeypatch.setenv("ROMAKIT_TOKEN", "t")
    with Hostile(answer) as svc:
        code = cli.main(["devices", "--ids", "--endpoint", svc.endpoint, "--project-id", "p" * 32,
                         "--instance-id", "i" * 36])
    err = capsys.readouterr().err
    assert code == cli.EXIT_UNREACHABLE and says in err and "Traceback" not in err


@pytest.mark.parametrize("column", ["parent_device_id", "keep_alive", "created_datetime"])
def test_another_number_past_64_bits_is_a_malformed_listing_named_by_its_column(column):
    def items(off: int) -> list[dict]:
        page = devices(1, 3)
        page[1][column] = 10**30
        return page

    with Hostile(_listing(lambda off: 3, items)) as svc, svc.client() as link:
        with pytest.raises(rk.MalformedResponse, match=column if column != "created_datetime" else "frame cannot"):
            link.devices()
