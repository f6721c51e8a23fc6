"""Deleting 10,000 child devices through one IoTDA gateway on the sandbox's embedded broker:
romakit's pipelined ``Gateway.delete_sub_devices`` against a one-request-at-a-time loop,
in one run.

    .venv/bin/python benchmarks/bench_mqtt_delete.py [--children 10000] [--delay-ms 0,100]

The one-at-a-time loop is what the official device SDK's listener pattern gives: publish
one ``delete_sub_device_request`` of 50 ids, wait for its response, then the next. Both
legs keep to IoTDA's 50 upstream messages/s per device (the loop would be throttled by
the platform otherwise), so 50 messages/s x 50 devices = 2,500 devices/s is the ceiling
for either. ``--delay-ms`` is the platform's answer delay (0 = the bare sandbox; 100 ms
is a plausible cloud round trip); each value runs both legs.

Every leg gets a fresh sandbox (its own process: fleet, broker, platform simulator) with
one gateway holding ``--children`` children, so both legs delete the same number, and the
leg is checked afterwards: every child gone from the fleet.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _sim_process import served  # noqa: E402 - after the path is set

CEILING = 50 * 50  # IoTDA: 50 upstream messages/s per device x 50 devices per request
RATE = 50.0


# -- the sandbox, in its own process so it does not share the client's GIL -------------------


def serve(children: int, delay_ms: float) -> None:
    """Child process: a fleet with one gateway of ``children`` children behind the embedded
    broker; prints its facts as one JSON line, runs until stdin closes, then prints how many
    children are left."""
    from romakit.sim.faults import Faults
    from romakit.sim.fleet import Fleet
    from romakit.sim.mqtt import MqttSide

    logging.basicConfig(level=logging.WARNING)
    fleet = Fleet(10, seed=1)
    products = fleet.products()
    gw_product = next(p["product_id"] for p in products if p["product_type"] == 1)
    child_product = next(p["product_id"] for p in products if p["product_type"] == 0)
    gw = fleet.create(device_name="bench gateway", product_id=gw_product, node_id="bench-gw", client_id="bench-gw")
    kids = [
        fleet.create(device_name=f"bench child {i}", product_id=child_product, node_id=f"bench-{i}",
                     parent_device_id=gw["id"])["client_id"]
        for i in range(children)
    ]
    side = MqttSide(fleet, Faults(mqtt_delay_ms=delay_ms))
    side.start()
    try:
        print(json.dumps({"host": side.host, "port": side.port, "gateway": "bench-gw",
                          "secret": fleet.secret_of("bench-gw"), "children": kids}), flush=True)
        sys.stdin.read()
        print(json.dumps({"remaining": len(fleet.children_of(gw["id"]))}), flush=True)
    finally:
        side.stop()


def sandbox(children: int, delay_ms: float):
    return served([__file__, "--serve", "--children", str(children), "--delay-ms", str(delay_ms)])


# -- the two legs ---------------------------------------------------------------------------------


def romakit_leg(s: dict) -> tuple[float, int]:
    from romakit.iotda.gateway import Gateway

    with Gateway(s["host"], s["port"], s["gateway"], s["secret"], rate=RATE) as gw:
        t0 = time.perf_counter()
        res = gw.delete_sub_devices(s["children"], progress=False, rollout=False)  # the raw engine, as the baseline
        elapsed = time.perf_counter() - t0
    assert len(res) == len(s["children"]), "romakit lost devices"
    return elapsed, res.counts["success"] + res.counts["failed"]


def one_at_a_time_leg(s: dict) -> tuple[float, int]:
    """The SDK's pattern on plain paho: publish a request of 50, wait for its response, repeat."""
    import paho.mqtt.client as mqtt

    from romakit.iotda import auth
    from romakit.iotda import envelope as env

    gid = s["gateway"]
    login = auth.login(gid, s["secret"])
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=login.client_id, protocol=mqtt.MQTTv311)
    client.username_pw_set(login.username, login.password)
    answered = threading.Event()
    subscribed = threading.Event()
    state = {"want": None, "devices": 0}

    def on_connect(c, u, f, rc, p):
        c.subscribe(env.down_topic(gid), qos=1)

    def on_message(c, u, msg):  # the SDK's listener: every response goes here
        for svc in json.loads(msg.payload).get("services", []):
            if svc.get("event_type") == env.DELETE_RESPONSE and svc.get("event_id") == state["want"]:
                paras = svc["paras"]
                state["devices"] += len(paras.get("successful_devices", [])) + len(paras.get("failed_devices", []))
                answered.set()

    client.on_connect = on_connect
    client.on_subscribe = lambda *a: subscribed.set()
    client.on_message = on_message
    client.connect(s["host"], s["port"], keepalive=120)
    client.loop_start()
    if not subscribed.wait(10):
        raise RuntimeError("one-at-a-time leg: no SUBACK")
    ids = s["children"]
    interval = 1.0 / RATE
    t0 = time.perf_counter()
    next_at = t0
    for i in range(0, len(ids), 50):
        now = time.perf_counter()
        if now < next_at:  # keep to IoTDA's 50 messages/s like the pipelined leg
            time.sleep(next_at - now)
        next_at = max(now, next_at) + interval
        eid = env.new_event_id()
        state["want"] = eid
        answered.clear()
        client.publish(env.up_topic(gid), env.build(gid, env.DELETE_REQUEST, env.delete_paras(ids[i : i + 50]),
                                                    event_id=eid), qos=1)
        if not answered.wait(30):
            print(f"  request {eid} got no answer in 30 s", file=sys.stderr)
    elapsed = time.perf_counter() - t0
    client.disconnect()
    client.loop_stop()
    return elapsed, state["devices"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--children", type=int, default=10_000)
    ap.add_argument("--delay-ms", default="0,100", help="platform answer delay(s) in ms, comma-separated")
    ap.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        serve(args.children, float(args.delay_ms))
        return
    logging.basicConfig(level=logging.WARNING)
    import tempfile

    # romakit runs as users get it, journal included, but into a throwaway home
    os.environ.setdefault("ROMAKIT_HOME", tempfile.mkdtemp(prefix="romakit-bench-"))
    n = args.children
    print(f"{n:,} children through one gateway, chunks of 50, {RATE:g} messages/s limit "
          f"(ceiling {CEILING:,} devices/s); embedded sandbox broker in its own process")
    for delay in (float(d) for d in args.delay_ms.split(",")):
        rows = []
        for name, leg in (("romakit delete_sub_devices (8 in flight)", romakit_leg),
                          ("one request at a time (SDK pattern)", one_at_a_time_leg)):
            with sandbox(n, delay) as s:
                elapsed, answered = leg(s)
            left = s.get("remaining")
            assert left == 0, f"{name}: {left} children left in the fleet"
            rate = n / elapsed
            rows.append(rate)
            print(f"  delay {delay:5g} ms  {name:42s} {elapsed:7.2f} s  {rate:7,.0f} devices/s  "
                  f"{rate / CEILING:6.1%} of ceiling  ({answered:,} answered, {left} left)")
        print(f"  delay {delay:5g} ms  ratio romakit / one-at-a-time: {rows[0] / rows[1]:.1f}x")


if __name__ == "__main__":
    main()
