"""The columnar fleet: the same devices per seed, JSON pages equal to encoding the dicts,
and its indexes kept right by changes, for generated and created devices alike."""

from __future__ import annotations

import hashlib
import json
import re

import msgspec
import pytest

from romakit.sim.fleet import Fleet


def _fingerprint(f: Fleet) -> str:
    h = hashlib.sha256(json.dumps(f.all()).encode())
    gws = f.gateways()
    h.update(json.dumps([[c["client_id"] for c in f.children_of(g["id"])] for g in gws]).encode())
    h.update(json.dumps([f.products(), f.apps(), [f.secret_of(d["client_id"]) for d in gws[:3]]]).encode())
    return h.hexdigest()


@pytest.mark.parametrize(("devices", "seed"), [(0, 7), (1, 7), (2, 3), (2000, 7), (2000, -3)])
def test_a_seed_makes_one_fleet(devices: int, seed: int) -> None:
    assert _fingerprint(Fleet(devices, seed=seed)) == _fingerprint(Fleet(devices, seed=seed))
    assert devices < 2 or _fingerprint(Fleet(devices, seed=seed + 1)) != _fingerprint(Fleet(devices, seed=seed))


def test_numbers_grow_past_their_width() -> None:
    """Names, client_ids and node_ids stay distinct and well formed when the numbers in
    them outgrow their zero padding (past 99,999 devices, 9,999 gateways)."""
    f = Fleet(420_000, seed=11)
    view = f.snapshot()
    names, cids, nodes = view.strings("device_name"), view.strings("client_id"), view.strings("node_id")
    assert len(set(names)) == len(set(cids)) == len(set(nodes)) == 420_000
    assert names[-1].endswith("-420000") and any(n.endswith("-00001") for n in names[:1])
    gw = [c for c in cids if re.fullmatch(r"gw-\d+", c)]
    assert len(gw) == 10_500 and "gw-10500" in gw and "gw-0001" in gw
    assert all(re.fullmatch(r"(gw-\d{4,}(_c\d{4,})?|dev-\d{6})", c) for c in cids)
    assert all(re.fullmatch(r"86\d{13}|A4(:[0-9A-F]{2}){5}", n) for n in nodes)


@pytest.fixture()
def changed() -> Fleet:
    """A fleet after every kind of change: created devices, deletions, status changes."""
    f = Fleet(3000, seed=5)
    gw = f.gateways()[1]
    product = next(p["product_id"] for p in f.products() if p["product_type"] == 0)
    f.create(device_name="made-child", product_id=product, node_id="MADE-1", parent_device_id=gw["id"], tags=["x"])
    f.create(device_name="made-direct", product_id=product, node_id="MADE-2", description="é ünïcode \"quoted\"")
    kids = [k["client_id"] for k in f.children_of(gw["id"])]
    f.set_child_status(gw["client_id"], [{"device_id": kids[0], "status": "ONLINE"}])
    never = next(d for d in f.all() if d["online_status"] == 0)
    f.force_offline([d["id"] for d in f.snapshot()[:40]] + [never["id"]])
    f.delete([f.snapshot()[7]["id"], f.gateways()[0]["id"]])
    return f


def test_json_pages_are_the_encoded_dicts(changed: Fleet) -> None:
    view = changed.snapshot()
    encode = msgspec.json.Encoder().encode
    for start in (0, 500, len(view) - 300):
        assert view.json(start, start + 999) == encode(view[start:start + 999])
    newest = view.reversed()
    assert newest.json(0, 50) == encode(newest[0:50]) and newest[0]["device_name"] == "made-direct"


def test_every_device_is_found_by_its_ids(changed: Fleet) -> None:
    for d in changed.all():
        assert changed.get(d["id"]) == d
        assert changed.by_client_id(d["client_id"]) == d
        assert changed.by_node_id(d["node_id"]) == d
    for cid in ("gw-0001_c", "gw-1", "gw-00001", "dev-1", "dev-0000001", "gw-0002_c00001", "gw-０００２", "gw-9999"):
        assert changed.by_client_id(cid) is None, cid
    node = next(d["node_id"] for d in changed.all() if d["node_id"].startswith("A4:"))
    for other in (node.lower(), node.replace(":", " "), node[:-2] + node[-2:].lower(), "860000000000000"):
        assert other == node or changed.by_node_id(other) is None, other


def test_deleted_ids_are_free_again() -> None:
    f = Fleet(500, seed=2)
    dev = next(d for d in f.all() if d["node_type"] == 0)
    product = dev["product"]["product_id"]
    assert f.delete([dev["id"], dev["id"]]) == [dev["id"]]  # a repeated id is removed once
    assert f.by_client_id(dev["client_id"]) is None and f.by_node_id(dev["node_id"]) is None
    with pytest.raises(KeyError):
        f.secret_of(dev["client_id"])
    again = f.create(device_name="reborn", product_id=product, node_id=dev["node_id"], client_id=dev["client_id"])
    assert f.by_client_id(dev["client_id"]) == f.by_node_id(dev["node_id"]) == f.get(again["id"])
    with pytest.raises(ValueError, match="node_id"):
        f.create(device_name="twin", product_id=product, node_id=dev["node_id"])
    assert len(f) == 500 and len(f.snapshot()) == 500


def test_filters_read_columns_of_created_devices_too(changed: Fleet) -> None:
    view = changed.snapshot()
    made = [d for d in view if d["device_name"].startswith("made-")]
    assert [d["device_name"] for d in made] == ["made-child", "made-direct"]
    assert list(view.where(view.has_tag("x")).column("id")) == [made[0]["id"]]
    assert view.strings("device_name") == [d["device_name"] for d in view]  # generated and created rows alike
    by_name = view.where([("made" in n) for n in view.strings("device_name")])
    assert [d["id"] for d in by_name] == [d["id"] for d in made]
    assert view.column("parent_id").tolist() == [d["parent_device_id"] or -1 for d in view]
