"""What the service sends is shown to a person escaped, never obeyed: a device name or an
error code carrying terminal escapes (``ESC ] 0 ; title BEL``, ``ESC [ 2 J``) or a bidi
override reaches ``romakit devices``, ``offline``, ``journal OP`` and the error lines as
visible text. The sandbox serves the names and codes over loopback; every command is a
real subprocess."""

from __future__ import annotations

import json

import pytest
from support.cli import link_env, romakit

SANDBOX = {"devices": 300, "seed": 31}
TITLE, CLEAR, RLO = "\x1b]0;pwned\x07", "\x1b[2J", "\u202e"
RAW = ("\x1b", "\x07", "\u202e", "\x9b")


def assert_shown_escaped(text: str, *fragments: str) -> None:
    assert not any(c in text for c in RAW), repr(text[:500])
    for f in fragments:
        assert f in text, (f, text[:2000])


@pytest.fixture(scope="module")
def hostile_name(sb):
    pid = sb.fleet.products()[0]["product_id"]
    dev = sb.fleet.create(device_name=f"{TITLE}meter{CLEAR}{RLO}x\x9b", product_id=pid, node_id="hostile-node-01")
    return dev


def test_devices_table_shows_a_hostile_name_escaped(sb, hostile_name):
    done = romakit("devices", env=link_env(sb))
    assert done.returncode == 0, done.stderr
    assert_shown_escaped(done.stdout, "\\x1b]0;pwned\\x07meter\\x1b[2J\\u202ex\\x9b")


def test_offline_journal_and_error_lines_show_a_hostile_code_escaped(sb, claim):
    ids = [str(i) for i in claim.online(2)]
    code = f"{TITLE}APIG.0400{CLEAR}{RLO}"
    sb.set_fault(error_rate=1.0, error_status=400, error_code=code)
    try:
        ran = romakit("offline", *ids, env=link_env(sb))
    finally:
        sb.clear_faults()
    assert ran.returncode == 1, ran.stderr
    shown = "\\x1b]0;pwned\\x07APIG.0400\\x1b[2J\\u202e"
    assert_shown_escaped(ran.stdout, shown)
    assert_shown_escaped(ran.stderr)
    op = json.loads(romakit("journal", "--json", env=link_env(sb)).stdout)[-1]["op_id"]
    again = romakit("journal", op, env=link_env(sb))
    assert again.returncode == 0, again.stderr
    assert_shown_escaped(again.stdout, shown)

    sb.set_fault(error_rate=1.0, error_status=403, error_code=code)  # refused at the pre-flight read
    try:
        refused = romakit("offline", *ids, env=link_env(sb))
    finally:
        sb.clear_faults()
    assert refused.returncode == 3
    assert_shown_escaped(refused.stderr, "romakit: nothing was done", shown)


def test_devices_csv_neutralises_formula_names(sb):
    pid = sb.fleet.products()[0]["product_id"]
    sb.fleet.create(device_name="=HYPERLINK(\"http://x\",\"y\")", product_id=pid, node_id="formula-node-01")
    sb.fleet.create(device_name="@SUM(A1:A2)", product_id=pid, node_id="formula-node-02")
    done = romakit("devices", "--csv", env=link_env(sb))
    assert done.returncode == 0, done.stderr
    import csv
    import io

    rows = list(csv.DictReader(io.StringIO(done.stdout)))
    names = {r["device_name"] for r in rows}
    assert "'=HYPERLINK(\"http://x\",\"y\")" in names and "'@SUM(A1:A2)" in names
    assert all(not v or v[0] not in "=+-@\t\r" for r in rows for v in r.values())
