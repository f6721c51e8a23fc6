"""Building and summarising a 1,000,000-row outcome result: romakit's ResultBuilder +
summary() against the plain way (one dict per device, ``pd.DataFrame(list_of_dicts)``,
then a groupby), in one run; then what journaling costs the batch engine.

    .venv/bin/python benchmarks/bench_results.py [--rows 1000000] [--chunk 500] [--repeat 3]

Both pipelines start from the same per-chunk answers (made beforehand, not timed), as
the engine has them: ids, names, outcomes, codes and messages per device; chunk number,
attempts, request id and times per chunk. Time is the best of ``--repeat`` runs without
tracing; peak memory is a separate traced run (tracemalloc sees numpy's and pandas'
buffers too). The journal section runs the real engine with an instant ``send`` (so only
romakit's own work is timed), with the journal on and off.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import random
import tempfile
import time
import tracemalloc
import uuid
from collections.abc import Callable
from typing import Any


def make_chunks(rows: int, chunk: int, seed: int = 1) -> list[dict[str, Any]]:
    """Per-chunk answers: ~97 % success, 2 % failed (two codes), 1 % unknown."""
    rnd = random.Random(seed)
    t = 1_760_000_000.0
    out = []
    dev = 7_100_000
    for no in range(-(-rows // chunk)):
        n = min(chunk, rows - no * chunk)
        ids = list(range(dev, dev + n))
        dev += n
        outcomes, codes, msgs = [], [], []
        for _ in range(n):
            r = rnd.random()
            if r < 0.97:
                outcomes.append("success"), codes.append(None), msgs.append(None)
            elif r < 0.98:
                outcomes.append("failed"), codes.append("romakit.ReportedFailed"), msgs.append("listed in 'failed' by the service (no reason given)")
            elif r < 0.99:
                outcomes.append("failed"), codes.append("ROMA.00110006"), msgs.append("device not found")
            else:
                outcomes.append("unknown"), codes.append("romakit.NotInAnswer"), msgs.append("the answer mentioned neither success nor failure for this device")
        sent = t + no * 0.05
        out.append({
            "ids": ids, "names": [f"meter-sz-{i:07d}" for i in ids], "outcome": outcomes, "error_code": codes,
            "error_msg": msgs, "chunk": no, "attempts": 1 + (no % 7 == 0), "request_id": str(uuid.UUID(int=rnd.getrandbits(128))),
            "event_id": None, "sent_at": sent, "answered_at": sent + 0.03 + rnd.random() * 0.2,
        })
    return out


def with_romakit(chunks: list[dict[str, Any]]) -> tuple[Any, Any]:
    from romakit.results import ResultBuilder

    b = ResultBuilder("force_offline", "instance-0001", "bench")
    for c in chunks:
        b.add(c["ids"], outcome=c["outcome"], names=c["names"], error_code=c["error_code"], error_msg=c["error_msg"],
              chunk=c["chunk"], attempts=c["attempts"], request_id=c["request_id"], event_id=c["event_id"],
              sent_at=c["sent_at"], answered_at=c["answered_at"])
    res = b.build()
    return res.frame, res.summary()


def with_dicts(chunks: list[dict[str, Any]]) -> tuple[Any, Any]:
    import pandas as pd

    rows = []
    for c in chunks:
        lat = (c["answered_at"] - c["sent_at"]) * 1000.0
        for i, name, o, code, msg in zip(c["ids"], c["names"], c["outcome"], c["error_code"], c["error_msg"], strict=True):
            rows.append({
                "op_id": "bench", "operation": "force_offline", "target": "instance-0001", "device_id": str(i),
                "device_name": name, "outcome": o, "error_code": code, "error_msg": msg, "chunk": c["chunk"],
                "attempts": c["attempts"], "request_id": c["request_id"], "event_id": c["event_id"],
                "sent_at": c["sent_at"], "answered_at": c["answered_at"], "latency_ms": lat,
            })
    frame = pd.DataFrame(rows)
    g = frame.groupby(["outcome", "error_code"], dropna=False).size().rename("devices").to_frame()
    g["share"] = (g["devices"] / len(frame)).round(4)
    return frame, g


def timed(fn: Callable, arg: Any, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        gc.collect()
        t0 = time.perf_counter()
        out = fn(arg)
        best = min(best, time.perf_counter() - t0)
        del out
    return best


def peak_mib(fn: Callable, arg: Any) -> tuple[float, float]:
    """(traced peak while running, deep size of the resulting frame), MiB."""
    gc.collect()
    tracemalloc.start()
    tracemalloc.reset_peak()
    frame, _ = fn(arg)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    size = frame.memory_usage(deep=True).sum()
    return peak / 2**20, size / 2**20


def journal_cost(devices: int, chunk: int, repeat: int) -> tuple[float, float]:
    """Seconds for the engine over ``devices`` (instant answers): journal off, journal on."""
    from romakit.engine import Answer, BatchObserver, run_batch

    async def send(ids: list, no: int, attempt: int) -> Answer:
        return Answer(success=[(i, None) for i in ids], request_id=f"r{no}")

    def once(observer: Any) -> float:
        t0 = time.perf_counter()
        res = asyncio.run(run_batch(list(range(1, devices + 1)), operation="force_offline", target="bench", send=send,
                                    chunk_size=chunk, concurrency=8, progress=False, observer=observer))
        assert len(res) == devices
        return time.perf_counter() - t0

    off = min(once(BatchObserver()) for _ in range(repeat))
    on = min(once(None) for _ in range(repeat))  # None: the engine's default observer, the journal
    return off, on


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--chunk", type=int, default=500)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-journal", action="store_true", help="skip the journal section")
    args = ap.parse_args()

    import pandas as pd

    chunks = make_chunks(args.rows, args.chunk)
    frame, summary = with_romakit(chunks)
    base, base_summary = with_dicts(chunks)
    assert len(frame) == len(base) == args.rows
    assert summary["devices"].sum() == base_summary["devices"].sum() == args.rows
    del frame, base, summary, base_summary

    print(f"{args.rows:,} rows in {len(chunks):,} chunks of {args.chunk}; pandas {pd.__version__}")
    t_rk = timed(with_romakit, chunks, args.repeat)
    t_pd = timed(with_dicts, chunks, args.repeat)
    m_rk, s_rk = peak_mib(with_romakit, chunks)
    m_pd, s_pd = peak_mib(with_dicts, chunks)
    print(f"{'':32}{'time (s)':>10}{'peak (MiB)':>12}{'frame (MiB)':>13}")
    print(f"{'ResultBuilder + summary()':32}{t_rk:>10.2f}{m_rk:>12.0f}{s_rk:>13.0f}")
    print(f"{'DataFrame(list_of_dicts)+groupby':32}{t_pd:>10.2f}{m_pd:>12.0f}{s_pd:>13.0f}")
    print(f"{'baseline / romakit':32}{t_pd / t_rk:>9.1f}x{m_pd / m_rk:>11.1f}x{s_pd / s_rk:>12.1f}x")

    if not args.no_journal:
        with tempfile.TemporaryDirectory() as home:
            os.environ["ROMAKIT_HOME"] = home
            print("\njournal cost in the engine (instant answers; the journal's own work only):")
            for devices, chunk in ((10_000, 500), (100_000, 50)):
                off, on = journal_cost(devices, chunk, args.repeat)
                n_chunks = -(-devices // chunk)
                print(f"  {devices:>7,} devices / {n_chunks:>5,} chunks: off {off * 1000:7.1f} ms, on {on * 1000:7.1f} ms "
                      f"(+{(on - off) * 1000 / n_chunks:.2f} ms per chunk, +{(on - off) * 1e6 / devices:.1f} us per device)")


if __name__ == "__main__":
    main()
