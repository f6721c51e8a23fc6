"""A watch while the fleet changes under every listing (a reconnect storm; here the
sandbox's ``list_churn``: another operator deletes a device while each later page is
read, so no read of the whole fleet is ever consistent): the watch counts those cycles
and says so once, in its status line and its summary, instead of a warning each cycle,
and calls no device gone that a read merely missed."""

from __future__ import annotations

import logging
import re

import pytest
from support.cli import Terminal, link_args, link_env

import romakit as rk

pytestmark = pytest.mark.timeout(120)
SANDBOX = {"devices": 2500, "seed": 31}  # three pages: a later page is read while the fleet changes
WAIT = 30.0


def test_a_watch_counts_reads_the_fleet_changed_under_and_calls_only_the_deleted_gone(sb, link, caplog):
    before = set(link.devices()["id"].astype(int))
    caplog.set_level(logging.INFO, logger="romakit.link")
    w = rk.watch(link, every=0.05, name="t-storm", full_every=1)
    try:
        assert w.wait(1, WAIT)  # its first read, of the fleet holding still, is what it knows
        sb.set_fault(list_churn=10**6)
        assert w.wait(5, WAIT)
        assert w.unsettled >= 3, w
        storm = w.events()
        deleted = {i for i in before if sb.fleet.get(i) is None}
        assert deleted  # the churn did delete devices
        # nothing a changing read missed is called gone while no read holds still
        assert set(storm.loc[storm["kind"] == "gone", "device_id"].astype(int)) <= deleted
        sb.clear_faults()
        done = w.cycles
        assert w.wait(done + 2, WAIT)
    finally:
        w.stop()
    gone = set(w.events().loc[lambda e: e["kind"] == "gone", "device_id"].astype(int))
    now = set(link.devices()["id"].astype(int))
    assert gone == before - now  # once a read holds still, exactly the deleted ones
    said = [r for r in caplog.records if "changed while it was read, every time" in r.getMessage()]
    assert said and all(r.levelno == logging.INFO for r in said)  # counted by the watch, not warned
    assert "read while the fleet changed" in repr(w)


def test_romakit_watch_in_a_storm_says_it_in_the_status_line_not_a_warning_a_cycle(sb):
    sb.set_fault(list_churn=10**6)
    try:
        term = Terminal(["watch", "--every", "0.1", "--full-every", "1", "--name", "t-storm-cli", *link_args(sb)],
                        link_env(sb))
        term.expect(re.compile(rb"cycle 4: [^\n]*\[fleet changed while read: \d+ of 4 cycles\]"), timeout=60)
        term.ctrl_c()
        m = term.expect(re.compile(rb"stopped after (\d+) cycles, \d+ events recorded; the fleet changed while "
                                   rb"it was read in (\d+) of (\d+) cycles"), timeout=60)
        assert term.wait(60) == 0
    finally:
        sb.clear_faults()
    assert int(m.group(2)) >= 3 and m.group(1) == m.group(3)
    assert "every time" not in term.text and "WARNING" not in term.text  # no line of its own per cycle
