"""devices() checks what it read against the ``total`` every page reported, reads the
list again when the fleet changed under it, and says so when it still disagrees."""

from __future__ import annotations

import logging

import romakit as rk


def test_a_fleet_changing_during_the_read_is_read_again(caplog):
    with rk.sandbox(devices=3500, seed=37, mqtt=False) as sb, sb.link_client(progress=False, concurrency=1) as link:
        sb.set_fault(list_churn=3)  # each of the next 3 pages past the first deletes a device first
        with caplog.at_level(logging.INFO, logger="romakit.link"):
            fleet = link.devices()
        assert "reading again" in caplog.text
        assert sorted(fleet.id) == sorted(d["id"] for d in sb.fleet.snapshot())  # nothing missed
        assert len(fleet) == 3497 and "romakit_total_mismatch" not in fleet.attrs

        sb.set_fault(list_churn=10_000)  # never settles: the last read, and a warning
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="romakit.link"):
            fleet = link.devices()
        assert "the fleet changed while it was read" in caplog.text
        mismatch = fleet.attrs["romakit_total_mismatch"]
        assert mismatch["read"] == len(fleet) and mismatch["totals"] != [len(fleet)]
