"""Undo where the platform allows, over real loopback against the sandbox: every deletion
keeps a snapshot of its devices in the journal, read just before each chunk is sent
(never a secret), and ``rk.restore`` re-creates them from it as a batch operation of its
own: children through their own gateways (the same device id, node id, product and
name), LINK devices over LINK (new ids and secrets: the preview says so before the
deletion). A restore reads first (run twice, it creates nothing the second time), is
journaled in the deletion's chain, and resumes after a stop creating each device once."""

from __future__ import annotations

import json

import pandas as pd
import pytest

import romakit as rk
from romakit.engine.guard import restorable
from romakit.engine.options import BatchOptions
from romakit.engine.plan import plan
from romakit.outcomes import SNAPSHOT_UNREADABLE
from romakit.redact import is_secret
from romakit.restoring import restoration
from romakit.results.analysis import NOT_IN_FLEET
from romakit.store.journal import Journal

SANDBOX = {"devices": 800, "seed": 19}  # three gateways carry 99, 91 and 62 children


def _kids(sb, gateways: list[str]) -> dict[str, dict]:
    """The inventory's view of the gateways' children: device id -> (node id, product, name, gateway)."""
    iot = sb.iotda_client()
    try:
        return {d: {"node_id": n, "product_id": p, "device_name": m, "gateway_id": g}
                for g in gateways
                for d, n, p, m in iot.devices(gateway_id=g)[["device_id", "node_id", "product_id", "device_name"]]
                .itertuples(index=False)}
    finally:
        iot.close()


def _journal_text() -> str:
    """Every row of every table of the journal in effect, as text (to look for secrets)."""
    with Journal().connect() as db:
        return "\n".join(json.dumps(dict(r), default=str) for t in db.tables() for r in db.rows(f"SELECT * FROM {t}"))


def _snapshot_rows(op_id: str) -> list[dict]:
    with Journal().connect() as db:
        return [dict(r) for r in db.rows("SELECT * FROM snapshots WHERE op_id = ? ORDER BY seq", (op_id,))]


def _no_secret(record: dict) -> None:
    for k, v in record.items():
        assert not is_secret(k), k
        if isinstance(v, dict):
            _no_secret(v)


def test_200_children_across_three_gateways_deleted_and_restored_whole(sb, tmp_path):
    gws = sorted(sb.gateways(), key=lambda g: -len(sb.children(g)))[:3]
    kids = sb.children(gws[0])[:70] + sb.children(gws[1])[:70] + sb.children(gws[2])[:60]
    assert len(kids) == 200
    before = _kids(sb, gws)
    secrets = {g: sb.fleet.secret_of(g) for g in gws}
    with sb.link_client(progress=False) as link:
        fleet = link.devices()
    group = rk.GatewayGroup({g: sb.gateway(g) for g in gws}, fleet)
    # the preview says what can be undone, before anything is sent
    planned = plan("delete_sub_devices", kids, BatchOptions(), parents={k: before[k]["gateway_id"] for k in kids})
    assert restorable(planned).startswith("200 child devices fully restorable")

    res = group.delete_sub_devices(kids, progress=False)
    assert res.counts["success"] == 200 and res.target == "3 gateways"
    assert not set(kids) & set(_kids(sb, gws))
    assert sorted(res.snapshot) == sorted(kids)
    rows = _snapshot_rows(res.op_id)
    assert sorted(r["device_id"] for r in rows) == sorted(kids)  # one record each, in the journal
    for r in rows:
        rec = json.loads(r["record"])
        _no_secret(rec)
        want = before[r["device_id"]]
        assert r["target"] == want["gateway_id"] == rec["gateway_id"]
        assert (rec["node_id"], rec["product_id"], rec["name"]) == (want["node_id"], want["product_id"],
                                                                     want["device_name"])
    text = _journal_text()
    assert not [g for g, s in secrets.items() if s in text]
    # the deleted children are named by their recorded product, not "(not in fleet)"
    with sb.link_client(progress=False) as link:
        after_delete = link.devices()
    for table in (res.by("product_name", after_delete), rk.journal(res.op_id).by("product_name")):
        assert NOT_IN_FLEET not in table.index and table["devices"].sum() == 200
        assert set(table.index) == set(fleet.set_index("client_id").loc[kids, "product_name"].astype(str))

    restored = rk.restore(res.op_id, group, progress=False)
    assert restored.counts["success"] == 200 and restored.operation == "restore_sub_devices"
    assert restored.parent_op_id == res.op_id and restored.target == "3 gateways"
    assert set(restored.frame["settled_by"].astype(str)) == {"answer"}
    again = _kids(sb, gws)
    assert {k: again[k] for k in kids} == {k: before[k] for k in kids}  # listed with node ids, products, names
    iot = sb.iotda_client()
    listing = pd.concat([iot.devices(gateway_id=g) for g in gws], ignore_index=True)
    iot.close()
    checked = restored.verify(listing)
    assert checked["verified"].all() and set(checked["observed"].astype(str)) == {"restored"}
    # the restore is a step of the deletion's chain, and its report lists what was deleted
    chain = rk.journal(res.op_id)
    assert chain.steps[["op_id", "relation"]].values.tolist()[-1] == [restored.op_id, "restore"]
    assert chain.counts["success"] == 200  # the deletion's net state is the deletion's
    html = rk.journal(res.op_id).report(tmp_path / "deletion.html").read_text(encoding="utf-8")
    some = before[kids[0]]
    assert "What was deleted (snapshot)" in html and some["node_id"] in html and restored.op_id in html


def test_a_link_deletion_states_the_secret_caveat_first_and_is_restored_without_it(sb, link):
    from romakit.widgets import ActionPanel, DevicePicker

    fleet = link.devices()
    gw = fleet[(fleet["node_type"].astype(str) == "gateway") & (fleet["client_id"] == sb.gateways()[-1])].iloc[0]
    kids = fleet[fleet["parent_device_id"] == gw["id"]]["id"].astype(int).tolist()[:3]
    plain = fleet[fleet["node_type"].astype(str) == "direct"]["id"].astype(int).tolist()[-4:]
    ids = [*kids, int(gw["id"]), *plain]  # a gateway and its children deleted together
    secrets = [sb.fleet.secret_of(c) for c in fleet.set_index("id").loc[ids, "client_id"]]
    # the preview (the panel's, from the guard's words) says it before anything is sent
    picker = DevicePicker(fleet, "id")
    picker.select(ids)
    panel = ActionPanel(link, picker)
    panel.operation.value = "delete_devices"
    staged = panel.make_preview()
    assert staged is not None, panel.message
    caveat = "8 LINK devices restorable without their secret"
    assert caveat in panel.preview.value and "secret reset" in panel.preview.value
    assert caveat in restorable(staged.batch)

    res = link.delete_devices(ids, rollout=False)
    assert res.ok and sorted(res.snapshot) == sorted(map(str, ids))
    text = _journal_text()
    assert not [s for s in secrets if s in text] and '"password"' not in text
    for rec in res.snapshot.values():
        _no_secret(rec)
    restored = rk.restore(res.op_id, link)
    assert restored.ok and restored.parent_op_id == res.op_id and restored.ids() == ids[3:4] + ids[:3] + ids[4:]
    now = link.devices().set_index("node_id")
    was = fleet.set_index("id").loc[ids]
    for i, old in was.iterrows():
        new = now.loc[old["node_id"]]
        assert new["id"] != i and new["client_id"] != old["client_id"]  # LINK gives it a new id and secret
        for col in ("device_name", "product_id", "description", "parent_device_name", "app_id"):
            assert (pd.isna(new[col]) and pd.isna(old[col])) or new[col] == old[col], col
        assert list(new["tags"]) == list(old["tags"]) and str(new["online_status"]) == "never_connected"
        assert pd.isna(new["last_login_datetime"])
    assert now.loc[was.loc[kids[0], "node_id"], "parent_device_id"] == now.loc[gw["node_id"], "id"]
    assert restored.verify(link)["verified"].all()
    assert restorable(plan("restore_devices", ids)).endswith("each field device needs its secret reset")


@pytest.mark.parametrize("kind", ["link", "children"])
def test_a_restore_run_twice_creates_nothing_the_second_time(sb, link, claim, kind):
    if kind == "link":
        ids = claim.online(5)
        res, client = link.delete_devices(ids, rollout=False), link
    else:
        gw_id = claim.gateway(children=8)
        client = sb.gateway(gw_id)
        client.connect()
        res = client.delete_sub_devices(sb.children(gw_id)[:8], rollout=False, progress=False)
    try:
        assert rk.restore(res.op_id, client).ok
        sb.link.clear_log()
        handled = len(sb.platform.handled)
        again = rk.restore(res.op_id, client)
        assert again.ok and set(again.frame["settled_by"].astype(str)) == {"read"}  # read, not created
        assert not [r for r in sb.link.requests if r[1] == "POST" and r[2].endswith("/devices")]
        assert not [h for h in sb.platform.handled[handled:] if h[2] == "add_sub_device_request"]
        assert [s["relation"] for s in rk.journal(res.op_id).steps.to_dict("records")] == ["first", "restore", "restore"]
    finally:
        if kind != "link":
            client.close()


@pytest.mark.parametrize("kind", ["link", "children"])
def test_a_restore_stopped_mid_run_and_resumed_creates_each_device_once(sb, link, claim, kind):
    if kind == "link":
        ids = claim.online(12)
        res, client, size = link.delete_devices(ids, rollout=False), link, 1
    else:
        gw_id = claim.gateway(children=30)
        client = sb.gateway(gw_id, max_in_flight=1)
        client.connect()
        ids = sb.children(gw_id)[:30]
        res, size = client.delete_sub_devices(ids, rollout=False, progress=False), 5
    try:
        sb.link.clear_log()
        handled = len(sb.platform.handled)
        token = rk.CancelToken()

        def stop_after_a_third(done: int, total: int) -> None:
            if done >= total // 3:
                token.cancel("stopped by the test")

        first = rk.restore(res.op_id, client, chunk_size=size, concurrency=1, cancel=token, progress=stop_after_a_third)
        assert first.stopped and 0 < first.counts["success"] < len(ids) and first.counts["skipped"]
        done = rk.resume(first.op_id, client)
        assert done.ok and len(done) == len(ids)
        creates = [r for r in sb.link.requests if r[1] == "POST" and r[2].endswith("/devices")]
        adds = sum(h[4] for h in sb.platform.handled[handled:] if h[2] == "add_sub_device_request")
        assert (len(creates) if kind == "link" else adds) == len(ids)  # each device sent once, in all
        if kind == "link":
            nodes = link.devices()["node_id"].astype(str).tolist()
            assert all(nodes.count(r["node_id"]) == 1 for r in res.snapshot.values())
        else:
            assert set(ids) <= set(sb.children(gw_id))
        steps = rk.journal(res.op_id).steps
        assert steps["relation"].tolist() == ["first", "restore", "resume"]
    finally:
        if kind != "link":
            client.close()


def test_a_chunk_whose_records_cannot_be_read_is_not_deleted(sb, claim):
    class Blind:
        """An inventory that lists and answers statuses but cannot show a device."""

        def __init__(self, real):
            self.real = real

        def status(self, device_id):
            return self.real.status(device_id)

        def devices(self, **filters):
            return self.real.devices(**filters)

        def device(self, device_id):
            raise rk.TransportError("the inventory is down (test)", sent=False)

    gw_id = claim.gateway(children=4)
    kids = sb.children(gw_id)[:4]
    with sb.gateway(gw_id, inventory=Blind(sb.iotda_client())) as gw:
        res = gw.delete_sub_devices(kids, rollout=False, progress=False)
    assert res.counts["failed"] == 4 and set(res.frame["error_code"].astype(str)) == {SNAPSHOT_UNREADABLE}
    assert set(kids) <= set(sb.children(gw_id))  # nothing deleted unseen
    assert sorted(res.retry_ids()) == sorted(kids)  # a retry reads again


def test_a_gateway_without_inventory_snapshots_from_its_sync(sb, claim):
    gw_id = claim.gateway(children=6)
    kids = sb.children(gw_id)[:6]
    names = {k: sb.fleet.by_client_id(k)["device_name"] for k in kids}
    with sb.gateway(gw_id, inventory=None) as gw:
        res = gw.delete_sub_devices(kids, rollout=False, progress=False, chunk_size=3)
        assert res.ok and {k: r["name"] for k, r in res.snapshot.items()} == names
        back = rk.restore(res.op_id, gw, ids=kids[:4])
    assert back.ok and set(kids[:4]) <= set(sb.children(gw_id)) and not set(kids[4:]) & set(sb.children(gw_id))


def test_snapshots_and_restores_in_a_postgresql_journal(sb, claim, pg_schema, monkeypatch):
    monkeypatch.setenv("ROMAKIT_JOURNAL", pg_schema.url)
    gw_id = claim.gateway(children=5)
    kids = sb.children(gw_id)[:5]
    with sb.gateway(gw_id) as gw:
        res = gw.delete_sub_devices(kids, rollout=False, progress=False)
        assert len(_snapshot_rows(res.op_id)) == 5
        back = rk.restore(res.op_id, gw)
    assert back.ok and set(kids) <= set(sb.children(gw_id))
    assert rk.journal(res.op_id).steps["relation"].tolist() == ["first", "restore"]


def test_restore_refuses_what_it_cannot_do_before_sending(sb, link, claim):
    ids = claim.online(3)
    res = link.delete_devices(ids, rollout=False)
    with pytest.raises(rk.InputError, match="unknown option or record field"):
        rk.restore(res.op_id, link, colour="red")
    gw_id = claim.gateway(children=2)
    with sb.gateway(gw_id) as gw:
        with pytest.raises(rk.InputError, match="runs over LINK REST"):
            rk.restore(res.op_id, gw)
        kids = gw.delete_sub_devices(sb.children(gw_id)[:2], rollout=False, progress=False)
    with pytest.raises(rk.InputError, match="runs over gateway MQTT"):
        rk.restore(kids.op_id, link)
    with pytest.raises(rk.InputError, match="only deletions are restored"):
        rk.restore(link.force_offline(claim.online(1)).op_id, link)
    one = rk.restore(res.op_id, link, ids=[ids[0]], product_id=-1)
    assert len(one) == 0  # no record matches that product: nothing sent
    assert rk.restore(res.op_id, link, ids=[ids[0]]).ids() == [ids[0]]


def test_a_schema_5_journal_gains_the_snapshots_table_in_place(sb, link, claim):
    from romakit.store.schema import SCHEMA_VERSION
    from romakit.store.target import connect

    link.force_offline(claim.online(1))  # the journal exists
    with connect() as db:
        with db.transaction(lock="romakit.schema"):
            db.script("DROP TABLE snapshots;\n")
            db.execute("UPDATE schema_version SET version = 5 WHERE version = ?", (SCHEMA_VERSION,))
            db.execute("PRAGMA user_version = 5")
        assert "snapshots" not in db.tables()
    ids = claim.online(2)
    res = link.delete_devices(ids, rollout=False)  # opening it migrates it
    with connect() as db:
        assert db.stored_version() == SCHEMA_VERSION == 6 and "snapshots" in db.tables()
    assert len(_snapshot_rows(res.op_id)) == 2
    with pytest.raises(Exception, match="append-only"):
        with connect() as db:
            db.execute("DELETE FROM snapshots")


def test_a_deletion_without_a_snapshot_says_so_and_leaves_nothing_to_restore(sb, link, claim, tmp_path):
    ids = claim.online(3)
    planned = plan("delete_devices", ids)
    assert "cannot restore" in restorable(planned, snapshot=False)
    requests = len(sb.link.requests)
    res = link.delete_devices(ids, rollout=False, keep_snapshot=False)
    assert res.ok and res.snapshot is None and not _snapshot_rows(res.op_id)
    # without a snapshot nothing is read first: the preflight and one delete
    assert [r[1] for r in list(sb.link.requests)[requests:]] == ["GET", "DELETE"]
    nothing = rk.restore(res.op_id, link)
    assert len(nothing) == 0 and nothing.parent_op_id == res.op_id
    assert set(restoration(res.op_id).left_out.values()) == {
        "no snapshot record (deleted without a journal, or by a romakit before snapshots)"}
    html = rk.journal(res.op_id).report(tmp_path / "r.html").read_text(encoding="utf-8")
    assert "No snapshot: this deletion ran without one" in html


def test_a_restore_read_back_from_the_journal_verifies_and_one_without_records_cannot_tell(sb, link, claim):
    ids = claim.online(2)
    restored = rk.restore(link.delete_devices(ids, rollout=False).op_id, link)
    back = rk.journal(restored.op_id)  # rebuilt: what it was sent comes from its deletion's snapshot
    assert sorted(back.inputs) == sorted(map(str, ids)) and back.verify(link)["verified"].all()
    back.inputs = None
    blind = back.verify(link)
    assert blind["holds"].isna().all() and set(blind["observed"].astype(str)) == {"(none)"}


def test_a_big_deletion_snapshots_from_one_listing_a_small_one_device_by_device(sb, link):
    from romakit.link.restore import LISTING_WORTH
    from romakit.reconcile import SHOW_AT_MOST

    fleet = link.devices()
    pages = -(-len(fleet) // 999)
    direct = fleet[fleet["node_type"].astype(str) == "direct"]["id"].astype(int).tolist()
    big, small = direct[-max(SHOW_AT_MOST + 1, LISTING_WORTH * pages + 1):], direct[:3]
    assert len(big) > SHOW_AT_MOST and len(big) > LISTING_WORTH * pages and not set(big) & set(small)
    for ids, per_device in ((small, True), (big, False)):
        sb.link.clear_log()
        res = link.delete_devices(ids, rollout=False)
        assert res.ok and sorted(res.snapshot) == sorted(map(str, ids))
        shows = [r for r in sb.link.requests if r[1] == "GET" and r[2].rsplit("/", 1)[1].isdigit()]
        pages_read = [r for r in sb.link.requests if r[1] == "GET" and r[2].endswith("/devices")]
        if per_device:
            assert len(shows) == len(ids)
        else:  # the preflight, the size probe and the listing's pages; no device read alone
            assert not shows and len(pages_read) == 2 + pages
        assert rk.restore(res.op_id, link).ok


def test_a_journal_copied_to_postgresql_carries_the_snapshots(sb, link, claim, pg_schema):
    from romakit.store.migrate import copy_journal
    from romakit.store.schema import path

    ids = claim.online(3)
    res = link.delete_devices(ids, rollout=False)
    copied = copy_journal(path(), pg_schema.url)
    assert copied["snapshots"] >= 3
    rest = restoration(res.op_id, journal=pg_schema.url)
    assert rest.ids == ids and rest.records == res.snapshot  # the team's journal can restore it
