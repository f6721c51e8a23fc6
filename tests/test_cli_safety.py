"""The command's safety in a real terminal (a pseudo-terminal from ``pty``): Ctrl-C says
how to resume, deletions ask above a count, ``resume`` keeps the operation's rollout."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

import romakit as rk
from romakit.replay import recorded_rollout
from romakit.store.reader import pending_ids

pytestmark = pytest.mark.timeout(120)
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def sb():
    with rk.sandbox(devices=600, seed=43) as s:
        yield s


def env(sb, **extra: str) -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if not k.startswith("ROMAKIT_")}
    e.update(ROMAKIT_HOME=os.environ["ROMAKIT_HOME"], PYTHONPATH=str(ROOT), **extra)
    return e


def link_args(sb) -> list[str]:
    c = sb.credentials
    return ["--endpoint", sb.link_endpoint, "--project-id", c.project_id, "--instance-id", c.instance_id]


class Terminal:
    """``romakit ARGS`` on a pseudo-terminal: read what it prints, type, send signals."""

    def __init__(self, args: list[str], environ: dict[str, str]) -> None:
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child: the pty is its controlling terminal
            os.chdir(ROOT)
            os.execve(sys.executable, [sys.executable, "-m", "romakit", *args], environ)
        self.out = ""

    def expect(self, text: str, timeout: float = 30) -> str:
        deadline = time.monotonic() + timeout
        while text not in self.out:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{text!r} not printed within {timeout} s; got {self.out[-2000:]!r}")
            ready, _, _ = select.select([self.fd], [], [], left)  # waits for output, never sleeps
            if ready:
                try:
                    chunk = os.read(self.fd, 65536)
                except OSError:  # the child is gone
                    chunk = b""
                if not chunk:
                    raise AssertionError(f"{text!r} never printed; got {self.out[-2000:]!r}")
                self.out += chunk.decode(errors="replace")
        return self.out

    def type(self, line: str) -> None:
        os.write(self.fd, (line + "\n").encode())

    def wait(self, timeout: float = 30) -> int:
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.expect("\0never\0", timeout=max(deadline - time.monotonic(), 0.01))
            except AssertionError:
                pass
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                os.close(self.fd)
                return os.waitstatus_to_exitcode(status)
            if time.monotonic() > deadline:
                os.kill(self.pid, signal.SIGKILL)
                raise AssertionError("the command did not end")


def answered_chunks(home: Path) -> int:
    file = home / "journal.sqlite3"
    if not file.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{file}?mode=ro", uri=True, timeout=5) as db:
            return db.execute("SELECT COUNT(*) FROM chunks WHERE state = 'done'").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


def test_ctrl_c_prints_the_operation_and_how_to_resume_it(sb):
    home = Path(os.environ["ROMAKIT_HOME"])
    ids = [str(d["id"]) for d in sb.fleet.all() if d["online_status"] == 1][:200]
    sb.set_fault(latency_ms=100)
    try:
        term = Terminal(["offline", *link_args(sb), "--chunk-size", "10", "--concurrency", "1", "--no-progress",
                         *ids], env(sb, ROMAKIT_AK=sb.credentials.ak, ROMAKIT_SK=sb.credentials.sk))
        deadline = time.monotonic() + 30
        while answered_chunks(home) < 2:  # the journal shows the run under way
            assert time.monotonic() < deadline, term.out
            select.select([], [], [], 0.02)
        os.kill(term.pid, signal.SIGINT)
        out = term.expect("finishes it")
        code = term.wait()
    finally:
        sb.clear_faults()
    assert code == 130
    m = re.search(r"interrupted; romakit journal (\w+) shows what was sent; romakit resume (\w+) finishes it", out)
    assert m and m.group(1) == m.group(2), out
    op_id = m.group(1)
    assert op_id in rk.journal().op_id.tolist()  # the operation it names is in the journal
    p = subprocess.run([sys.executable, "-m", "romakit", "resume", op_id, "--json"], capture_output=True, text=True,
                       env=env(sb, ROMAKIT_AK=sb.credentials.ak, ROMAKIT_SK=sb.credentials.sk), cwd=ROOT, timeout=60)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["counts"]["success"] == 200  # resumed: every id once


def test_delete_children_asks_above_a_count_unless_yes(sb):
    gid = max(sb.gateways(), key=lambda g: len(sb.children(g)))
    kids = sb.children(gid)[:15]
    host, port = sb.mqtt_address
    args = ["delete-children", "--host", host, "--port", str(port), "--gateway", gid, "--json", "--no-progress", *kids]
    secret = {"ROMAKIT_DEVICE_SECRET": sb.fleet.secret_of(gid)}

    # no terminal to ask on (a scheduler): refused, nothing sent
    p = subprocess.run([sys.executable, "-m", "romakit", *args], capture_output=True, text=True, env=env(sb, **secret),
                       cwd=ROOT, timeout=60, start_new_session=True, stdin=subprocess.DEVNULL)
    assert p.returncode == 2 and "no terminal to ask on; nothing sent" in p.stderr and "--yes" in p.stderr
    assert set(kids) <= set(sb.children(gid))

    term = Terminal(args, env(sb, **secret))  # a person who types the wrong count
    term.expect("Type 15 to go ahead")
    term.type("14")
    assert term.wait() == 2 and "not confirmed; nothing sent" in term.out
    assert set(kids) <= set(sb.children(gid))

    term = Terminal(args, env(sb, **secret))  # and one who types it right
    term.expect("permanently delete 15 child devices")
    term.type("15")
    assert term.wait() == 0, term.out
    assert not set(kids) & set(sb.children(gid))

    more = sb.children(gid)[:12]
    p = subprocess.run([sys.executable, "-m", "romakit", *args[:-15], *more, "--yes"], capture_output=True, text=True,
                       env=env(sb, **secret), cwd=ROOT, timeout=60, start_new_session=True)
    assert p.returncode == 0, p.stderr


def test_resume_keeps_the_operations_rollout(sb):
    ids = [d["id"] for d in sb.fleet.all()][300:360]
    policy = rk.Rollout(abort_threshold=0.3, abort_min=77, max_per_minute=60_000)
    token = rk.CancelToken()
    with sb.link_client(chunk_size=10, concurrency=1, progress=False) as link:
        first = link.force_offline(ids, rollout=policy, cancel=token,
                                   progress=lambda d, t: token.cancel("paused") if d >= 20 else None)
    assert first.counts["skipped"] > 0
    rec, todo = pending_ids(first.op_id)
    assert recorded_rollout(rec) == policy  # kept in the journal (schema 2's rollout column)
    p = subprocess.run([sys.executable, "-m", "romakit", "resume", first.op_id, "--dry-run", "--json"],
                       capture_output=True, text=True, env=env(sb), cwd=ROOT, timeout=60)
    out = json.loads(p.stdout)
    assert "abort when 30% failed or unknown after 77 devices" in out["rollout"] and out["devices"] == len(todo)
    p = subprocess.run([sys.executable, "-m", "romakit", "offline", "--dry-run", "--json", "--no-rollout", "1", "2"],
                       capture_output=True, text=True, env=env(sb), cwd=ROOT, timeout=60)
    assert json.loads(p.stdout)["rollout"] is None and json.loads(p.stdout)["worst_case"] == 2
    p = subprocess.run([sys.executable, "-m", "romakit", "delete-children", "--dry-run", "--json", "c-1"],
                       capture_output=True, text=True, env=env(sb), cwd=ROOT, timeout=60)
    assert "canary of 50" in json.loads(p.stdout)["rollout"]  # a deletion's default, from the registry
