"""A force-offline answer counts a device only by its exact id: an item whose id is a
boolean, a fraction or a float (``{"id": true}``, ``{"id": 31.9}``) makes the answer
malformed, and its devices end ``unknown`` (never ``success``). Served by a hostile
HTTP server on loopback."""

from __future__ import annotations

import pytest
from support.hostile import HostileLink

from romakit import outcomes as oc


def offline_answering(items: list) -> object:
    def answer(method: str, path: str, body: object) -> tuple[int, object]:
        if path.endswith("/devices/force-offline"):
            return 200, {"success": items, "failed": []}
        return 200, {"total": 0, "items": []}  # the pre-flight read
    return answer


@pytest.mark.parametrize("item, shown", [
    ({"id": True}, "True"),
    ({"id": 31.9}, "31.9"),
    ({"id": 31.0}, "31.0"),
    ({"device_id": 1e0}, "1.0"),
    ({"id": "31.5"}, "'31.5'"),
])
def test_an_inexact_answer_id_never_counts_a_device(item, shown):
    with HostileLink(offline_answering([item, {"id": 32}])) as h, h.client() as link:
        res = link.force_offline([1, 31, 32])
    assert any(p.endswith("/devices/force-offline") for _, p, _ in h.requests)  # it was sent and answered
    assert res.counts[oc.SUCCESS] == 0
    f = res.frame.set_index("device_id")
    assert set(f["outcome"]) == {oc.UNKNOWN}
    assert f.loc["1", "error_code"] == oc.MALFORMED and f.loc["31", "error_code"] == oc.MALFORMED
    assert "no usable id" in f.loc["31", "error_msg"] and shown in f.loc["31", "error_msg"]


def test_exact_answer_ids_count_as_before():
    with HostileLink(offline_answering([{"id": 31}, {"id": "32", "device_name": "m"}])) as h, h.client() as link:
        res = link.force_offline([31, 32, 33])
    out = dict(zip(res.frame["device_id"], res.frame["outcome"], strict=True))
    assert out == {"31": oc.SUCCESS, "32": oc.SUCCESS, "33": oc.UNKNOWN}  # 33: not in the answer
