"""Switchable faults of the sandbox and the machinery both its sides play them with.

One mutable :class:`Faults` object lives in the sandbox; the LINK simulator and the
IoTDA platform simulator read it on every request, so ``sb.set_fault(...)`` takes
effect at once. Trainers switch faults on to teach the flow; tests switch them to
prove the clients survive them.

Both sides throttle with a :class:`TokenBucket`, roll their dice with :class:`Dice`
(seeded by ``faults.seed``, so a faulty run replays) and spoil answers with
:func:`garbage`, :func:`without_fields` and :func:`malformed`.
"""

from __future__ import annotations

import dataclasses
import json
import random
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

_T = TypeVar("_T")


@dataclass
class Faults:
    # --- LINK REST side -------------------------------------------------------------
    #: extra delay before every answer, in milliseconds
    latency_ms: float = 0.0
    #: share (0..1) of requests answered with ``error_status`` ``error_code``
    error_rate: float = 0.0
    #: the status and code of those answers (e.g. 502 APIG.0202, 503 ROMA.00110008, 429 APIGW.0308)
    error_status: int = 500
    error_code: str = "APIG.9999"
    #: the sandbox's clock runs this many seconds ahead of this machine's (negative: behind):
    #: its Date header, its 15-minute signature window and IAM's expiry follow it
    clock_offset_s: float = 0.0
    #: ListDevices pages past the first that each delete the lowest-id device first
    list_churn: int = 0
    #: requests per second allowed before answering 429 APIG.0308 (None: no limit)
    rate_limit: float | None = None
    #: Retry-After seconds sent with a 429 (None: header omitted)
    retry_after: float | None = 1.0
    #: LINK device ids that always land in ``failed`` of force-offline
    fail_ids: set[int] = field(default_factory=set)
    #: product ids whose devices always land in ``failed`` of force-offline
    fail_products: set[int] = field(default_factory=set)
    #: LINK device ids reported in ``success`` but left online (for verify())
    lie_ids: set[int] = field(default_factory=set)
    #: share (0..1) of requests whose connection is reset without an answer
    reset_rate: float = 0.0
    #: share (0..1) of answers cut short / not JSON
    garbage_rate: float = 0.0
    #: share (0..1) of 200 answers whose JSON object lacks promised fields (a top-level
    #: field such as ``success``/``failed``/``total``, all of them, or the items' ids)
    missing_fields_rate: float = 0.0
    #: the most devices the instance holds: CreateDevice beyond it answers the quota error
    #: (None: no quota)
    device_quota: int | None = None

    # --- IoTDA MQTT side ------------------------------------------------------------
    #: delay before the platform answers a $sub_device_manager request, ms
    mqtt_delay_ms: float = 0.0
    #: share (0..1) of requests the platform never answers
    mqtt_drop_rate: float = 0.0
    #: share (0..1) of answers sent twice
    mqtt_duplicate_rate: float = 0.0
    #: share (0..1) of answers replaced by a malformed payload
    mqtt_malformed_rate: float = 0.0
    #: IoTDA child device ids that always fail deletion, with this error code
    mqtt_fail_ids: set[str] = field(default_factory=set)
    mqtt_fail_code: str = "IOTDA.014016"
    #: upstream messages per second the instance accepts (all devices together, a burst of
    #: one second's worth); the rest are dropped unanswered, as IoTDA drops messages over
    #: its spec (None: no limit). Small editions allow about 10.
    mqtt_rate_limit: float | None = None

    # --- the fleet's own behaviour (:mod:`romakit.sim.life`) ---------------------------
    #: median seconds (sandbox time) before a forced device reconnects by itself
    #: (0 or None: forced devices stay offline)
    reconnect_s: float | None = None
    #: share (0..1) of devices that never reconnect once dropped (a stale certificate),
    #: drawn per device from ``seed``
    reconnect_never: float = 0.0
    #: new device connections the instance accepts per second (sandbox time); the rest
    #: queue (None or 0: no limit)
    connect_rate: float | None = None
    #: sandbox seconds that pass per real second: delays, periods and rates of the fleet's
    #: behaviour are scaled by it (60: a 2-minute tail passes in 2 s)
    time_scale: float = 1.0

    #: seed for the fault dice, so a faulty run can be replayed
    seed: int = 0

    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def update(self, **changes: object) -> None:
        """Set fault switches by name; unknown names are refused."""
        names = {f.name for f in dataclasses.fields(self) if not f.name.startswith("_")}
        unknown = sorted(set(changes) - names)
        if unknown:
            raise ValueError(f"unknown fault switch(es): {', '.join(unknown)}; known: {', '.join(sorted(names))}")
        if changes.get("connect_rate") == 0:
            changes["connect_rate"] = None  # 0, as None: no limit
        for k in ("time_scale", "connect_rate"):
            v = changes.get(k)
            if v is not None and not (isinstance(v, (int, float)) and v > 0):
                raise ValueError(f"{k} must be a positive number, got {v!r}")
        wait = changes.get("reconnect_s")
        if wait is not None and not (isinstance(wait, (int, float)) and wait >= 0):
            raise ValueError(f"reconnect_s must be seconds >= 0 (or None), got {wait!r}")
        never = changes.get("reconnect_never", 0.0)
        if not (isinstance(never, (int, float)) and 0 <= never <= 1):
            raise ValueError(f"reconnect_never must be a share between 0 and 1, got {never!r}")
        if changes.get("time_scale", 1.0) is None:
            raise ValueError("time_scale must be a positive number, got None")
        with self._lock:
            for k, v in changes.items():
                if isinstance(getattr(self, k), set) and v is not None:
                    v = set(v)
                setattr(self, k, v)

    def clear(self) -> None:
        """Switch every fault off."""
        fresh = Faults(seed=self.seed)
        with self._lock:
            for f in dataclasses.fields(self):
                if not f.name.startswith("_"):
                    setattr(self, f.name, getattr(fresh, f.name))

    def as_dict(self) -> dict:
        """The current switches, JSON-ready."""
        out = {}
        for f in dataclasses.fields(self):
            if f.name.startswith("_"):
                continue
            v = getattr(self, f.name)
            out[f.name] = sorted(v) if isinstance(v, set) else v
        return out


class TokenBucket:
    """``rate`` events per second with a burst of one second's worth (at least one);
    refilled when the rate changes. Thread-safe."""

    def __init__(self) -> None:
        self._rate: float | None = None
        self._tokens = 0.0
        self._at = 0.0
        self._lock = threading.Lock()

    def take(self, rate: float, now: float) -> bool:
        """Whether one more event may pass at monotonic time ``now`` (a rate of 0 or less passes none)."""
        with self._lock:
            if rate <= 0:
                return False
            burst = max(1.0, float(rate))
            if rate != self._rate:
                self._rate, self._tokens, self._at = rate, burst, now
            self._tokens = min(burst, self._tokens + (now - self._at) * rate)
            self._at = now
            if self._tokens < 1.0:
                return False
            self._tokens -= 1.0
            return True


class Dice:
    """The fault dice of one side: ``random.Random(faults.seed)``, started again when
    the seed is switched. Thread-safe."""

    def __init__(self, faults: Faults) -> None:
        self._faults = faults
        self._seed = faults.seed
        self._rnd = random.Random(faults.seed)
        self._lock = threading.Lock()

    def _fresh(self) -> random.Random:
        if self._faults.seed != self._seed:
            self._seed = self._faults.seed
            self._rnd = random.Random(self._seed)
        return self._rnd

    def rolls(self, k: int) -> list[float]:
        """``k`` uniform draws in [0, 1)."""
        with self._lock:
            rnd = self._fresh()
            return [rnd.random() for _ in range(k)]

    def random(self) -> float:
        return self.rolls(1)[0]

    def randrange(self, n: int) -> int:
        with self._lock:
            return self._fresh().randrange(n)

    def choice(self, seq: Sequence[_T]) -> _T:
        with self._lock:
            return self._fresh().choice(seq)


def garbage(payload: Any, dice: Dice) -> bytes:
    """A body that is not what the API promises: HTML, or JSON cut short."""
    if dice.random() < 0.5:
        return b"<html><body><h1>502 Bad Gateway</h1>sandbox fault</body></html>"
    text = json.dumps(payload, separators=(",", ":")).encode()
    return text[: max(1, len(text) // 2)]


def without_fields(payload: dict, dice: Dice) -> dict:
    """``payload`` without some of its fields: one top-level field, all of them, or the
    ids of every item of its lists."""
    kind = dice.randrange(3)
    out = dict(payload)
    if kind == 0 and out:
        out.pop(dice.choice(sorted(out)))
    elif kind == 1:
        out = {}
    else:
        for key, value in out.items():
            if isinstance(value, list):
                out[key] = [{k: v for k, v in item.items() if k not in ("id", "device_id")}
                            if isinstance(item, dict) else item for item in value]
    return out


def malformed(message: dict[str, Any], dice: Dice) -> bytes:
    """A broken stand-in for a one-service IoTDA ``message``: JSON cut inside ``paras``
    (after the ``event_id``), or JSON whose lists are missing or of the wrong type."""
    kind = dice.randrange(3)
    svc = message["services"][0]
    if kind == 0:
        text = json.dumps(message)
        return text[: text.index('"paras"') + len('"paras": {"')].encode()
    svc["paras"] = {} if kind == 1 else {"successful_devices": "all", "failed_devices": None}
    return json.dumps(message).encode()
