"""The ``romakit`` command where its users meet it: a pseudo-terminal (the progress bar,
Ctrl-C), shell pipes (``romakit devices ... --ids | romakit offline -``), every exit
status, ``--dry-run`` against the listing, and ``romakit sim --env`` sourced by a shell.

The sandbox is served from this process over real sockets; every command is a real
subprocess. Nothing waits on a clock: the tests read the terminal until what they
expect is there (or a generous deadline passes)."""

from __future__ import annotations

import json
import os
import re
import select
import signal
import subprocess
import sys
import time

import pytest
from support.cli import ROOT, Terminal, cli_env, link_env, romakit

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

BAR = re.compile(rb"force_offline:\s+\d+%\|")


SANDBOX = {"devices": 1500, "seed": 23}  # the module's sandbox (conftest's sb fixture)


def env_for(sb, **extra: str) -> dict[str, str]:
    return {**link_env(sb), **extra}


def online_ids(sb, n: int, start: int = 0) -> list[str]:
    f = sb.link_client(progress=False).devices(online_status="online")
    return f["id"].astype(str).tolist()[start:start + n]


@pytest.mark.parametrize("columns", [120, 0])
def test_progress_bar_on_a_terminal_and_none_when_piped(sb, columns):
    ids = online_ids(sb, 40, start=0 if columns else 40)
    sb.set_fault(latency_ms=100)
    try:
        term = Terminal(["offline", *ids, "--chunk-size", "10", "--concurrency", "1"], env_for(sb), columns=columns)
        term.expect(BAR)  # drawn before the first answer: the run is not silent
        term.expect(rb"next: romakit journal")
        assert term.wait() == 0
        assert re.search(rb"40/40", term.out) and b"success" in term.out
        piped = romakit("offline", *ids, "--chunk-size", "20", env=env_for(sb))
    finally:
        sb.clear_faults()
    assert piped.returncode == 0 and not BAR.search(piped.stderr.encode()) and "%|" not in piped.stderr
    assert re.search(r"success\s+40\b", piped.stdout) and "<BatchResult" not in piped.stdout


def test_ctrl_c_stops_the_run_and_names_the_resume(sb):
    ids = online_ids(sb, 80, start=100)
    sb.set_fault(latency_ms=150)
    try:
        term = Terminal(["offline", *ids, "--chunk-size", "10", "--concurrency", "1"], env_for(sb), columns=100)
        term.expect(rb"force_offline:\s+\d+%\|[^\r]*\s(1[0-9]|[2-7][0-9])/80")  # some chunks answered, not all
        term.ctrl_c()
        m = term.expect(rb"interrupted; romakit journal (\w+) shows what was sent; romakit resume \w+ finishes it")
        assert term.wait() == 130
    finally:
        sb.clear_faults()
    op = m.group(1).decode()
    listing = {o["op_id"]: o for o in json.loads(romakit("journal", "--json", env=env_for(sb)).stdout)}
    assert listing[op]["state"] == "interrupted" and 0 < listing[op]["success"] < 80
    done = romakit("resume", op, "--json", env=env_for(sb))
    assert done.returncode == 0, (done.stderr, [r for r in json.loads(done.stdout)["rows"] if r["outcome"] != "success"],
                                  romakit("journal", op, "--json", env=env_for(sb)).stdout[-4000:])
    assert json.loads(done.stdout)["counts"]["success"] == 80


def test_every_exit_status(sb, tmp_path):
    ok, more = online_ids(sb, 3, start=200), online_ids(sb, 2, start=210)
    assert romakit("offline", *ok, env=env_for(sb)).returncode == 0
    sb.set_fault(fail_ids=[int(more[0])])
    try:
        assert romakit("offline", *more, env=env_for(sb)).returncode == 1
    finally:
        sb.clear_faults()
    bad = romakit("offline", "12", "x!", env=env_for(sb))
    assert bad.returncode == 2 and "'x!'" in bad.stderr
    wrong_sk = romakit("offline", *ok, "--no-progress", env=env_for(sb, ROMAKIT_SK="0" * 40))
    assert wrong_sk.returncode == 3 and "nothing was done: the pre-flight read was refused" in wrong_sk.stderr
    assert "APIG.0301" in wrong_sk.stderr and "0" * 40 not in wrong_sk.stderr
    with_socket_closed = env_for(sb, ROMAKIT_ENDPOINT="http://127.0.0.1:9")  # discard port: nobody listens
    unreachable = romakit("offline", *ok, "--timeout", "2", env=with_socket_closed)
    assert unreachable.returncode == 3 and "romakit.ConnectError" in unreachable.stderr
    dry = romakit("offline", "--dry-run", ok[0], "99999999", env=env_for(sb))
    assert dry.returncode == 1 and "1 id(s) do not exist: 99999999" in dry.stdout
    assert romakit("offline", "--dry-run", *ok, env=env_for(sb)).returncode == 0
    insecure = romakit("devices", env=env_for(sb, ROMAKIT_ENDPOINT="http://192.0.2.1"))
    assert insecure.returncode == 2 and "--allow-insecure" in insecure.stderr and "allow_insecure=" not in insecure.stderr


def test_devices_piped_into_offline(sb):
    env = cli_env(**env_for(sb))  # this checkout and the test's home: never the user's journal
    product = "SmartMeter EM300"
    lister = subprocess.Popen([sys.executable, "-m", "romakit", "devices", "--online-status", "online",
                               "--product-name", product, "--node-type", "direct", "--ids"],
                              stdout=subprocess.PIPE, env=env, cwd=ROOT)
    acting = subprocess.run([sys.executable, "-m", "romakit", "offline", "-", "--json"], stdin=lister.stdout,
                            capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    lister.stdout.close()
    assert lister.wait(60) == 0 and acting.returncode == 0, acting.stderr
    out = json.loads(acting.stdout)
    fleet = sb.link_client(progress=False).devices()
    took = fleet[fleet["product_name"] == product]
    assert out["counts"]["success"] == out["requested"] > 0
    assert (took["online_status"] != "online").sum() >= out["requested"]
    table = romakit("devices", "--product-name", product, "--columns", "id,online_status", env=env)
    assert table.returncode == 0 and re.match(r"\s*id\s+online_status\n", table.stdout)
    as_json = json.loads(romakit("devices", "--node-type", "gateway", "--json", env=env).stdout)
    assert as_json and {d["node_type"] for d in as_json} == {"gateway"}
    csv = romakit("devices", "--node-type", "gateway", "--csv", env=env).stdout.splitlines()
    assert csv[0].startswith("id,") and len(csv) == len(as_json) + 1


def test_sim_env_lines_work_in_a_shell(tmp_path):
    env = cli_env()
    sim = subprocess.Popen([sys.executable, "-m", "romakit", "sim", "--env", "--devices", "300", "--seed", "3"],
                           stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    try:
        lines: list[str] = []
        while not lines or not lines[-1].startswith("export ROMAKIT_DEVICE_SECRET"):
            line = sim.stdout.readline()
            assert line, f"romakit sim --env ended early: {lines}"
            lines.append(line.rstrip("\n"))
        assert all(ln.startswith(("export ROMAKIT_", "#")) for ln in lines), lines
        script = tmp_path / "sim.env"
        script.write_text("\n".join(lines) + "\n")
        shell = subprocess.run(["bash", "-c", f". {script} && {sys.executable} -m romakit devices --node-type gateway --client-ids"],
                               capture_output=True, text=True, env=env, cwd=ROOT, timeout=60)
        assert shell.returncode == 0, shell.stderr
        assert "gw-0001" in shell.stdout.split()
    finally:
        sim.send_signal(signal.SIGTERM)
        assert sim.wait(30) == 0


def test_sim_env_lines_of_a_tls_sandbox_carry_its_ca(tmp_path):
    """``romakit sim --env --link-tls``: the lines name the throwaway CA, so the CLI trusts it."""
    import romakit as rk
    from romakit.cli.commands import _env_lines

    with rk.sandbox(devices=30, seed=4, mqtt=False, link_tls=True) as sb:
        script = tmp_path / "sim.env"
        script.write_text(_env_lines(sb.describe()) + "\n")
        assert f"export ROMAKIT_REST_CA_FILE={sb.link_ca_file}" in script.read_text()
        shell = subprocess.run(["bash", "-c", f". {script} && {sys.executable} -m romakit check --json"],
                               capture_output=True, text=True, env=cli_env(), cwd=ROOT, timeout=60)
    assert shell.returncode == 0, shell.stderr
    assert json.loads(shell.stdout)["devices"] == 30


def test_help_reads_as_plain_text():
    for sub in ("", "offline", "delete-children", "devices", "report", "journal", "resume", "sim"):
        p = subprocess.run([sys.executable, "-m", "romakit", *([sub] if sub else []), "--help"], capture_output=True,
                           text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=ROOT, timeout=60)
        assert p.returncode == 0 and "`" not in p.stdout, (sub, p.stdout)


@pytest.mark.parametrize("columns", [80, 220])
def test_the_journal_table_fits_the_terminal(sb, columns):
    assert romakit("offline", *online_ids(sb, 2, start=300 + columns), env=env_for(sb)).returncode == 0
    term = Terminal(["journal"], env_for(sb), columns=columns)
    assert term.wait() == 0, term.text
    lines = term.text.replace("\r", "").splitlines()
    assert lines[0].split()[:2] == ["op_id", "operation"]
    table = [ln for ln in lines if not ln.startswith("(not shown")]
    assert max(map(len, table)) <= columns, term.text
    if columns == 80:
        assert "(not shown, for the terminal's width: parent_op_id, who" in term.text
    else:
        assert "not shown" not in term.text and "parent_op_id" in lines[0]
    piped = romakit("journal", env=env_for(sb))  # a script reads every column
    assert "parent_op_id" in piped.stdout.splitlines()[0] and "not shown" not in piped.stdout


def test_sim_started_in_the_background_writes_nothing_more_to_the_terminal(tmp_path):
    """``romakit sim &``: once it has printed how to reach it, the sandbox's own log (here a
    malformed request the platform complains of) goes to a file, never over the shell."""
    import romakit as rk

    log = tmp_path / "sim.log"
    term = Terminal(["sim", "--devices", "200", "--seed", "3", "--log", str(log)], env={})
    try:
        line = term.expect(re.compile(rb"\{.*\}\r?\n")).group(0)
        described = json.loads(line)
        assert described["log"] == str(log) and described["journal"].endswith("sandbox/journal.sqlite3")
        mqtt, gw = described["mqtt"], described["mqtt"]["gateways"][0]
        with rk.Gateway(mqtt["host"], mqtt["port"], gw["device_id"], gw["secret"], tls=False) as g:
            assert g.aio.session.publish(g.up_topic, b"not json at all") is None
            deadline = time.monotonic() + 30  # the platform's complaint reaches the log file
            while "not JSON" not in (log.read_text() if log.exists() else ""):
                assert time.monotonic() < deadline, f"the sim logged nothing; the terminal had:\n{term.text}"
                select.select([], [], [], 0.05)
    finally:
        term.ctrl_c()
        status = term.wait(30)
    assert status == 0
    after = term.text.split(line.decode(), 1)[1].replace("^C", "")  # the terminal's echo of Ctrl-C
    assert after.strip() == "", f"the sim wrote to the terminal after its JSON line: {after!r}"
    assert "malformed request from" in log.read_text()
