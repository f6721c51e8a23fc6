"""The ``romakit`` command (also ``python -m romakit``): the sandbox and batch operations
for terminals and schedulers."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from collections.abc import Sequence


def _add_sim(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sim", help="run the sandbox in the foreground and print how to reach it (one JSON line)")
    p.add_argument("--devices", type=int, default=2000, help="fleet size (default 2000)")
    p.add_argument("--seed", type=int, default=7, help="fleet seed: same seed, same fleet (default 7)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--http-port", type=int, default=0, help="LINK HTTP port (default: a free one)")
    p.add_argument("--mqtt-port", type=int, default=0, help="embedded MQTT broker port (default: a free one)")
    p.add_argument("--no-mqtt", action="store_true", help="LINK REST side only")
    p.add_argument("--mqtt-broker", metavar="HOST:PORT", help="attach the IoTDA platform to this broker (e.g. Mosquitto) instead of the embedded one")
    p.add_argument("--gateways", type=int, default=3, help="how many gateways to describe (default 3)")
    f = p.add_argument_group("faults (also switchable at run time with sb.set_fault)")
    f.add_argument("--latency-ms", type=float, help="extra delay before every HTTP answer")
    f.add_argument("--error-rate", type=float, help="share of HTTP requests answered 500 APIG.9999")
    f.add_argument("--rate-limit", type=float, help="HTTP requests/s before 429 APIG.0308")
    f.add_argument("--retry-after", type=float, help="Retry-After seconds sent with a 429")
    f.add_argument("--reset-rate", type=float, help="share of HTTP connections reset without an answer")
    f.add_argument("--garbage-rate", type=float, help="share of HTTP answers that are not JSON")
    f.add_argument("--fail-products", type=int, nargs="*", help="product ids whose devices always fail force-offline")
    f.add_argument("--mqtt-delay-ms", type=float, help="delay before the platform answers over MQTT")
    f.add_argument("--mqtt-drop-rate", type=float, help="share of MQTT requests never answered")
    f.add_argument("--mqtt-duplicate-rate", type=float, help="share of MQTT answers sent twice")
    f.add_argument("--mqtt-malformed-rate", type=float, help="share of MQTT answers that are malformed")
    p.set_defaults(func=_cmd_sim)


_FAULT_FLAGS = (
    "latency_ms", "error_rate", "rate_limit", "retry_after", "reset_rate", "garbage_rate", "fail_products",
    "mqtt_delay_ms", "mqtt_drop_rate", "mqtt_duplicate_rate", "mqtt_malformed_rate",
)


def _cmd_sim(args: argparse.Namespace) -> int:
    from romakit.sim.server import SimServer

    faults = {k: getattr(args, k) for k in _FAULT_FLAGS if getattr(args, k) is not None}
    external = None
    if args.mqtt_broker:
        host, _, port = args.mqtt_broker.rpartition(":")
        external = (host or "127.0.0.1", int(port))
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    with SimServer(
        devices=args.devices,
        seed=args.seed,
        host=args.host,
        http_port=args.http_port,
        mqtt=not args.no_mqtt,
        mqtt_port=args.mqtt_port,
        mqtt_broker=external,
        **faults,
    ) as sim:
        print(json.dumps(sim.describe(gateways=args.gateways)), flush=True)
        while not stop.wait(3600):
            pass
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="romakit", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    _add_sim(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except Exception as e:  # a clean one-line error for terminals; details with -X dev
        from romakit.errors import RomakitError

        if isinstance(e, RomakitError):
            print(f"romakit: {e}", file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
