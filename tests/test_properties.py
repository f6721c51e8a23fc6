"""Property-based tests (hypothesis) for the bad-input boundaries that are not the signer.

- ``link_ids``: any mix of valid id values comes back as exact ints, de-duplicated in
  first-seen order; any invalid value makes it refuse the whole list with InputError,
  naming the value by its repr; no input makes it raise anything else.
- ``iotda_ids``: the same for IoTDA device ids (letters, digits, ``_``, ``-``; 1..128).
- the IoTDA password: lower-case hex HMAC-SHA256 keyed with the timestamp over the
  secret, checked against an independent ``hmac.new`` and the reference check value.
- the envelope parser ``parse_down``: never raises on arbitrary JSON, arbitrary or
  truncated bytes, or a documented message with any field given any wrong type; what it
  returns is always readable.

The signer has its own properties against huaweicloudsdkcore in ``test_link_auth.py``.

Example counts come from a settings profile: ``romakit-ci`` (the default: 300 examples a
property, derandomized, no example database, so CI is reproducible) or ``romakit-deep``
(5,000, random); choose with ``ROMAKIT_HYPOTHESIS_PROFILE``. Run with
``--hypothesis-show-statistics`` to see how many cases each property ran.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from fractions import Fraction
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from romakit.errors import InputError
from romakit.ids import IOTDA_ID_RE, LINK_ID_MAX, LINK_ID_MIN, iotda_ids, link_ids
from romakit.iotda import auth
from romakit.iotda import envelope as env

settings.register_profile(
    "romakit-ci", max_examples=300, derandomize=True, database=None, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "romakit-deep", max_examples=5_000, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
#: applied to each property here (not loaded globally, so other modules keep their own settings)
PROFILE = settings.get_profile(os.environ.get("ROMAKIT_HYPOTHESIS_PROFILE", "romakit-ci"))


# -- link_ids -------------------------------------------------------------------------------
def exact_of(v: Any) -> int:
    """The oracle: the id a valid id value stands for, exactly."""
    if isinstance(v, str):
        return int(Decimal(v.strip()))
    return int(v)


_in_range = st.integers(LINK_ID_MIN, LINK_ID_MAX)
_below_2_53 = st.integers(LINK_ID_MIN, 2**53 - 1)
valid_link_ids = st.one_of(
    _in_range,
    _below_2_53.map(float),  # a whole float below 2**53 is exact
    _in_range.map(np.int64),
    _below_2_53.map(np.float64),
    _in_range.map(Decimal),
    _in_range.map(lambda n: Decimal(n).quantize(Decimal("0.001"))),  # 5.000: a whole Decimal
    _in_range.map(Fraction),
    st.tuples(_in_range, st.sampled_from(["", " ", "\t", "\n", "+"])).map(lambda t: f"{t[1]}{t[0]}{t[1].strip('+')}"),
    st.tuples(_below_2_53, st.sampled_from([".0", ".", ".000"])).map(lambda t: f"{t[0]}{t[1]}"),
)

invalid_link_ids = st.one_of(
    st.booleans(),
    st.just(np.bool_(True)),
    st.none(),
    st.sampled_from([math.nan, math.inf, -math.inf, "nan", "inf", "-Infinity", "", " ", "1e", "--1", "1..2",
                     Decimal("NaN"), Decimal("sNaN"), Decimal("Infinity"), "12345678901234567.0", "5e2", "1.5"]),
    st.integers(max_value=0),
    st.integers(min_value=LINK_ID_MAX + 1),
    st.floats(max_value=1.0, exclude_max=True, allow_nan=False),
    st.floats(min_value=float(2**53)),  # past 2**53 a float may stand for another id
    st.floats(min_value=1.0, max_value=1e15).filter(lambda f: not f.is_integer()),
    st.decimals(max_value=Decimal("0.999"), allow_nan=False, allow_infinity=False),
    st.decimals(min_value=1, max_value=10**6, places=3).filter(lambda d: d != d.to_integral_value()),
    st.fractions(max_value=Fraction(999, 1000)),
    st.fractions(min_value=1, max_value=10**6, max_denominator=1_000).filter(lambda f: f.denominator != 1),
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz#/, ", min_size=1, max_size=12),
    st.sampled_from([b"12", [1], (1,), {"id": 1}, {1}, 1j, object()]),
)


@PROFILE
@given(st.lists(valid_link_ids, min_size=1, max_size=30))
@example([Fraction(7, 1)])
@example([2**53 - 1.0, "9007199254740991.0", 99_999_999_999_999_999, "99999999999999999"])
def test_valid_link_ids_are_exact_and_deduplicated_in_order(values: list) -> None:
    expected = list(dict.fromkeys(exact_of(v) for v in values))
    assert link_ids(values) == expected
    assert all(type(n) is int and LINK_ID_MIN <= n <= LINK_ID_MAX for n in expected)
    assert link_ids(list(reversed(values))) == list(dict.fromkeys(exact_of(v) for v in reversed(values)))


@pytest.mark.parametrize("value", [Decimal("-7186197293123934994579.125"), "-1e30", -10**30])
def test_a_huge_negative_id_is_refused_as_too_small(value: Any) -> None:
    with pytest.raises(InputError, match="must be >= 1"):
        link_ids([3, value])


@PROFILE
@given(st.lists(valid_link_ids, max_size=20), st.lists(invalid_link_ids, min_size=1, max_size=15), st.randoms())
@example([3], [Decimal("sNaN")], None)
@example([3], [Fraction(1, 2)], None)
@example([3], [Decimal("-7186197293123934994579.12579362915185163161250718")], None)
@example([3], ["-1e30"], None)
def test_any_invalid_link_id_refuses_the_whole_list_naming_it(good: list, bad: list, rnd: Any) -> None:
    values = good + bad
    if rnd is not None:
        rnd.shuffle(values)
    with pytest.raises(InputError) as e:
        link_ids(values)
    msg = str(e.value)
    refused = [v for v in values if any(v is b for b in bad)]
    assert msg.startswith(f"{len(refused)} of {len(values)} device ids refused, nothing was sent: ")
    for v in refused[:10]:  # the first ten are named (a long one by its first 50 characters), the rest counted
        assert repr(v)[:50] in msg, (v, msg)
    if len(refused) > 10:
        assert msg.endswith(f"and {len(refused) - 10} more")


@PROFILE
@given(st.one_of(
    st.integers(min_value=10**4000, max_value=10**4200),  # long (past 4,300 digits: the explicit example)
    st.integers(1, 5).map(lambda k: f"1e{10**k}"),  # big exponents (a huge one has its own test below)
    st.decimals(allow_nan=True),
    st.fractions(),
    st.complex_numbers(),
    st.binary(max_size=8),
    st.text(max_size=8),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
))
@example(Decimal("sNaN"))
@example(10**5000)
def test_link_ids_raises_nothing_but_input_error(value: Any) -> None:
    try:
        out = link_ids([value])
    except InputError:
        return
    assert len(out) == 1 and LINK_ID_MIN <= out[0] <= LINK_ID_MAX


def test_link_ids_refuses_a_huge_exponent_promptly() -> None:
    """"1e999999999" is not an id; computing its billion-digit integer first would hang."""
    code = ("from romakit.ids import link_ids\n"
            "from romakit.errors import InputError\n"
            "try:\n    link_ids(['1e999999999'])\nexcept InputError:\n    print('refused')\n")
    try:
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=20)
    except subprocess.TimeoutExpired:
        pytest.fail("link_ids(['1e999999999']) did not return within 20 s")
    assert done.stdout.strip() == "refused", done.stderr[-500:]


# -- iotda_ids ------------------------------------------------------------------------------
_ID_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"
valid_iotda_ids = st.text(alphabet=_ID_ALPHABET, min_size=1, max_size=128)
invalid_iotda_ids = st.one_of(
    st.just(""),
    st.text(alphabet=_ID_ALPHABET, min_size=129, max_size=300),
    st.tuples(st.text(alphabet=_ID_ALPHABET, max_size=20), st.characters(exclude_characters=_ID_ALPHABET),
              st.text(alphabet=_ID_ALPHABET, max_size=20)).map("".join),
    st.text(alphabet=_ID_ALPHABET, min_size=1, max_size=20).map(lambda s: s + "\n"),
    st.integers(), st.none(), st.binary(min_size=1, max_size=8), st.floats(allow_nan=False),
    st.lists(st.text(alphabet=_ID_ALPHABET, min_size=1, max_size=4), max_size=2),
)


@PROFILE
@given(st.lists(valid_iotda_ids, min_size=1, max_size=30))
def test_valid_iotda_ids_are_kept_and_deduplicated_in_order(values: list[str]) -> None:
    assert iotda_ids(values) == list(dict.fromkeys(values))


@PROFILE
@given(st.lists(valid_iotda_ids, max_size=10), st.lists(invalid_iotda_ids, min_size=1, max_size=12), st.randoms())
@example(["gw-0001_c0001"], ["gw-0001_c0002\n"], None)
def test_any_invalid_iotda_id_refuses_the_whole_list_naming_it(good: list, bad: list, rnd: Any) -> None:
    values = good + bad
    if rnd is not None:
        rnd.shuffle(values)
    with pytest.raises(InputError) as e:
        iotda_ids(values)
    msg = str(e.value)
    refused = [v for v in values if any(v is b for b in bad)]
    assert msg.startswith(f"{len(refused)} of {len(values)} child device ids refused, nothing was sent: ")
    for v in refused[:10]:
        shown = v[:20] + "..." if isinstance(v, str) and len(v) > 128 else v  # long ids are cut
        assert repr(shown) in msg, (v, msg)


def test_iotda_id_pattern_matches_whole_strings_only() -> None:
    assert IOTDA_ID_RE.match("gw-0001_c0001")
    with pytest.raises(InputError):
        iotda_ids(["gw-0001\n"])


# -- IoTDA password -------------------------------------------------------------------------
_no_surrogates = st.characters(exclude_categories=["Cs"])
timestamps = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31),
                          timezones=st.just(UTC)).map(lambda d: d.strftime("%Y%m%d%H"))


def independent_password(secret: str, timestamp: str) -> str:
    return hmac.new(timestamp.encode(), secret.encode(), hashlib.sha256).hexdigest()


def test_password_reference_check_value() -> None:
    expected = "c75150e6cb841417396819e4d2ee4358a416344a03a083e3a8567074ddec820a"
    assert independent_password("12345678", "2025041401") == expected
    assert auth.password("12345678", "2025041401") == expected
    assert auth.password(auth.Secret("12345678"), "2025041401") == expected


@PROFILE
@given(st.text(_no_surrogates, min_size=1, max_size=80), st.one_of(timestamps, st.text(_no_surrogates, max_size=16)))
def test_password_is_hmac_sha256_keyed_with_the_timestamp(secret: str, timestamp: str) -> None:
    expected = independent_password(secret, timestamp)
    assert auth.password(secret, timestamp) == expected
    assert auth.password(auth.Secret(secret), timestamp) == expected
    assert len(expected) == 64 and expected == expected.lower()


@PROFILE
@given(st.text(alphabet=_ID_ALPHABET, min_size=1, max_size=64), st.text(_no_surrogates, min_size=1, max_size=40),
       st.datetimes(min_value=datetime(2000, 1, 2), max_value=datetime(2099, 12, 30)),
       st.integers(-14 * 60, 14 * 60), st.sampled_from([0, 1]))
def test_login_uses_the_utc_hour_of_any_aware_time(device_id: str, secret: str, naive: datetime, offset_min: int,
                                                   sig: int) -> None:
    when = naive.replace(tzinfo=timezone(timedelta(minutes=offset_min)))
    ts = when.astimezone(UTC).strftime("%Y%m%d%H")
    login = auth.login(device_id, auth.Secret(secret), sig=sig, when=when)
    assert login.client_id == f"{device_id}_0_{sig}_{ts}" and login.username == device_id
    assert login.password == independent_password(secret, ts)
    assert login.password not in repr(login) and repr(auth.Secret(secret)) == "Secret('***')"
    with pytest.raises(InputError):
        auth.login(device_id, secret, when=naive)


# -- envelope parser ------------------------------------------------------------------------
json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(min_value=-(10**40), max_value=10**40),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=10),
    st.sampled_from(["", "²", "٣", "9" * 5_000, "$sub_device_manager", *sorted(env.RESPONSES), *sorted(env.NOTIFIES),
                     "20151212T121212Z", "2015-12-12 12:12:12"]),
)
#: strings that look numeric to str.isdigit() but are not plain decimal numerals, and other odd text
odd_strings = st.one_of(
    st.text(st.sampled_from("0123456789²³¹⁰①❺⑴⒈٣۴߅०൫"), min_size=1, max_size=4),  # isdigit(), not all decimal
    st.text(st.characters(categories=["Nd", "No"]), min_size=1, max_size=3),
    st.sampled_from(["9" * 5_000, " 7", "7 ", "+7", "-7", "0x7", "7.0", "1e3", "\x00", "\ufeff7"]),
)
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=12), inner, max_size=5), max_leaves=25)


def documented_messages() -> list[dict]:
    """One message of each downstream kind, as the IoTDA reference shows them."""
    def msg(event_type: str, paras: dict) -> dict:
        return {"object_device_id": "gw-0001", "services": [
            {"service_id": env.SERVICE_ID, "event_type": event_type, "event_time": "20151212T121212Z",
             "event_id": "5d3c1fcc-aa1b-4bda-8a0e-d8a5fba2f5c9", "paras": paras}]}
    return [
        msg(env.DELETE_RESPONSE, {"successful_devices": ["gw-0001_c0001"],
                                  "failed_devices": [{"device_id": "gw-0001_c0002", "error_code": "IOTDA.014000",
                                                      "error_msg": "not a child"}]}),
        msg(env.ADD_RESPONSE, {"successful_devices": [{"device_id": "gw-0001_c0003", "node_id": "N3", "name": "n"}],
                               "failed_devices": [{"node_id": "N4", "product_id": "p", "error_code": "E",
                                                   "error_msg": "m"}]}),
        msg(env.STATUS_RESPONSE, {"successful_devices": [{"device_id": "gw-0001_c0001", "status": "ONLINE"}],
                                  "failed_devices": []}),
        msg(env.DELETE_NOTIFY, {"version": 7, "devices": [{"device_id": "gw-0001_c0005", "node_id": "N5"}]}),
        msg(env.ADD_NOTIFY, {"version": "8", "devices": [{"device_id": "gw-0001_c0006", "node_id": "N6"}]}),
    ]


def paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    """Every place in a JSON value (keys and list indexes), the root included."""
    out = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            out += paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += paths(v, (*prefix, i))
    return out


def replaced(value: Any, path: tuple, new: Any) -> Any:
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        return {**value, head: replaced(value[head], rest, new)}
    return [replaced(v, rest, new) if i == head else v for i, v in enumerate(value)]


def read_all(msg: env.DownMessage) -> None:
    """Everything a caller reads off a parsed message, which must not raise either."""
    assert isinstance(msg, env.DownMessage)
    assert msg.problem is None or isinstance(msg.problem, str)
    for ev in msg.events:
        assert isinstance(ev, env.DownEvent)
        ids = ev.device_ids
        assert all(isinstance(i, str) for i in ids)
        _ = (ev.is_sub_device_event, ev.is_response, ev.is_notify, ev.event_time_utc)
        assert ev.version is None or type(ev.version) is int
        assert all(isinstance(f, env.Failure) and f.key is not None for f in ev.failed)
        assert all(isinstance(d, dict) for d in (*ev.successful, *ev.devices))


def test_documented_messages_parse_without_problems() -> None:
    for body in documented_messages():
        msg = env.parse_down(json.dumps(body).encode())
        read_all(msg)
        assert msg.problem is None and [ev.problem for ev in msg.events] == [None]
        assert msg.events[0].device_ids


@PROFILE
@given(json_values)
def test_parse_down_never_raises_on_arbitrary_json(value: Any) -> None:
    text = json.dumps(value)  # NaN/Infinity are written as JSON readers like Python's take them
    read_all(env.parse_down(text.encode()))
    read_all(env.parse_down(text))


@pytest.mark.slow
@PROFILE
@given(st.sampled_from(documented_messages()), st.data())
def test_parse_down_never_raises_when_any_field_has_a_wrong_type(body: dict, data: Any) -> None:
    """Each field of the message in turn (the root included) replaced by an arbitrary value."""
    for where in paths(body):
        value = data.draw(st.one_of(odd_strings, json_values), label=f"value at {where}")
        read_all(env.parse_down(json.dumps(replaced(body, where, value)).encode()))


@pytest.mark.parametrize("version", ["²", "٣", "9" * 5_000, "7", 7, -1, 7.5, None, [], True])
def test_notify_versions_that_are_not_plain_integers(version: Any) -> None:
    body = replaced(documented_messages()[4], ("services", 0, "paras", "version"), version)
    msg = env.parse_down(json.dumps(body).encode())
    read_all(msg)
    expected = {"7": 7, 7: 7, -1: -1}.get(version) if isinstance(version, str | int) else None
    assert msg.events[0].version in ((expected, 3) if version == "٣" else (expected,))  # Arabic-Indic 3: either


@PROFILE
@given(st.sampled_from(documented_messages()), st.data())
def test_parse_down_never_raises_on_truncated_or_corrupted_bytes(body: dict, data: Any) -> None:
    raw = json.dumps(body, ensure_ascii=False).encode()
    cut = data.draw(st.integers(0, len(raw)), label="cut")
    read_all(env.parse_down(raw[:cut]))
    pos = data.draw(st.integers(0, max(0, len(raw) - 1)), label="pos")
    junk = data.draw(st.binary(min_size=1, max_size=4), label="junk")
    read_all(env.parse_down(raw[:pos] + junk + raw[pos + len(junk):]))


@PROFILE
@given(st.one_of(st.binary(max_size=300), st.text(max_size=100),
                 st.integers(1, 3_000).map(lambda n: "[" * n + "]" * n),
                 st.integers(1, 3_000).map(lambda n: '{"services":' + "[" * n + "]" * n + "}")))
def test_parse_down_never_raises_on_arbitrary_bytes_and_text(raw: bytes | str) -> None:
    read_all(env.parse_down(raw))
    if isinstance(raw, bytes):
        read_all(env.parse_down(bytearray(raw)))
