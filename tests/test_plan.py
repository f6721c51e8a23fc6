"""One plan: what the CLI's ``--dry-run --json`` says, what the panel's preview stages and
what the engine sends agree, for every operation of the registry under several chunk
sizes and rollout policies. The engine's side is read from the result's ``chunk``
column of a real run against the sandbox; under a rollout the engine may carry a
planned chunk in several requests while its window opens, never across two."""

from __future__ import annotations

import json

import pytest
from support.cli import link_env

import romakit as rk
from romakit import cli
from romakit.engine.options import BatchOptions
from romakit.engine.plan import BatchPlan, gateway_order, plan
from romakit.operations import OPERATIONS, RESTORES
from romakit.widgets import ActionPanel, DevicePicker
from romakit.widgets.fanout_tab import TITLE

SANDBOX = {"devices": 3000, "seed": 5}
#: devices per run (the issue's case: 100 ids in chunks of 40 are 4 chunks under a canary of 50)
N = 100
#: chunk sizes (None: the operation's default)
CHUNKS = (7, 40, None)
#: name -> (the CLI's flags, the same policy in Python)
POLICIES = {
    "none": (["--no-rollout"], False),
    "default": ([], None),
    "canary": (["--canary", "30"], rk.Rollout(canary=30)),
    "ramp": (["--canary", "0", "--ramp-start", "60000", "--ramp-every", "20"],
             rk.Rollout(ramp_start=60_000, ramp_every=20)),
}
#: the operations the command runs, and its subcommand for each
CLI = {"force_offline": "offline", "delete_sub_devices": "delete-children"}
#: every operation, in an order where each run's devices exist (children added before deleted,
#: deleted before restored)
ORDER = ("force_offline", "delete_devices", "add_sub_devices", "update_sub_device_status", "delete_sub_devices",
         "restore_sub_devices", "restore_devices")


@pytest.fixture(scope="module")
def clients(sb):
    link = sb.link_client(progress=False)
    gid = max(sb.gateways(), key=lambda g: len(sb.children(g)))
    with sb.gateway(gid) as gw:
        yield link, gw
    link.close()


@pytest.fixture(scope="module")
def pool(clients):
    """LINK ids of devices that are no gateway nor a child of ``clients``' gateway, in listing order."""
    link, gw = clients
    fleet = link.devices()
    mine = fleet.loc[fleet["client_id"] == gw.device_id, "id"].iloc[0]
    keep = (fleet["node_type"].astype(str) != "gateway") & (fleet["parent_device_id"].astype("Int64") != mine)
    ids = fleet.loc[keep.fillna(True), "id"].astype(int).tolist()
    assert len(ids) >= N * (len(CHUNKS) * len(POLICIES) + 1)
    return ids


@pytest.fixture
def bare_env(monkeypatch):
    from romakit import config

    for name in [*config.ENV_VARS, *config.ENV_ALIASES]:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def cli_plan(name: str, ids: list, size: int | None, flags: list[str], capsys) -> dict:
    """The command's ``--dry-run --json`` for ``name`` (no credentials: nothing is listed)."""
    argv = [CLI[name], "--dry-run", "--json", *flags, *(["--chunk-size", str(size)] if size else [])]
    assert cli.main([*argv, *map(str, ids)]) in (cli.EXIT_OK, cli.EXIT_NOT_ALL_OK)
    return json.loads(capsys.readouterr().out)


def panel_plan(client, frame, id_column: str, ids: list, name: str, size: int | None, policy) -> BatchPlan:
    """The panel's preview of ``ids`` (picked in ``frame``), driven from Python."""
    picker = DevicePicker(frame, id_column)
    picker.select(ids)
    panel = ActionPanel(client, picker)
    panel.operation.value = name
    if policy is not None:
        panel.rollout = policy or None  # False: the form unticked, no policy
    panel.chunk_size = size
    staged = panel.make_preview()
    assert staged is not None, panel.message
    assert panel.plan is staged and staged.ids == ids
    return staged.batch


def engine_chunks(result) -> dict[int, list[str]]:
    """The requests the engine sent: chunk number -> device ids, from the result."""
    f = result.frame
    out: dict[int, list[str]] = {}
    for no, dev in zip(f["chunk"].astype(int), f["device_id"].astype(str), strict=True):
        out.setdefault(no, []).append(dev)
    return out


def assert_sent_as_planned(planned: BatchPlan, result) -> None:
    """Each request lies in one planned chunk (a planned chunk keeps its number for its
    first request), and the requests of each planned chunk are exactly its devices."""
    assert len(result) == planned.devices and result.counts["success"] == planned.devices, result.summary()
    planned_of = {str(i): k for k, chunk in enumerate(planned.chunk_ids) for i in chunk}
    sent = engine_chunks(result)
    assert set(range(planned.chunks)) <= set(sent)
    covered: dict[int, set[str]] = {}
    for no, devs in sent.items():
        ks = {planned_of[d] for d in devs}
        assert len(ks) == 1, f"request {no} crosses planned chunks {ks}"
        (k,) = ks
        assert no >= planned.chunks or no == k
        covered.setdefault(k, set()).update(devs)
    assert covered == {k: {str(i) for i in chunk} for k, chunk in enumerate(planned.chunk_ids)}
    if not planned.policy:  # no rollout, no opening window: every request is a planned chunk
        assert sent == {k: [str(i) for i in chunk] for k, chunk in enumerate(planned.chunk_ids)}


def test_the_order_covers_the_registry():
    assert sorted(ORDER) == sorted(OPERATIONS)


@pytest.mark.parametrize("policy_name", list(POLICIES))
@pytest.mark.parametrize("size", CHUNKS)
def test_cli_panel_and_engine_agree(size, policy_name, clients, pool, sb, bare_env, capsys):
    link, gw = clients
    flags, policy = POLICIES[policy_name]
    case = CHUNKS.index(size) * len(POLICIES) + list(POLICIES).index(policy_name)
    opts = {"rollout": policy, **({"chunk_size": size} if size else {})}
    product = next(p["product_id"] for p in sb.fleet.products() if p["product_type"] == 0)
    kids: list[str] = []
    deleted: dict[str, object] = {}  # a deletion's result, by the operation that restores it
    for name in ORDER:
        op = OPERATIONS[name]
        if op.expected == "restored" and (size or op.default_chunk) > op.max_chunk:
            continue  # LINK creates one device per request: no other chunk size to compare
        if name == "force_offline":
            ids = pool[:N]
        elif name == "delete_devices":
            ids = pool[N * (case + 1):N * (case + 2)]
        elif name == "add_sub_devices":
            ids = [f"plan-{case}-{i}" for i in range(N)]
        elif op.expected == "restored":
            ids = deleted[name].ids()
        else:
            ids = kids
        planned = plan(name, ids, BatchOptions(chunk_size=size, rollout=policy))
        assert planned.ids == list(ids) and planned.chunk_size == (size or op.default_chunk)
        if name in CLI:
            shown = cli_plan(name, ids, size, flags, capsys)
            assert {k: shown[k] for k in planned.to_dict()} == planned.to_dict(), name
        if op.pickable:
            frame = link.devices()
            column = "id" if op.int_ids else "client_id"
            frame = frame.set_index(column).loc[ids].reset_index()
            staged = panel_plan(link if op.kind == "link" else gw, frame, column, ids, name, size, policy)
            assert staged.chunk_ids == planned.chunk_ids and staged.to_dict() == planned.to_dict(), name
        if name == "add_sub_devices":
            before = set(sb.children(gw.device_id))
            specs = [{"node_id": i, "product_id": product} for i in ids]
            result = gw.add_sub_devices(specs, **opts)
            kids = [c for c in sb.children(gw.device_id) if c not in before]
            assert len(kids) == N
        elif name == "update_sub_device_status":
            result = gw.update_sub_device_status(dict.fromkeys(ids, "ONLINE"), **opts)
        elif op.expected == "restored":
            result = rk.restore(deleted[name].op_id, link if op.kind == "link" else gw, **opts)
        else:
            result = getattr(link if op.kind == "link" else gw, name)(ids, **opts)
        if name in RESTORES:
            deleted[RESTORES[name]] = result
        assert_sent_as_planned(planned, result)


def test_delete_children_of_100_in_chunks_of_40_is_4_chunks_everywhere(bare_env, capsys):
    ids = [f"c-{i}" for i in range(100)]
    shown = cli_plan("delete_sub_devices", ids, 40, [], capsys)
    planned = plan("delete_sub_devices", ids, BatchOptions(chunk_size=40))
    assert shown["chunks"] == planned.chunks == 4  # the default canary of 50: 40 + 10, then 40 + 10
    assert [len(c) for c in planned.chunk_ids] == [40, 10, 40, 10] and planned.canary_chunks == 2
    assert cli.main(["delete-children", "--dry-run", "--chunk-size", "40", *ids]) == cli.EXIT_OK
    text = capsys.readouterr().out
    assert "100 devices on (target not given) in 4 chunk(s) of at most 40" in text
    assert "permanent: the platform cannot undo a deletion" in text
    assert "undo: 100 child devices fully restorable" in text


def test_a_fan_out_plan_keeps_chunks_within_one_gateway():
    parent = {f"g{g}_c{i}": f"g{g}" for g in range(3) for i in range(7 + g)}
    order = gateway_order(list(parent), parent, 4, None)
    assert sorted(order) == sorted(parent)
    full = [order[i:i + 4] for i in range(0, 4 * 3, 4)]  # one full chunk per gateway first
    assert [{parent[c] for c in ch} for ch in full] == [{"g0"}, {"g1"}, {"g2"}]
    assert gateway_order(order, parent, 4, None) == order  # ordering an order leaves it


def test_a_fan_out_canary_does_not_shift_the_rest_across_gateways():
    parent = {f"g{g}_c{i}": f"g{g}" for g in range(4) for i in range(80)}
    planned = plan("delete_sub_devices", list(parent), BatchOptions(chunk_size=40), parents=parent)
    assert planned.canary == 50 and planned.gateways == {f"g{g}": 80 for g in range(4)}
    spans = [len({parent[c] for c in ch}) for ch in planned.chunk_ids]
    assert spans == [1] * planned.chunks and planned.requests == planned.chunks  # no chunk spans two gateways
    assert [len(c) for c in planned.chunk_ids[:2]] == [40, 10]
    again = plan("delete_sub_devices", planned.ids, BatchOptions(chunk_size=40), parents=parent)
    assert again.chunk_ids == planned.chunk_ids  # a client given the plan's order cuts the same chunks


def test_a_fan_out_shown_by_the_cli_and_the_console_is_what_the_console_runs(sb, bare_env, capsys, tmp_path):
    gws = sorted(sb.gateways(), key=lambda g: -len(sb.children(g)))[1:4]
    policy = rk.Rollout(canary=15)
    con = rk.console(sb.link_client(progress=False), gateways=[sb.gateway(g) for g in gws], blast_radius=10_000)
    try:
        con.select_tab(TITLE)
        p, panel = con.picker, con.panel
        p.select([c for g in gws for c in sb.children(g)[:23]])
        ids = list(p.selected)
        parent = {c: g for g in gws for c in sb.children(g)}
        planned = plan("delete_sub_devices", ids, BatchOptions(chunk_size=10, rollout=policy), parents=parent)
        assert planned.requests >= planned.chunks  # the gateways' partial tails share chunks: one request each

        for k, v in link_env(sb).items():
            bare_env.setenv(k, v)
        secrets = tmp_path / "gws.txt"
        secrets.write_text("".join(f"{g} {sb.fleet.secret_of(g)}\n" for g in gws))
        secrets.chmod(0o600)
        host, port = sb.mqtt_address
        argv = ["delete-children", "--across-gateways", "--host", host, "--port", str(port), "--dry-run", "--json",
                "--chunk-size", "10", "--canary", "15", "--secrets-file", str(secrets), *ids]
        assert cli.main(argv) == cli.EXIT_OK
        shown = json.loads(capsys.readouterr().out)
        assert shown["requests"] == planned.requests and shown["gateways"] == planned.gateways
        assert (shown["rollout"], shown["worst_case"]) == (planned.describe_rollout(), planned.worst_case)

        panel.rollout_form.wait_for_me.value = False
        panel.rollout = policy
        panel.chunk_size = 10
        staged = panel.make_preview()
        assert staged.batch.chunk_ids == planned.chunk_ids and staged.target == "3 gateways"
        panel.confirm.value = True
        assert panel.run() and panel.wait(60), panel.message
        assert_sent_as_planned(planned, panel.result)
    finally:
        con.close()


def test_a_fan_out_plan_refuses_a_child_of_no_known_gateway():
    with pytest.raises(rk.InputError, match="no gateway known for 1 child"):
        plan("delete_sub_devices", ["c1", "c2"], parents={"c1": "gw-1"})
