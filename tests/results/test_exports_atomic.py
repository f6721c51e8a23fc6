"""Exports are written whole or not at all: a write that fails (here: a real file-size
limit, RLIMIT_FSIZE, in a child process) leaves the previous file exactly as it was and
no temporary file behind; a directory or a device node is refused as a target; an empty
op id names no operation."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import romakit as rk
from romakit.errors import InputError
from romakit.results import BatchResult, ResultBuilder

ROOT = Path(__file__).resolve().parents[2]

CHILD = r"""
import json, resource, signal, sys, secrets
from romakit.results import ResultBuilder

def result(n):
    b = ResultBuilder("force_offline", "inst-1", "op1")
    b.add(list(range(1, n + 1)), outcome="failed", chunk=0, attempts=1,
          names=[secrets.token_hex(24) for _ in range(n)], error_code="X.1",
          error_msg=[secrets.token_hex(24) for _ in range(n)], request_id="r1")
    return b.build()

folder = sys.argv[1]
small, big = result(3), result(4000)
small.to_csv(f"{folder}/r.csv"); small.to_parquet(f"{folder}/r.parquet"); small.report(f"{folder}/r.html")
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # past the limit a write fails with EFBIG
resource.setrlimit(resource.RLIMIT_FSIZE, (40_000, 40_000))
failed = {}
for name, write in [("r.csv", big.to_csv), ("r.parquet", big.to_parquet), ("r.html", big.report)]:
    try:
        write(f"{folder}/{name}")
        failed[name] = None
    except Exception as e:
        failed[name] = type(e).__name__
print(json.dumps(failed))
"""


def test_a_failed_export_leaves_the_previous_file(tmp_path):
    done = subprocess.run([sys.executable, "-c", CHILD, str(tmp_path)], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)
    assert done.returncode == 0, done.stderr
    failed = json.loads(done.stdout.strip().splitlines()[-1])
    assert all(failed.values()), failed  # each big write did fail
    assert len(BatchResult.read_csv(tmp_path / "r.csv")) == 3
    assert len(BatchResult.read_parquet(tmp_path / "r.parquet")) == 3
    assert "romakit evidence" in (tmp_path / "r.html").read_text(encoding="utf-8")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.csv", "r.csv.meta.json", "r.html", "r.parquet"]


def small_result() -> BatchResult:
    b = ResultBuilder("force_offline", "inst-1", "op1")
    b.add([1, 2], outcome="success", chunk=0, attempts=1)
    return b.build()


@pytest.mark.parametrize("write", ["to_csv", "to_parquet", "report"])
def test_a_directory_or_a_device_node_is_refused(tmp_path, write):
    res = small_result()
    folder = tmp_path / "exports"
    folder.mkdir()
    with pytest.raises(InputError, match="is a directory"):
        getattr(res, write)(folder)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exports"]  # nothing written beside it
    with pytest.raises(InputError, match="not a regular file"):
        getattr(res, write)("/dev/null")
    link = tmp_path / "to-null"
    link.symlink_to("/dev/null")
    with pytest.raises(InputError, match="not a regular file"):
        getattr(res, write)(link)


def test_an_export_replaces_the_file_and_keeps_its_mode(tmp_path):
    res = small_result()
    path = tmp_path / "r.parquet"
    path.write_bytes(b"old")
    path.chmod(0o640)
    res.to_parquet(path)
    assert len(BatchResult.read_parquet(path)) == 2 and (path.stat().st_mode & 0o777) == 0o640


def test_an_empty_op_id_is_refused(link, claim):
    link.force_offline(claim.online(2))
    assert len(rk.journal()) == 1  # the journal's only operation: an empty prefix would pick it
    for empty in ("", "  "):
        with pytest.raises(InputError, match="give an operation id"):
            rk.journal(empty)
        with pytest.raises(InputError, match="give an operation id"):
            rk.resume(empty, link)
