"""Cost per chunk event of the journal, SQLite and PostgreSQL side by side, in one run.

    .venv/bin/python benchmarks/bench_journal.py [--chunks 2000] [--chunk 50] [--repeat 3]
        [--postgres postgresql://postgres@127.0.0.1:5432/test]

Drives :class:`~romakit.store.writer.JournalObserver` directly, as the engine does: one
``started`` (the plan), then ``chunk_sent`` + ``chunk_done`` per chunk; a chunk event is
one of those two (each is one INSERT and commit). Also times ``started`` (connection,
schema check, plan, lease) and ``rk.journal()`` over what was written. The PostgreSQL
side writes into a fresh schema, dropped afterwards; it is skipped, saying why, when
nothing answers. Best of ``--repeat`` runs.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import uuid


def rows(ids: list[str]) -> dict:
    n = len(ids)
    return {"ids": ids, "attempts": 1, "sent_at": 1.0, "answered_at": 2.0, "request_id": "req", "event_id": None,
            "names": [None] * n, "outcome": ["success"] * n, "error_code": [None] * n, "error_msg": [None] * n,
            "http_status": 200, "settled_by": None}


def measure(journal: str, chunks: int, size: int, repeat: int) -> dict[str, float]:
    from romakit.replay import journal as listing
    from romakit.store.writer import JournalObserver

    plan = [[f"dev-{n}-{i}" for i in range(size)] for n in range(chunks)]
    answers = [rows(c) for c in plan]
    best = {"event_us": float("inf"), "start_ms": float("inf"), "list_ms": float("inf")}
    for _ in range(repeat):
        obs = JournalObserver(journal=journal)
        op = uuid.uuid4().hex[:12]
        t0 = time.perf_counter()
        obs.started(op, "force_offline", "bench", plan)
        t1 = time.perf_counter()
        assert obs._db is not None, "the journal could not be written"
        for no in range(chunks):
            obs.chunk_sent(op, no, 1)
            obs.chunk_done(op, no, answers[no])
        t2 = time.perf_counter()
        obs._release()
        obs._close()
        best["start_ms"] = min(best["start_ms"], (t1 - t0) * 1e3)
        best["event_us"] = min(best["event_us"], (t2 - t1) / (2 * chunks) * 1e6)
        t3 = time.perf_counter()
        frame = listing(url=journal)
        best["list_ms"] = min(best["list_ms"], (time.perf_counter() - t3) * 1e3)
        assert len(frame) >= 1
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--chunks", type=int, default=2000)
    ap.add_argument("--chunk", type=int, default=50, help="devices per chunk")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--postgres", default=os.environ.get("ROMAKIT_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test"))
    args = ap.parse_args()

    home = tempfile.mkdtemp(prefix="romakit-bench-")
    os.environ["ROMAKIT_HOME"] = home
    results = {"sqlite": measure(os.path.join(home, "journal.sqlite3"), args.chunks, args.chunk, args.repeat)}
    schema = f"rk_bench_{uuid.uuid4().hex[:8]}"
    try:
        import psycopg

        with psycopg.connect(args.postgres, autocommit=True, connect_timeout=3) as c:
            c.execute(f"CREATE SCHEMA {schema}")
    except Exception as e:
        print(f"PostgreSQL skipped: nothing answers at {args.postgres} ({type(e).__name__}: {e})")
    else:
        sep = "&" if "?" in args.postgres else "?"
        try:
            results["postgresql"] = measure(f"{args.postgres}{sep}options=-csearch_path%3D{schema}",
                                            args.chunks, args.chunk, args.repeat)
        finally:
            with psycopg.connect(args.postgres, autocommit=True) as c:
                c.execute(f"DROP SCHEMA {schema} CASCADE")

    print(f"journal: {args.chunks} chunks of {args.chunk} devices, best of {args.repeat}")
    print(f"{'backend':<12}{'per chunk event':>18}{'started()':>12}{'rk.journal()':>14}")
    for name, r in results.items():
        print(f"{name:<12}{r['event_us']:>15.1f} us{r['start_ms']:>9.1f} ms{r['list_ms']:>11.1f} ms")
    if "postgresql" in results:
        s, p = results["sqlite"], results["postgresql"]
        print(f"postgresql / sqlite: {p['event_us'] / s['event_us']:.1f}x per chunk event, "
              f"{p['start_ms'] / s['start_ms']:.1f}x per start, {p['list_ms'] / s['list_ms']:.1f}x per listing")


if __name__ == "__main__":
    main()
