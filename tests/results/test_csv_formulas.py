"""CSV exports a spreadsheet cannot run: a text cell that would be a formula (``=``,
``+``, ``-``, ``@``, tab, CR first) is written with a leading ``'``; ``read_csv`` of
romakit's own export gives every value and dtype back. Numbers and times are never
touched."""

from __future__ import annotations

import csv
import time

import pandas as pd

from romakit.results import BatchResult, ResultBuilder
from romakit.textsafe import FORMULA_START, csv_cell, csv_value

HOSTILE = ["=HYPERLINK(\"http://x\",\"click\")", "+cmd|' /C calc'!A0", "@SUM(A1:A9)", "-2+3",
           "\tTAB", "\rCR", "'quoted", "''twice", "plain", None]


def hostile_result() -> BatchResult:
    b = ResultBuilder("delete_sub_devices", "=gw-target", "=op1")
    now = time.time()
    n = len(HOSTILE)
    b.add([f"-child{i}" if i % 2 else f"child{i}" for i in range(n)], outcome=["failed"] * (n - 1) + ["success"],
          chunk=0, attempts=1, names=HOSTILE, error_code=[*HOSTILE[:-1], None], error_msg=HOSTILE,
          request_id="@req", event_id="+ev", sent_at=now, answered_at=now + 0.5)
    return b.build()


def test_no_text_cell_of_the_export_is_a_formula(tmp_path):
    res = hostile_result()
    path = tmp_path / "res.csv"
    res.to_csv(path)
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == len(HOSTILE)
    for row in rows:
        for col, cell in row.items():
            if col in ("chunk", "attempts", "latency_ms", "http_status", "sent_at", "answered_at"):
                continue
            assert not cell or cell[0] not in FORMULA_START, (col, cell)
    assert rows[0]["device_name"] == "'" + HOSTILE[0] and rows[6]["device_name"] == "''quoted"
    assert rows[1]["device_id"] == "'-child1" and rows[0]["target"] == "'=gw-target"
    assert float(rows[0]["latency_ms"]) == 500.0  # numbers as numbers


def test_read_csv_gives_the_values_and_dtypes_back(tmp_path):
    res = hostile_result()
    res.to_csv(tmp_path / "res.csv")
    back = BatchResult.read_csv(tmp_path / "res.csv")
    pd.testing.assert_frame_equal(back.frame, res.frame)
    assert back.op_id == "=op1" and back.target == "=gw-target"


def test_the_cell_rule_is_reversible():
    for v in [*filter(None, HOSTILE), "", "x'", "a=b", 5, None]:
        assert csv_value(csv_cell(v)) == v


def test_the_results_view_csv_button_writes_the_same_safe_export(tmp_path):
    from romakit.widgets import ResultsView

    view = ResultsView(hostile_result())
    view.path.value = str(tmp_path / "from-button")
    view.csv_button.click()
    out = tmp_path / "from-button.csv"
    assert view.last_export == out
    text = out.read_text(encoding="utf-8")
    assert "'=HYPERLINK" in text and "\n=HYPERLINK" not in text and ",=HYPERLINK" not in text
    pd.testing.assert_frame_equal(BatchResult.read_csv(out).frame, view.result.frame)
