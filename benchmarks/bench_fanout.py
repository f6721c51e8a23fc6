"""Child deletion fanned out over many gateways (``rk.delete_children``), measured against
one gateway's ceiling and against the broker's own capacity, in one run.

    .venv/bin/python benchmarks/bench_fanout.py [--gateways 50] [--children 200] [--rate 50]
                                                [--brokers embedded,mosquitto] [--delay-ms 0]

For each broker (the sandbox's embedded amqtt broker, and Mosquitto on 127.0.0.1:1883
when it answers: the sandbox's IoTDA platform attaches to it as an external broker),
three legs, each on a fresh sandbox in its own process (fleet, broker, platform; so it
does not share the client's GIL), each checked afterwards from the fleet itself:

* **one gateway**: one gateway deletes its ``--children`` children at its own pace
  (after an untimed warm-up: another gateway's children)
  (``--rate`` upstream messages/s, IoTDA's 50 by default; chunks of 50, its window in
  flight): the per-gateway ceiling the fan-out multiplies;
* **fan-out**: ``rk.delete_children`` of all ``--gateways`` x ``--children`` children in
  one run (one MQTT session per gateway, each at that same pace), sessions logged in
  before the clock starts, as for the one-gateway leg;
* **broker capacity**: no romakit engine: one plain paho client per gateway (logged in as
  it), every request of 50 published at once (QoS 1, no pace), the clock stopped at the
  last answer: what the broker and the platform simulator can carry on this machine.

Ratios: fan-out / one gateway (ideal: the number of gateways, each having its own
budget), and fan-out / broker capacity (the share of the broker's own throughput the
engine reaches). Rollout off and no progress bar in every leg: the raw engine.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _sim_process import served  # noqa: E402 - after the path is set

MOSQUITTO = ("127.0.0.1", 1883)
PER_REQUEST = 50  # IoTDA: at most 50 children per delete_sub_device_request


# -- the sandbox, in its own process -----------------------------------------------------------
def serve(gateways: int, children: int, delay_ms: float, broker: str) -> None:
    """Child process: ``gateways`` gateways of ``children`` children each behind the chosen
    broker; prints its facts as one JSON line, serves until stdin closes, then prints how
    many children are left."""
    from romakit.sim.faults import Faults
    from romakit.sim.fleet import Fleet
    from romakit.sim.mqtt import MqttSide

    logging.basicConfig(level=logging.WARNING)
    fleet = Fleet(10, seed=1)
    products = fleet.products()
    gw_product = next(p["product_id"] for p in products if p["product_type"] == 1)
    child_product = next(p["product_id"] for p in products if p["product_type"] == 0)
    tag = f"fo{os.getpid()}"  # ids of this run only: Mosquitto is shared, client ids must not clash
    gws: dict[str, dict] = {}
    for g in range(gateways):
        gid = f"{tag}-gw{g:03d}"
        gw = fleet.create(device_name=f"bench gateway {g}", product_id=gw_product, node_id=gid, client_id=gid)
        kids = [fleet.create(device_name=f"bench child {g}-{i}", product_id=child_product, node_id=f"{gid}-{i}",
                             parent_device_id=gw["id"])["client_id"] for i in range(children)]
        gws[gid] = {"id": gw["id"], "secret": fleet.secret_of(gid), "children": kids}
    side = MqttSide(fleet, Faults(mqtt_delay_ms=delay_ms), external=MOSQUITTO if broker == "mosquitto" else None)
    side.start()
    try:
        print(json.dumps({"host": side.host, "port": side.port,
                          "gateways": {g: {k: v[k] for k in ("secret", "children")} for g, v in gws.items()}}),
              flush=True)
        sys.stdin.read()
        left = sum(len(fleet.children_of(v["id"])) for v in gws.values())
        print(json.dumps({"remaining": left}), flush=True)
    finally:
        side.stop()


def sandbox(args: argparse.Namespace, broker: str):
    return served([__file__, "--serve", "--broker", broker, "--gateways", str(args.gateways),
                   "--children", str(args.children), "--delay-ms", str(args.delay_ms)])


def gateway(s: dict, gid: str, rate: float):
    from romakit.iotda.gateway import Gateway

    return Gateway(s["host"], s["port"], gid, s["gateways"][gid]["secret"], tls=False, rate=rate)


# -- the legs: each returns (seconds, devices answered) --------------------------------------------
def one_gateway_leg(s: dict, rate: float) -> tuple[float, int]:
    """The second gateway's children first, untimed (imports, the journal's first write),
    then the first gateway's, timed."""
    warm, gid = list(s["gateways"])[1], next(iter(s["gateways"]))
    with gateway(s, warm, rate) as gw:
        gw.delete_sub_devices(s["gateways"][warm]["children"], progress=False, rollout=False)
    kids = s["gateways"][gid]["children"]
    with gateway(s, gid, rate) as gw:
        t0 = time.perf_counter()
        res = gw.delete_sub_devices(kids, progress=False, rollout=False)
        elapsed = time.perf_counter() - t0
    assert len(res) == len(kids) and res.counts["success"] == len(kids), res.counts
    return elapsed, len(kids)


def fan_out_leg(s: dict, rate: float) -> tuple[float, int]:
    import romakit as rk

    parents = {c: g for g, v in s["gateways"].items() for c in v["children"]}
    gws = {g: gateway(s, g, rate) for g in s["gateways"]}
    threads = [threading.Thread(target=gw.connect) for gw in gws.values()]  # logged in before the clock
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        t0 = time.perf_counter()
        res = rk.delete_children(list(parents), parents=parents, gateways=gws, progress=False, rollout=False)
        elapsed = time.perf_counter() - t0
    finally:
        for gw in gws.values():
            gw.close()
    assert len(res) == len(parents) and res.counts["success"] == len(parents), res.counts
    return elapsed, len(parents)


def broker_leg(s: dict) -> tuple[float, int]:
    """Plain paho, no romakit engine: every request of every gateway at once, all answers awaited."""
    import paho.mqtt.client as mqtt

    from romakit.iotda import auth
    from romakit.iotda import envelope as env

    lock = threading.Lock()
    pending: dict[str, int] = {}
    done = threading.Event()
    answered = [0]
    clients = []

    def on_message(c, u, msg):  # noqa: ANN001 - paho's callback
        for svc in json.loads(msg.payload).get("services", []):
            if svc.get("event_type") != env.DELETE_RESPONSE:
                continue
            with lock:
                n = pending.pop(svc.get("event_id"), None)
                if n is not None:
                    answered[0] += n
                    if not pending:
                        done.set()

    ready = threading.Barrier(len(s["gateways"]) + 1, timeout=60)
    for gid, v in s["gateways"].items():
        login = auth.login(gid, v["secret"])
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=login.client_id, protocol=mqtt.MQTTv311)
        c.username_pw_set(login.username, login.password)
        c.on_message = on_message
        c.on_connect = lambda c, u, f, rc, p, gid=gid: c.subscribe(env.down_topic(gid), qos=1)
        c.on_subscribe = lambda *a: ready.wait()
        c.connect(s["host"], s["port"], keepalive=120)
        c.loop_start()
        clients.append((gid, v["children"], c))
    ready.wait()  # every client subscribed
    requests = []
    for gid, kids, c in clients:
        for i in range(0, len(kids), PER_REQUEST):
            part = kids[i:i + PER_REQUEST]
            eid = env.new_event_id()
            pending[eid] = len(part)
            requests.append((c, env.up_topic(gid), env.build(gid, env.DELETE_REQUEST, env.delete_paras(part),
                                                             event_id=eid)))
    t0 = time.perf_counter()
    for c, topic, payload in requests:
        c.publish(topic, payload, qos=1)
    if not done.wait(120):
        print(f"  broker leg: {len(pending)} requests unanswered after 120 s", file=sys.stderr)
    elapsed = time.perf_counter() - t0
    for _, _, c in clients:
        c.disconnect()
        c.loop_stop()
    return elapsed, answered[0]


def mosquitto_answers() -> bool:
    try:
        socket.create_connection(MOSQUITTO, timeout=2).close()
        return True
    except OSError:
        return False


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gateways", type=int, default=50, help="at least 2 (one warms up the one-gateway leg)")
    ap.add_argument("--children", type=int, default=200, help="children per gateway")
    ap.add_argument("--rate", type=float, default=50.0, help="upstream messages/s per gateway (IoTDA allows 50)")
    ap.add_argument("--delay-ms", type=float, default=0.0, help="the platform's answer delay")
    ap.add_argument("--brokers", default="embedded,mosquitto")
    ap.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--broker", default="embedded", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        serve(args.gateways, args.children, args.delay_ms, args.broker)
        return
    logging.basicConfig(level=logging.WARNING)
    os.environ.setdefault("ROMAKIT_HOME", tempfile.mkdtemp(prefix="romakit-bench-"))  # journal included, thrown away
    n = args.gateways * args.children
    ceiling = args.rate * PER_REQUEST
    print(f"{args.gateways} gateways x {args.children} children = {n:,}; {args.rate:g} messages/s per gateway "
          f"(one gateway's ceiling {ceiling:,.0f} devices/s), answer delay {args.delay_ms:g} ms; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    for broker in args.brokers.split(","):
        if broker == "mosquitto" and not mosquitto_answers():
            print(f"  {broker}: nothing answers on {MOSQUITTO[0]}:{MOSQUITTO[1]}; skipped")
            continue
        rates = {}
        for name, leg, want_left in (
            ("one gateway", lambda s: one_gateway_leg(s, args.rate), n - 2 * args.children),
            ("fan-out (rk.delete_children)", lambda s: fan_out_leg(s, args.rate), 0),
            ("broker capacity (paho, no engine)", broker_leg, 0),
        ):
            with sandbox(args, broker) as s:
                elapsed, answered = leg(s)
            left = s.get("remaining")
            assert left == want_left, f"{broker} {name}: {left} children left, {want_left} expected"
            rates[name] = answered / elapsed
            print(f"  {broker:9s} {name:36s} {answered:7,} devices in {elapsed:6.2f} s  "
                  f"{rates[name]:8,.0f} devices/s")
        one, fan, raw = rates.values()
        print(f"  {broker:9s} fan-out / one gateway: {fan / one:5.1f}x (ideal {args.gateways}x: "
              f"{fan / (one * args.gateways):.0%} of it); fan-out / broker capacity: {fan / raw:.0%}")


if __name__ == "__main__":
    main()
