"""Id validation: every bad-input class refused before anything is sent, offending values named."""

import math
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest

from romakit.errors import InputError
from romakit.ids import LINK_ID_MAX, check_path_param, iotda_ids, link_ids


def test_link_ids_accepts_exact_id_values():
    assert link_ids([1, 2.0, "3", " 4 ", Decimal("5"), np.int64(6), np.float64(7), "8.0", "+9"]) == [1, 2, 3, 4, 5, 6, 7, 8, 9]


def test_link_ids_collapses_duplicates_keeping_first_order():
    assert link_ids([5, 3, 5, 3.0, "5"]) == [5, 3]


def test_link_ids_takes_series_arrays_ranges_and_a_scalar():
    assert link_ids(pd.Series([3, 1])) == [3, 1]
    assert link_ids(np.array([2, 4])) == [2, 4]
    assert link_ids(range(1, 4)) == [1, 2, 3]
    assert link_ids(9) == [9]


@pytest.mark.parametrize(
    "bad, why",
    [
        (True, "boolean"),
        (np.bool_(False), "boolean"),
        (math.nan, "not a number"),
        (math.inf, "not a number"),
        ("nan", "not a number"),
        (0, ">= 1"),
        (-4, ">= 1"),
        (0.5, "not a whole number"),
        (LINK_ID_MAX + 1, f"<= {LINK_ID_MAX}"),
        ("abc", "not numeric"),
        ("", "not numeric"),
        (None, "missing"),
        ([1], "not an id"),
    ],
)
def test_link_ids_refuses_each_bad_class_naming_it(bad, why):
    with pytest.raises(InputError) as e:
        link_ids([7, bad])
    assert why in str(e.value)
    assert "nothing was sent" in str(e.value)


def test_link_ids_lists_many_offenders_compactly():
    with pytest.raises(InputError) as e:
        link_ids([-i for i in range(1, 30)])
    msg = str(e.value)
    assert msg.startswith("29 of 29") and "and 19 more" in msg


def test_empty_and_none_refused():
    for v in ([], None, ()):
        with pytest.raises(InputError):
            link_ids(v)
    with pytest.raises(InputError):
        iotda_ids([])


def test_iotda_ids():
    assert iotda_ids(["gw-0001_c0001", "a", "gw-0001_c0001"]) == ["gw-0001_c0001", "a"]
    for bad in ["", "x" * 129, "has space", "slash/no", "ü", 12, None]:
        with pytest.raises(InputError):
            iotda_ids(["ok", bad])


def test_path_params_checked():
    assert check_path_param("project_id", "a" * 32, 32)
    with pytest.raises(InputError, match="at most 32"):
        check_path_param("project_id", "a" * 33, 32)
    with pytest.raises(InputError):
        check_path_param("instance_id", "", 36)
    with pytest.raises(InputError):
        check_path_param("instance_id", "../x", 36)
