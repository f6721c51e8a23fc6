"""Exact ids: every valid LINK id (up to 99,999,999,999,999,999, past 2**53) is read
exactly, whatever it comes in; a value that may stand for another id is refused before
anything is sent, by every entry point (Python, the CLI, the picker's paste box)."""

from __future__ import annotations

import io
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest

from romakit.errors import InputError
from romakit.ids import LINK_ID_MAX, link_ids

BIG = 12_345_678_901_234_567  # past 2**53: float64 holds it as ...568


def test_every_valid_id_past_2_53_is_exact_in_every_exact_form():
    forms = [BIG, np.int64(BIG), np.uint64(BIG), str(BIG), f" {BIG}\n", Decimal(BIG),
             pd.array([BIG], dtype="Int64")[0]]
    assert [link_ids([v]) for v in forms] == [[BIG]] * len(forms)
    assert link_ids([LINK_ID_MAX, str(LINK_ID_MAX)]) == [LINK_ID_MAX]
    assert link_ids(pd.Series([BIG, None, 7], dtype="Int64").dropna()) == [BIG, 7]


def test_a_float64_column_past_2_53_is_refused_naming_the_value():
    col = pd.read_csv(io.StringIO(f"id,name\n{BIG},a\n,b\n7,c\n"))["id"]  # one blank cell: float64
    assert col.dtype == "float64"
    with pytest.raises(InputError) as e:
        link_ids(col.dropna())
    msg = str(e.value)
    assert msg.startswith("1 of 2 device ids refused, nothing was sent") and "2**53" in msg
    assert repr(float(BIG)) in msg


@pytest.mark.parametrize("bad, why", [
    (12345678901234567.0, "2**53"),
    (np.float64(2**53), "2**53"),
    (f"{BIG}.0", "2**53"),
    (31.9, "not a whole number"),
    (2.5, "not a whole number"),
    (Decimal("5.5"), "not a whole number"),
    ("7.2", "not plain digits"),
    ("1e3", "not plain digits"),
    (True, "boolean"),
    (np.bool_(True), "boolean"),
    (pd.NA, "missing"),
    (LINK_ID_MAX + 1, f"<= {LINK_ID_MAX}"),
    (str(LINK_ID_MAX + 1), f"<= {LINK_ID_MAX}"),
])
def test_inexact_values_are_refused_with_the_reason(bad, why):
    with pytest.raises(InputError, match="nothing was sent") as e:
        link_ids([3, bad])
    assert why in str(e.value)


def test_whole_floats_below_2_53_are_taken():
    assert link_ids([2.0**53 - 1, np.float32(8), "9007199254740991.0"]) == [2**53 - 1, 8]


def test_force_offline_refuses_an_inexact_float_before_sending(sb, link, claim):
    (dev,) = claim.online(1)
    with pytest.raises(InputError, match="2\\*\\*53"):
        link.force_offline([dev, float(BIG)])
    with pytest.raises(InputError, match="not a whole number"):
        link.delete_devices([float(dev) + 0.5])
    assert sb.fleet.get(dev)["online_status"] == 1  # still online: nothing of the batch was sent


def test_the_command_refuses_an_inexact_id_before_connecting(tmp_path):
    from support.cli import romakit

    ids = tmp_path / "ids.csv"
    ids.write_text(f"7,{BIG}.0\n")  # a float column's rendering of an id past 2**53
    done = romakit("offline", "--file", str(ids), "--dry-run")
    assert done.returncode == 2
    assert f"{BIG}.0" in done.stderr and "2**53" in done.stderr and "nothing was sent" in done.stderr
