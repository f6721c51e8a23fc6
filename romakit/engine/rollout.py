"""Safe rollouts for every batch operation: a canary and its gate, a cap in devices per
minute, an exponential ramp, and abort criteria checked after a minimum count.

The policy (:class:`Rollout`) is plain data; :class:`RolloutState` is what the batch
engine keeps while a run goes on. A stopped run ends every unsent device ``skipped``
with the reason, so the result still holds every requested id exactly once.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from romakit.errors import InputError
from romakit.operations import OPERATIONS
from romakit.outcomes import CONNECT_ERROR, CONNECTION_LOST, FAILED, SUCCESS, TIMEOUT, UNKNOWN
from romakit.results.follow import judge_from, seconds

#: which outcomes count as failures for the abort criteria and the canary gate
ABORT_ON = {"failed": frozenset({FAILED}), "unknown": frozenset({UNKNOWN}), "either": frozenset({FAILED, UNKNOWN})}
#: codes of a device whose request never reached the service or got no answer over the
#: network (connection refused or reset, DNS, timeout, link lost): the service, not the
#: device, is what failed
TRANSPORT = frozenset({CONNECT_ERROR, TIMEOUT, CONNECTION_LOST})


@dataclass(frozen=True)
class CanaryReport:
    """What the canary did, handed to the gate."""

    devices: int
    counts: dict[str, int]
    bad: int
    share: float
    threshold: float
    abort_on: str

    @property
    def passed(self) -> bool:
        """True when the canary's failure share stays under the threshold."""
        return self.share < self.threshold

    def __str__(self) -> str:
        verdict = "passed" if self.passed else "refused"
        return (
            f"canary {verdict}: {self.bad} of {self.devices} devices {self.abort_on if self.abort_on != 'either' else 'failed or unknown'}"
            f" ({self.share:.0%}; threshold {self.threshold:.0%})"
        )


#: a gate decides after the canary: True continues, False stops the run
Gate = Callable[[CanaryReport], "bool | Awaitable[bool]"]
#: reads the fleet after the canary: ``judge([(device id, epoch s forced), ...])`` says why
#: the canary's devices did not come back, or None (the client attaches it, see :func:`with_judge`)
Judge = Callable[[list[tuple[Any, float]]], Awaitable["str | None"]]
#: operations whose devices reconnect by themselves once done (a reconnect per device)
RECONNECTS = frozenset({"force_offline"})


@dataclass(frozen=True)
class Rollout:
    """How a batch rolls out. The defaults are safe for production fleets.

    - ``canary``: the first N devices go alone; the rest follow only through the gate.
      Without a ``gate`` the run continues while the canary's failure share stays under
      ``abort_threshold``; with one (``ActionPanel`` gives a button), the gate decides.
    - ``max_per_minute``: a cap on devices sent per minute (None: no cap).
    - ``ramp_start`` (devices per minute), ``ramp_factor`` and ``ramp_every``: start slow
      and multiply the rate by ``ramp_factor`` after every ``ramp_every`` successes, up
      to ``max_per_minute``.
    - ``abort_on`` (``"failed"``, ``"unknown"`` or ``"either"``), ``abort_threshold``
      (a share) and ``abort_min`` (devices finished before it may trigger): stop the run
      when failures pile up.
    - ``come_back`` (a share) and ``within`` (a duration, ``"2m"``): after a force-offline's
      canary, the run follows the canary's forced devices and goes on only when that share
      of them came back (online again, or logged in after they were forced) within that
      time; else the rest end ``skipped``. The later chunks are held to it too, as the
      abort criteria hold them to their answers: while the run goes on, their forced
      devices are followed, and once as many as the canary (``abort_min`` without one)
      are judged (back, or not back ``within`` after they were forced), a share back
      under ``come_back`` stops the run. An unpaced run can end before its first
      chunks are due: ``max_reconnects_per_second`` paces it.
    - ``max_reconnects_per_second``: the instance's limit on new connections (IoTDA: of the
      order of 100/s per unit). Each device a force-offline cuts reconnects, so the pace
      of such a run is capped at 60 times this per minute, and the preview states the
      reconnect load. A limit of its own, not ``max_per_minute``: the platform states it
      per second, it holds for the target whatever the operation's pace, and only
      operations that cut connections turn into reconnects.

    While a policy is in force the engine keeps the devices sent but not yet answered
    within what these criteria can still judge (see :mod:`romakit.engine.window`), so
    :meth:`worst_case` holds whatever the chunk size and concurrency.
    """

    canary: int = 0
    max_per_minute: float | None = None
    ramp_start: float | None = None
    ramp_factor: float = 2.0
    ramp_every: int = 100
    abort_on: str = "either"
    abort_threshold: float = 0.1
    abort_min: int = 200
    gate: Gate | None = field(default=None, compare=False)
    gate_timeout: float = 3600.0
    come_back: float | None = None
    within: float | str = "2m"
    max_reconnects_per_second: float | None = None
    judge: Judge | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        problems = []
        if self.canary < 0:
            problems.append(f"canary={self.canary!r} must be >= 0")
        if self.max_per_minute is not None and self.max_per_minute <= 0:
            problems.append(f"max_per_minute={self.max_per_minute!r} must be > 0")
        if self.ramp_start is not None and self.ramp_start <= 0:
            problems.append(f"ramp_start={self.ramp_start!r} must be > 0")
        if self.ramp_factor < 1:
            problems.append(f"ramp_factor={self.ramp_factor!r} must be >= 1")
        if self.ramp_every < 1:
            problems.append(f"ramp_every={self.ramp_every!r} must be >= 1")
        if self.abort_on not in ABORT_ON:
            problems.append(f"abort_on={self.abort_on!r} must be one of {sorted(ABORT_ON)}")
        if not 0 < self.abort_threshold <= 1:
            problems.append(f"abort_threshold={self.abort_threshold!r} must be a share in (0, 1]")
        if self.abort_min < 0:
            problems.append(f"abort_min={self.abort_min!r} must be >= 0")
        if self.come_back is not None and not 0 < self.come_back <= 1:
            problems.append(f"come_back={self.come_back!r} must be a share in (0, 1]")
        try:
            seconds(self.within, "within")
        except InputError as e:
            problems.append(str(e))
        if self.max_reconnects_per_second is not None and not self.max_reconnects_per_second > 0:
            problems.append(f"max_reconnects_per_second={self.max_reconnects_per_second!r} must be > 0")
        if problems:
            raise InputError("bad rollout policy: " + "; ".join(problems))

    def worst_case(self, devices: int | None = None) -> int:
        """The most devices that can be hit before the first stop can act: the canary
        (its gate decides before anything else is sent) or, sooner, ``abort_min`` (the
        abort criteria may act once that many have answered). Capped at ``devices``."""
        first = max(self.abort_min, 1)
        if self.canary:
            first = min(self.canary, first)
        return first if devices is None else min(first, devices)

    def to_dict(self) -> dict[str, Any]:
        """The policy as JSON-ready data (what the journal keeps); ``gate`` says whether a
        gate was set (a person's, in the widgets), not what it was."""
        out: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("gate", "judge")}
        out["gate"] = self.gate is not None
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], gate: Gate | None = None) -> Rollout:
        """The policy :meth:`to_dict` wrote (unknown keys ignored), with ``gate`` as its gate."""
        known = {f.name for f in fields(cls)} - {"gate", "judge"}
        return cls(**{k: v for k, v in data.items() if k in known}, gate=gate)

    def pace(self) -> float | None:
        """The cap on devices per minute in force: ``max_per_minute`` and the reconnect
        limit (60 x ``max_reconnects_per_second``), the lower; None: no cap."""
        caps = [c for c in (self.max_per_minute,
                            self.max_reconnects_per_second and 60.0 * self.max_reconnects_per_second) if c]
        return min(caps) if caps else None

    def describe(self, devices: int | None = None, *, operation: str | None = None,
                 chunk_size: int | None = None) -> str:
        """One line a person can read before confirming a run (``devices``: how many it
        is for, to state the worst case exactly; ``operation`` and ``chunk_size``: to
        state the reconnect load a force-offline causes)."""
        parts = []
        if self.canary:
            parts.append(f"canary of {self.canary} then a gate")
        if self.canary and self.come_back is not None:
            parts.append(f"the canary must come back ({self.come_back:.0%} within {self.within})")
        if self.come_back is not None:
            parts.append(come_back_note(self, devices))
        if self.ramp_start:
            parts.append(f"ramp from {self.ramp_start:g}/min x{self.ramp_factor:g} every {self.ramp_every} successes")
        if self.max_per_minute:
            parts.append(f"at most {self.max_per_minute:g} devices/min")
        what = "failed or unknown" if self.abort_on == "either" else self.abort_on
        parts.append(f"abort when {self.abort_threshold:.0%} {what} after {self.abort_min} devices")
        parts.append(f"at most {self.worst_case(devices):,} devices hit before the first stop can act")
        if operation in RECONNECTS:
            parts.append(reconnect_load(self, devices, chunk_size))
        return "; ".join(parts)


def come_back_note(policy: Rollout, devices: int | None) -> str:
    """What the come-back criterion does for the chunks after the canary, and how many
    devices go out before the first of them can be judged at the policy's pace."""
    within = seconds(policy.within, "within")
    text = (f"later chunks stop the run when under {policy.come_back:.0%} of their forced devices come back "
            f"within {policy.within}")
    rate = policy.pace()
    if rate:
        ahead = int(rate * within / 60)
        if devices:
            ahead = min(ahead, devices)
        return text + f" (about {ahead:,} devices are forced in the {policy.within} before the first is judged)"
    return text + " (unpaced: the run may be over before the first is judged)"


#: IoTDA's order of magnitude for new connections per second per unit (the preview's
#: suggestion when the policy states no limit)
TYPICAL_CONNECT_RATE = 100.0


def reconnect_load(policy: Rollout | None, devices: int | None, chunk_size: int | None) -> str:
    """What a force-offline run under ``policy`` asks of the instance's connection limit:
    every forced device reconnects, so the reconnect rate follows the forcing pace, in
    bursts of a chunk."""
    burst = f", in bursts of up to {chunk_size:,} as each chunk is forced" if chunk_size else ""
    rate = policy.pace() if policy else None
    limit = policy.max_reconnects_per_second if policy else None
    if rate:
        per_s = rate / 60.0
        text = f"reconnect load about {per_s:,.1f} devices/s (every forced device reconnects){burst}"
        if limit:
            text += f"; kept under the limit of {limit:g}/s by pacing at {rate:,.0f} devices/min"
        if devices:
            text += f"; all forced in {devices / per_s:,.0f} s"
        return text
    n = f"all {devices:,}" if devices else "every device"
    hint = TYPICAL_CONNECT_RATE
    readmit = (f" (at {hint:g} new connections/s the instance needs {devices / hint:,.0f} s to readmit them)"
               if devices and devices > hint else "")
    return (f"unpaced: {n} reconnect at once{readmit}{burst}; max_reconnects_per_second={hint:g} "
            f"paces the run at {hint * 60:,.0f} devices/min to keep reconnects under {hint:g}/s")


class RolloutState:
    """The running side of a :class:`Rollout`: counts, the current rate, the pacing."""

    def __init__(self, policy: Rollout) -> None:
        self.policy = policy
        self.finished = 0
        self.bad = 0
        self.successes = 0
        #: bad devices whose request failed on the network (:data:`TRANSPORT`), by code
        self.unreachable: dict[str, int] = {}
        self._bad_set = ABORT_ON[policy.abort_on]
        self._next = 0.0

    # -- rate ----------------------------------------------------------------------------
    def per_minute(self) -> float | None:
        """The rate in force now (devices per minute), or None when unlimited."""
        p = self.policy
        cap = p.pace()
        if p.ramp_start is None:
            return cap
        rate = p.ramp_start * p.ramp_factor ** (self.successes // p.ramp_every)
        return min(rate, cap) if cap else rate

    def delay_for(self, devices: int, now: float | None = None) -> float:
        """Seconds to wait before sending ``devices`` more, and book them."""
        rate = self.per_minute()
        if not rate:
            return 0.0
        now = time.monotonic() if now is None else now
        start = max(now, self._next)
        self._next = start + devices * 60.0 / rate
        return start - now

    # -- outcomes -------------------------------------------------------------------------
    def record(self, outcomes: list[str], codes: list[str | None] | None = None) -> None:
        """Count a chunk's ``outcomes`` (and, with ``codes``, its network failures)."""
        self.finished += len(outcomes)
        self.bad += sum(1 for o in outcomes if o in self._bad_set)
        self.successes += sum(1 for o in outcomes if o == SUCCESS)
        for o, c in zip(outcomes, codes or (), strict=False):
            if o in self._bad_set and c in TRANSPORT:
                self.unreachable[str(c)] = self.unreachable.get(str(c), 0) + 1

    def abort_reason(self) -> str | None:
        """Why the run must stop now, or None."""
        p = self.policy
        if self.finished < max(p.abort_min, 1):
            return None
        share = self.bad / self.finished
        if share >= p.abort_threshold:
            lost = sum(self.unreachable.values())
            if lost * 2 > self.bad:  # most failures never reached the service: say so
                codes = ", ".join(f"{c} {n:,}" for c, n in sorted(self.unreachable.items(), key=lambda kv: -kv[1]))
                return (f"service unreachable: {lost:,} of {self.finished:,} devices got no connection or no answer "
                        f"({codes}; connection refused or reset, DNS, timeout); abort threshold "
                        f"{p.abort_threshold:.0%}")
            what = "failed or unknown" if p.abort_on == "either" else p.abort_on
            return f"{share:.0%} {what} after {self.finished} devices (threshold {p.abort_threshold:.0%})"
        return None

    def judge(self) -> float:
        """How many more devices the abort criteria can still judge: the fewest further
        failures that would make them stop the run (0 once they have; ``inf`` when no
        number of failures can, e.g. a threshold of 100% after a success)."""
        p = self.policy
        f, b, t = self.finished, self.bad, p.abort_threshold
        need = max(max(p.abort_min, 1) - f, 0)
        if t >= 1:
            share_need = 0 if b >= f else math.inf
        else:
            # smallest k with (b + k) / (f + k) >= t
            share_need = max(math.ceil((t * f - b) / (1 - t) - 1e-9), 0)
        k = max(need, share_need)
        return 0 if self.abort_reason() else max(k, 1)

    async def came_back(self, rows: list[Any]) -> str | None:
        """After the canary: why its forced devices did not come back (``come_back``), or
        None. ``rows``: the canary chunks' outcome rows."""
        p = self.policy
        if p.come_back is None:
            return None
        if p.judge is None:
            return "canary's come-back not judged: this client cannot read the fleet"
        forced = [(i, r["answered_at"] or r["sent_at"] or time.time())
                  for r in rows for i, o in zip(r["ids"], r["outcome"], strict=True) if o == SUCCESS]
        return await p.judge(forced) if forced else None

    def canary_report(self, counts: dict[str, int]) -> CanaryReport:
        devices = sum(counts.values())
        bad = sum(n for o, n in counts.items() if o in self._bad_set)
        return CanaryReport(
            devices=devices,
            counts=dict(counts),
            bad=bad,
            share=bad / devices if devices else 0.0,
            threshold=self.policy.abort_threshold,
            abort_on=self.policy.abort_on,
        )


def with_judge(options: Any, reader: Any, operation: str) -> Any:
    """``options`` (a BatchOptions) with its rollout's come-back judge reading through
    ``reader`` (a client with ``devices()`` and ``device()``); refused for an operation
    whose devices do not reconnect."""
    import dataclasses

    policy = options.rollout
    if not isinstance(policy, Rollout) or policy.come_back is None or policy.judge is not None:
        return options
    resolve(policy, operation)  # refuses come_back where devices do not reconnect
    within = seconds(policy.within, "within")
    judge = judge_from(reader, policy.come_back, within, every=min(max(within / 20, 0.1), 5.0),
                       min_judged=policy.canary or policy.abort_min)
    return dataclasses.replace(options, rollout=dataclasses.replace(policy, judge=judge))


def default_rollout(operation: str) -> Rollout | None:
    """The policy the operation registry gives ``operation`` when the caller passes none
    (None for operations it does not know or that need none)."""
    op = OPERATIONS.get(operation)
    if op is None or op.default_rollout is None:
        return None
    return Rollout(**op.default_rollout)


def resolve(rollout: Rollout | bool | None, operation: str) -> Rollout | None:
    """The policy a run uses: ``rollout`` itself; the registry's default for None; none
    at all for ``False`` (the explicit way to turn the default off)."""
    if rollout is False:
        return None
    if rollout is None or rollout is True:
        return default_rollout(operation)
    if not isinstance(rollout, Rollout):
        raise InputError(f"rollout must be a romakit.Rollout, None (the default) or False (none), got {rollout!r}")
    if rollout.come_back is not None and operation not in RECONNECTS:
        raise InputError(f"come_back={rollout.come_back!r} judges a force-offline's canary by who came back; "
                         f"{operation} devices do not reconnect")
    return rollout
