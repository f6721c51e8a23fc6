"""The synchronous clients (IAM, IoTDA's inventory) end in bounded time and memory
whatever the service sends, as the LINK client does: a body trickled one byte at a
time ends at the deadline, a body past the size cap is stopped there, JSON nested
200,000 deep is refused unread. Each answer comes from a hostile HTTP service on
loopback (:mod:`support.hostile_wire`, real sockets)."""

from __future__ import annotations

import asyncio
import time

import pytest
from support.cli import cli_env, romakit
from support.hostile_wire import Hostile, Request, head, send_json

import romakit as rk
from romakit.link.iam import IamClient

pytestmark = pytest.mark.timeout(60)


async def _trickle(req: Request, writer: asyncio.StreamWriter) -> None:
    writer.write(head(200, 10**6) + b'{"devices": [')
    while True:
        await writer.drain()
        await asyncio.sleep(0.2)
        writer.write(b" ")


async def _huge(req: Request, writer: asyncio.StreamWriter) -> None:
    writer.write(head(200, chunked=True))  # no length to refuse on: read until the cap
    chunk = b" " * 65536
    for _ in range(200):  # 12.5 MiB, far past the test's 1 MiB cap
        writer.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
        await writer.drain()
    writer.write(b"0\r\n\r\n")


async def _deep(req: Request, writer: asyncio.StreamWriter) -> None:
    await send_json(writer, b'{"devices": ' + b"[" * 200_000 + b"]" * 200_000 + b"}")


def _iotda(svc: Hostile, **bounds) -> rk.IotdaClient:
    return rk.IotdaClient(svc.endpoint, "p1", rk.IotdaAkSk("ak", "sk-not-secret"), **bounds)


def _iam(svc: Hostile, **bounds) -> IamClient:
    return IamClient(svc.endpoint, **bounds)


def _read(client) -> None:
    if isinstance(client, IamClient):
        client.password_token("domain", "user", "pw-not-secret", region="cn-north-4")
    else:
        client.devices()


@pytest.mark.parametrize("make", [_iotda, _iam], ids=["iotda", "iam"])
def test_a_trickled_answer_ends_at_the_deadline(make):
    with Hostile(_trickle) as svc:
        client = make(svc, deadline=1.0)
        t0 = time.monotonic()
        with pytest.raises(rk.DeadlineExceeded, match="1.0 s deadline"):
            _read(client)
        client.close()
    assert time.monotonic() - t0 < 10  # without the deadline it reads for 10**6 * 0.2 s


@pytest.mark.parametrize("make", [_iotda, _iam], ids=["iotda", "iam"])
def test_an_answer_past_the_cap_is_stopped_there(make):
    with Hostile(_huge) as svc:
        client = make(svc, max_answer_bytes=2**20)
        with pytest.raises(rk.AnswerTooLarge, match="1 MiB cap"):
            _read(client)
        client.close()
        assert svc.requests[0].sent < 12 * 2**20 or svc.requests[0].aborted


@pytest.mark.parametrize("make", [_iotda, _iam], ids=["iotda", "iam"])
def test_json_nested_200000_deep_is_refused_unread(make):
    with Hostile(_deep) as svc:
        client = make(svc)
        with pytest.raises(rk.MalformedResponse, match="not a JSON object"):
            _read(client)
        client.close()


def test_bad_bounds_are_refused_before_anything_is_sent():
    with pytest.raises(rk.InputError, match="deadline"):
        rk.IotdaClient("http://127.0.0.1:9", "p1", rk.IotdaAkSk("ak", "sk"), deadline=0)
    with pytest.raises(rk.InputError, match="max_answer_bytes"):
        IamClient("http://127.0.0.1:9", max_answer_bytes=0)


def test_the_cli_takes_the_deadline_and_the_size_cap():
    env = cli_env(ROMAKIT_ENDPOINT="", ROMAKIT_PROJECT_ID="p" * 32, ROMAKIT_INSTANCE_ID="i" * 36,
                  ROMAKIT_AK="hostile-ak", ROMAKIT_SK="hostile-sk")
    with Hostile(_trickle) as svc:
        env["ROMAKIT_ENDPOINT"] = svc.endpoint
        t0 = time.monotonic()
        late = romakit("devices", "--deadline", "1", env=env, timeout=60)
        took = time.monotonic() - t0
    with Hostile(_huge) as svc:
        env["ROMAKIT_ENDPOINT"] = svc.endpoint
        big = romakit("devices", "--max-answer-bytes", "1048576", env=env, timeout=60)
    assert late.returncode != 0 and "1.0 s deadline" in late.stderr and took < 30
    assert big.returncode != 0 and "1 MiB cap" in big.stderr
