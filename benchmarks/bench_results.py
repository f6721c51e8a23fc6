"""Building and summarising an outcome result of a million rows: romakit's ResultBuilder +
summary() against the plain way (one dict per device, ``pd.DataFrame(list_of_dicts)``,
then a groupby), in one run; then what journaling costs the batch engine.

    .venv/bin/python benchmarks/bench_results.py [--rows 100000 1000000] [--chunk 500] [--repeat 3] [--bad 0.03]

Both pipelines start from the same per-chunk answers (made beforehand, not timed), as
the engine has them: ids, names, outcomes, codes and messages per device; chunk number,
attempts, request id and times per chunk. Time is the best of ``--repeat`` runs without
tracing; *fresh* is the first full-size run in a new process (after a 1,000-row warm-up),
where the allocators still ask the OS for every page.

Memory is measured in a fresh process per pipeline, after a small warm-up run (imports
are not counted): *heap peak* is tracemalloc's peak (Python objects and numpy buffers)
plus the peak of pyarrow's memory pool, which tracemalloc does not see (pandas keeps its
strings in pyarrow) -- the sum of two peaks, so an upper bound of the heap's own peak;
*RSS peak* is the growth of the process's resident high-water mark over the run, without
tracing (what the allocators took from the OS, kept or not). The journal section runs
the real engine with an instant ``send`` (so only romakit's own work is timed), with the
journal on and off.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import tracemalloc
import uuid
from collections.abc import Callable
from typing import Any


def make_chunks(rows: int, chunk: int, bad: float = 0.03, seed: int = 1) -> list[dict[str, Any]]:
    """Per-chunk answers, devices not ok scattered at random (``bad`` of them, 3 % by
    default): two thirds failed (two codes), one third unknown; the rest success."""
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
            if r >= bad:
                outcomes.append("success"), codes.append(None), msgs.append(None)
            elif r < bad / 3:
                outcomes.append("failed"), codes.append("romakit.ReportedFailed"), msgs.append("listed in 'failed' by the service (no reason given)")
            elif r < bad * 2 / 3:
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
    """The best seconds of ``repeat`` runs."""
    best = float("inf")
    for _ in range(repeat):
        gc.collect()
        t0 = time.perf_counter()
        out = fn(arg)
        best = min(best, time.perf_counter() - t0)
        del out
    return best


PIPELINES: dict[str, Callable] = {"romakit": with_romakit, "dicts": with_dicts}


def _status_mib(field: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise KeyError(field)


def measure_memory(pipeline: str, rows: int, chunk: int, bad: float) -> dict[str, float]:
    """In this (fresh) process: the first run's seconds and RSS peak growth (untraced),
    then a traced run's heap peak (traced + pyarrow's pool) and its traced part, and the
    frame's own size, MiB."""
    import pyarrow as pa

    fn = PIPELINES[pipeline]
    chunks = make_chunks(rows, chunk, bad)
    fn(make_chunks(1000, min(chunk, 1000), bad))  # warm-up: imports and first-use caches
    pool = pa.default_memory_pool()

    gc.collect()
    with open("/proc/self/clear_refs", "w") as f:  # resets the high-water mark (Linux)
        f.write("5")
    before = _status_mib("VmRSS")
    t0 = time.perf_counter()
    out = fn(chunks)
    fresh = time.perf_counter() - t0
    rss = _status_mib("VmHWM") - before
    del out
    gc.collect()
    arrow_before = pool.bytes_allocated()
    tracemalloc.start()
    frame, _ = fn(chunks)
    traced = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    if pool.max_memory() < arrow_before:  # pragma: no cover - a pool that keeps no peak
        raise RuntimeError("pyarrow's memory pool reports no peak")
    arrow = (pool.max_memory() - arrow_before) / 2**20  # max_memory: the pool's peak so far
    size = frame.memory_usage(deep=True).sum() / 2**20
    return {"fresh": fresh, "heap": traced + arrow, "traced": traced, "arrow": arrow, "rss": rss, "frame": size}


def memory_in_fresh_process(pipeline: str, rows: int, chunk: int, bad: float) -> dict[str, float]:
    args = ["--memory-of", pipeline, "--rows", str(rows), "--chunk", str(chunk), "--bad", str(bad)]
    out = subprocess.run([sys.executable, __file__, *args], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def compare(rows: int, chunk: int, repeat: int, bad: float) -> None:
    """Both pipelines over the same answers: time in this process, memory in fresh ones."""
    import pandas as pd
    import pyarrow as pa

    chunks = make_chunks(rows, chunk, bad)
    frame, summary = with_romakit(chunks)
    base, base_summary = with_dicts(chunks)
    assert len(frame) == len(base) == rows
    assert frame["device_id"].tolist() == base["device_id"].tolist()
    assert summary["devices"].sum() == base_summary["devices"].sum() == rows
    del frame, base, summary, base_summary

    print(f"\n{rows:,} rows in {len(chunks):,} chunks of {chunk}, {bad:.0%} not ok; pandas {pd.__version__}, pyarrow {pa.__version__}")
    t = {name: timed(fn, chunks, repeat) for name, fn in PIPELINES.items()}
    del chunks
    m = {name: memory_in_fresh_process(name, rows, chunk, bad) for name in PIPELINES}
    print(f"{'':34}{'best (s)':>9}{'fresh (s)':>10}{'heap peak':>11}{'(traced)':>10}{'RSS peak':>10}{'frame':>8}  (MiB)")
    labels = {"romakit": "ResultBuilder + summary()", "dicts": "DataFrame(list_of_dicts)+groupby"}
    for name, label in labels.items():
        mm = m[name]
        print(f"{label:34}{t[name]:>9.3f}{mm['fresh']:>10.3f}{mm['heap']:>11.0f}{mm['traced']:>10.0f}{mm['rss']:>10.0f}"
              f"{mm['frame']:>8.0f}")
    mr, md = m["romakit"], m["dicts"]
    ratios = [t["dicts"] / t["romakit"]] + [md[k] / mr[k] for k in ("fresh", "heap", "traced", "rss", "frame")]
    print(f"{'baseline / romakit':34}" + "".join(f"{r:>{w}.1f}x" for r, w in zip(ratios, (8, 9, 10, 9, 9, 7), strict=True)))


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
    ap.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--chunk", type=int, default=500)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--bad", type=float, default=0.03,
                    help="share of devices not ok, scattered at random (0: every chunk all success)")
    ap.add_argument("--no-journal", action="store_true", help="skip the journal section")
    ap.add_argument("--memory-of", choices=sorted(PIPELINES), help=argparse.SUPPRESS)  # the fresh process's job
    args = ap.parse_args()

    if args.memory_of:
        print(json.dumps(measure_memory(args.memory_of, args.rows[0], args.chunk, args.bad)))
        return
    for rows in args.rows:
        compare(rows, args.chunk, args.repeat, args.bad)

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
