"""Switchable faults of the sandbox, shared by its HTTP and MQTT sides.

One mutable :class:`Faults` object lives in the sandbox; the LINK simulator and the
IoTDA platform simulator read it on every request, so ``sb.set_fault(...)`` takes
effect at once. Trainers switch faults on to teach the flow; tests switch them to
prove the clients survive them.
"""

from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass, field


@dataclass
class Faults:
    # --- LINK REST side -------------------------------------------------------------
    #: extra delay before every answer, in milliseconds
    latency_ms: float = 0.0
    #: share (0..1) of requests answered with 500 APIG.9999
    error_rate: float = 0.0
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

    #: seed for the fault dice, so a faulty run can be replayed
    seed: int = 0

    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def update(self, **changes: object) -> None:
        """Set fault switches by name; unknown names are refused."""
        names = {f.name for f in dataclasses.fields(self) if not f.name.startswith("_")}
        unknown = sorted(set(changes) - names)
        if unknown:
            raise ValueError(f"unknown fault switch(es): {', '.join(unknown)}; known: {', '.join(sorted(names))}")
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
