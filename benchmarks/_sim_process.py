"""Run ``python -m romakit sim`` in its own process for benchmarks (so the server does
not share the client's interpreter and GIL) and read the JSON line it prints; and read
that process's CPU time and memory from ``/proc``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from contextlib import contextmanager


@contextmanager
def sim_process(*args: str, timeout: float = 120.0, tree: str | None = None):
    """The sandbox's description (plus its ``pid``) while it runs. ``tree``: run the
    romakit found in that directory instead (e.g. an older commit, for a baseline)."""
    env = None
    if tree is not None:
        env = {**os.environ, "PYTHONPATH": tree + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "romakit", "sim", *args],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        cwd=tree,  # ``-m`` puts the working directory first on the path
    )
    try:
        line = proc.stdout.readline()  # the sandbox prints one line once it is serving
        if not line:
            raise RuntimeError(f"romakit sim exited with {proc.wait(timeout)} before describing itself")
        yield {**json.loads(line), "pid": proc.pid}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()


@contextmanager
def served(argv: list[str], timeout: float = 30.0):
    """``python ARGV`` as a sandbox of a benchmark's own: the facts of its first JSON line;
    when the block ends its stdin is closed and its last JSON line (what it found left)
    is added to them."""
    proc = subprocess.Popen([sys.executable, *argv], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    facts: dict = {}
    try:
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"sandbox process exited with {proc.wait(timeout)}")
        facts.update(json.loads(line))
        yield facts
        proc.stdin.close()
        facts.update(json.loads(proc.stdout.readline() or "{}"))
    finally:
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()


def cpu_of(pid: int) -> float:
    """Seconds of CPU the process ``pid`` has used (utime + stime; Linux ``/proc``)."""
    with open(f"/proc/{pid}/stat") as f:
        parts = f.read().rsplit(")", 1)[1].split()
    return (int(parts[11]) + int(parts[12])) / os.sysconf("SC_CLK_TCK")


def memory_of(pid: int) -> tuple[float, float]:
    """``(resident MiB now, peak resident MiB)`` of the process ``pid``."""
    values = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0]) / 1024
    return values.get("VmRSS", 0.0), values.get("VmHWM", 0.0)
