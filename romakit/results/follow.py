"""Following a force-offline: which forced devices came back, and when.

A forced device's MQTT client reconnects by itself; the purpose of the action is
usually that it comes back. :func:`follow` polls the service for the devices a result
forced (its ``success`` rows) until all are back or ``within`` has passed, and judges
"back" by the service's own record: a device online again, or whose
``last_login_datetime`` is after the moment it was forced (its row's ``answered_at``,
else ``sent_at``, on the service's clock), counts as back even if it went offline again.

Each cycle reads only what answers the question for the devices still pending, at a
cost that shrinks with them, never with the fleet (:mod:`romakit.results.polling`;
:class:`Reads` counts it): one ShowDevice per pending device while that is cheaper,
else the offline set (of the forced devices' products when smaller); a device that
left the offline set counts as back at that read's time (``timed_by`` ``left``) unless
its own record was cheap to read.

The client is any reader with ``devices(**filters)`` and ``device(id)`` (a LinkClient,
its async twin, or a stand-in), so this layer needs no client.
"""

from __future__ import annotations

import inspect
import math
import re
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Protocol

from romakit.errors import InputError
from romakit.outcomes import SUCCESS
from romakit.results.polling import PAGE, SHOW_COST, Poll, Reads, run_follow

__all__ = ["PAGE", "SHOW_COST", "Follow", "Poll", "Reads", "ComeBack", "follow", "judge_from", "run_follow", "seconds"]

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from matplotlib.figure import Figure

    from romakit.results.result import BatchResult

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


class Reader(Protocol):
    """What follow reads through: the fleet listing and one device's details."""

    def devices(self, **filters: Any) -> Any: ...

    def device(self, device_id: Any) -> Any: ...


def seconds(value: float | str, name: str = "within") -> float:
    """``"10m"``, ``"5s"``, ``"250ms"``, ``"1h"`` or a number of seconds -> seconds (> 0)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        s = float(value)
    else:
        m = _DURATION.match(str(value))
        if not m:
            raise InputError(f"{name}={value!r}: expected seconds or a duration like '90s', '10m', '1h'")
        s = float(m.group(1)) * _UNIT[m.group(2)]
    if not s > 0 or math.isinf(s):
        raise InputError(f"{name}={value!r} must be a positive duration")
    return s


def service_skew(client: Any) -> float:
    """Seconds the service's clock is ahead of ours, as the client last read it from an
    answer's ``Date`` (1 s resolution: under 2 s counts as none)."""
    skew = float(getattr(client, "clock_skew", None) or 0.0)
    return skew if abs(skew) >= 2.0 else 0.0


def forced_times(result: BatchResult, skew_s: float = 0.0, *, column: str = "answered_at") -> dict[Any, int]:
    """{device id: epoch ms it was forced, on the service's clock} for the result's
    successes (``answered_at``, else ``sent_at``, shifted by ``skew_s``; ``column="sent_at"``:
    when its request went out)."""
    import numpy as np

    f = result.frame
    ok = (f["outcome"] == SUCCESS).to_numpy()
    when = f[column].where(f[column].notna(), f["sent_at"])[ok]
    ms = (when.astype("int64").to_numpy() // 1_000_000 + int(skew_s * 1000)).astype(np.int64)
    return dict(zip(result._typed(f["device_id"].to_numpy()[ok]), ms.tolist(), strict=True))


def follow(result: BatchResult, client: Any, *, within: float | str = "10m", every: float | str = "5s",
           on_cycle: Callable[[Any], Any] | None = None) -> Any:
    """See ``BatchResult.follow``: a :class:`Follow`, or a coroutine for an async client."""
    from romakit import _runner

    w, e = seconds(within, "within"), seconds(every, "every")
    if getattr(client, "devices", None) is None or getattr(client, "device", None) is None:
        raise InputError(f"follow() needs a LinkClient (devices() and device()), got {type(client).__name__}")
    if result.operation != "force_offline":
        raise InputError(f"follow() follows a force_offline, not {result.operation}")
    skew = service_skew(client)
    forced = forced_times(result, skew)
    sent = forced_times(result, skew, column="sent_at")

    async def go(reader: Any) -> Follow:
        state = await run_follow(forced, reader, within=w, every=e, on_cycle=on_cycle, sent=sent)
        return Follow.from_state(state, result, w, skew)

    if inspect.iscoroutinefunction(client.devices):
        return go(client)
    aio = getattr(client, "aio", None)
    if aio is not None and inspect.iscoroutinefunction(getattr(aio, "devices", None)):
        return _runner.run(go(aio))
    return _runner.run(go(client))


def _site(tags: Any) -> Any:
    if isinstance(tags, (list, tuple)):
        for t in tags:
            if isinstance(t, str) and t.startswith("site"):
                return t.split(":", 1)[-1].split("=", 1)[-1]
    return None


class Follow:
    """Who of a force-offline's devices came back, and when (:meth:`BatchResult.follow`).

    ``frame``: one row per followed device (``device_id``, ``forced_at``, ``back_at``,
    ``seconds_to_return``, ``timed_by``, ``status`` last read, ``product_name``,
    ``gateway``, ``site``); ``reads``: what each polling cycle cost. ``timed_by`` says
    where ``back_at`` comes from: ``login`` (the service's login time), ``online`` (read
    online without a newer login stamp: the read's time) or ``left`` (it left the offline
    set between two reads: the later read's time, so at most ``every`` late).
    """

    def __init__(self, frame: pd.DataFrame, *, op_id: str, within: float, reads: Reads, started: float) -> None:
        self.frame = frame
        self.op_id = op_id
        self.within = within
        self.reads = reads
        self.started = started

    @classmethod
    def from_state(cls, state: Poll, result: BatchResult, within: float, skew_s: float = 0.0) -> Follow:
        import pandas as pd

        ids = list(state.forced)
        forced = pd.to_datetime([state.forced[i] - int(skew_s * 1000) for i in ids], unit="ms", utc=True)
        back_ms = [state.back.get(i) for i in ids]
        back = pd.to_datetime(pd.Series([math.nan if b is None else b - int(skew_s * 1000) for b in back_ms],
                                        dtype="float64"), unit="ms", utc=True)
        secs = (back - pd.Series(forced)).dt.total_seconds()
        seen = [state.seen.get(i, {}) for i in ids]
        status = ["back" if i in state.back else ("gone" if i in state.gone else s.get("online_status") or "offline")
                  for i, s in zip(ids, seen, strict=True)]
        frame = pd.DataFrame({
            "device_id": ids, "forced_at": forced, "back_at": back,
            "seconds_to_return": pd.Series(secs, dtype="float64").clip(lower=0.0),
            "timed_by": pd.Categorical([state.back_by.get(i) for i in ids], categories=["login", "online", "left"]),
            "status": status,
            "device_name": [s.get("device_name") for s in seen],
            "product_name": [s.get("product_name") for s in seen],
            "gateway": [s.get("parent_device_name") for s in seen],
            "site": [_site(s.get("tags")) for s in seen],
        })
        started = state.reads.cycles[0]["at"] if state.reads.cycles else time.time()
        return cls(frame, op_id=result.op_id, within=within, reads=state.reads, started=started)

    # -- reading ----------------------------------------------------------------------
    @property
    def back(self) -> int:
        return int(self.frame["back_at"].notna().sum())

    def __len__(self) -> int:
        return len(self.frame)

    def curve(self, points: int = 50) -> pd.DataFrame:
        """Share back over time: ``seconds`` after the first force, ``back`` (devices)
        and ``share``; one row per step, at most ``points`` rows plus the end."""
        import numpy as np
        import pandas as pd

        n = len(self.frame)
        if not n:
            return pd.DataFrame({"seconds": [], "back": [], "share": []})
        t0 = self.frame["forced_at"].min()
        times = np.sort(((self.frame["back_at"].dropna() - t0).dt.total_seconds()).clip(lower=0).to_numpy())
        end = max(self.within, float(times[-1]) if len(times) else 0.0)
        grid = np.unique(np.concatenate([np.linspace(0.0, end, max(points, 2)), times[-1:]]))
        back = np.searchsorted(times, grid, side="right")
        return pd.DataFrame({"seconds": grid.round(3), "back": back.astype("int64"), "share": (back / n).round(4)})

    def stragglers(self) -> pd.DataFrame:
        """The devices not back, with what the fleet listing said of them."""
        cols = ["device_id", "device_name", "status", "product_name", "gateway", "site", "forced_at"]
        return self.frame.loc[self.frame["back_at"].isna(), cols].reset_index(drop=True)

    def summary(self) -> dict[str, Any]:
        """Counts and time-to-return percentiles (seconds) of the devices back."""
        s = self.frame["seconds_to_return"].dropna()
        q = s.quantile([0.5, 0.9, 0.99]) if len(s) else None
        return {
            "followed": len(self.frame), "back": int(len(s)), "not_back": int(len(self.frame) - len(s)),
            "gone": int((self.frame["status"] == "gone").sum()),
            "share_back": round(len(s) / len(self.frame), 4) if len(self.frame) else 1.0,
            "p50_s": None if q is None else round(float(q[0.5]), 3),
            "p90_s": None if q is None else round(float(q[0.9]), 3),
            "p99_s": None if q is None else round(float(q[0.99]), 3),
            "timed_by_login": int((self.frame["timed_by"] == "login").sum()) if "timed_by" in self.frame else None,
            "within_s": self.within, "cycles": len(self.reads.cycles),
            "requests": int(sum(c["requests"] for c in self.reads.cycles)),
        }

    def plot(self) -> Figure:
        """The reconnect curve as a Figure (no pyplot state)."""
        from matplotlib.figure import Figure

        c = self.curve(200)
        fig = Figure(figsize=(6.0, 2.6), layout="constrained")
        ax = fig.add_subplot()
        ax.step(c["seconds"], c["share"] * 100, where="post", color="#2a7")
        ax.set_ylim(0, 100)
        ax.set_xlabel("seconds after the force")
        ax.set_ylabel("% back")
        s = self.summary()
        ax.set_title(f"op {self.op_id}: {s['back']:,} of {s['followed']:,} back within {_dur(self.within)}", fontsize=10)
        ax.spines[["top", "right"]].set_visible(False)
        return fig

    def text(self, width: int = 40, top: int = 20) -> str:
        """A compact terminal view: the curve as bars and the first stragglers (escaped)."""
        from romakit.textsafe import terminal

        s = self.summary()
        lines = [f"followed {s['followed']:,} forced devices of op {terminal(self.op_id)} for {_dur(self.within)}: "
                 f"{s['back']:,} back ({s['share_back']:.0%}), {s['not_back']:,} not back"
                 + (f"; time to return p50 {s['p50_s']}s p90 {s['p90_s']}s p99 {s['p99_s']}s" if s["back"] else "")]
        c = self.curve(8)
        c = c[~c["seconds"].round(1).duplicated(keep="last")]
        for sec, share in zip(c["seconds"], c["share"], strict=True):
            lines.append(f"  {sec:>8.1f}s {'#' * round(share * width):<{width}} {share:>4.0%}")
        st = self.stragglers()
        if len(st):
            lines.append(f"not back ({len(st):,}):")
            for row in st.head(top).itertuples(index=False):
                lines.append("  " + "  ".join(terminal(_cell(v))
                                              for v in (row.device_id, row.device_name, row.status, row.product_name,
                                                        row.gateway, row.site)))
            if len(st) > top:
                lines.append(f"  ... and {len(st) - top:,} more")
        return "\n".join(lines)

    def __repr__(self) -> str:
        s = self.summary()
        return (f"<Follow op={self.op_id}: {s['back']:,}/{s['followed']:,} back within {_dur(self.within)}"
                f", p50 {s['p50_s']}s, {s['not_back']:,} not back>")


def _cell(v: Any) -> str:
    import pandas as pd

    return "" if v is None or (not isinstance(v, (list, tuple)) and pd.isna(v)) else str(v)


def _dur(s: float) -> str:
    return f"{s / 60:g}m" if s >= 60 and s % 60 == 0 else f"{s:g}s"


def come_back_reason(fol: Follow, share: float) -> str | None:
    """Why a canary failed its come-back criterion, or None when enough came back."""
    n = len(fol)
    if not n or fol.back / n >= share:
        return None
    return f"canary did not come back: {fol.back:,} of {n:,} back within {_dur(fol.within)}, needed {share:.0%}"


class ComeBack:
    """A force-offline rollout judged by who came back (``Rollout(come_back=, within=)``).

    Called with the canary's ``(id, forced epoch s)`` pairs, it follows them for up to
    ``within`` and says why they did not come back, or None. Then, while the rest of the
    run goes out, the engine adds each later chunk's forced devices (:meth:`add`) and calls
    :meth:`check` every ``every`` seconds: one polling cycle (its reads shrink with the
    devices still offline), then the abort criterion on the devices judged so far: back,
    or forced more than ``within`` ago and not back. Once at least ``min_judged`` are
    judged, a share back under ``share`` stops the run, as the abort criteria do for
    failed answers.
    """

    def __init__(self, reader: Any, share: float, within: float, every: float, *, min_judged: int = 1) -> None:
        self.reader, self.share, self.within, self.every = reader, share, within, every
        self.min_judged = max(int(min_judged), 1)
        self.skew = service_skew(reader)
        #: the later chunks' forced devices, followed together (None until the first is added)
        self.poll: Poll | None = None
        self._cycles = 0

    async def __call__(self, forced: Iterable[tuple[Any, float]]) -> str | None:
        import pandas as pd

        pairs = {i: int((t + self.skew) * 1000) for i, t in forced}
        state = await run_follow(pairs, self.reader, within=self.within, every=self.every)
        frame = pd.DataFrame({"back_at": [state.back.get(i) for i in pairs]})
        fol = Follow(frame, op_id="canary", within=self.within, reads=state.reads, started=time.time())
        return come_back_reason(fol, self.share)

    def add(self, forced: Iterable[tuple[Any, float]]) -> None:
        """Follow these forced devices too (``(id, forced epoch s)``, our clock)."""
        if self.poll is None:
            self.poll = Poll({}, self.reader)
        for i, t in forced:
            self.poll.forced[i] = int((t + self.skew) * 1000)
            self.poll.pending.add(i)

    def counts(self, now: float | None = None) -> tuple[int, int, int]:
        """(followed, back, late: forced more than ``within`` ago and not back)."""
        p = self.poll
        if p is None:
            return 0, 0, 0
        due = int(((time.time() if now is None else now) + self.skew - self.within) * 1000)
        late = sum(1 for i in p.pending if p.forced[i] <= due)
        return len(p.forced), len(p.back), late

    async def check(self) -> str | None:
        """One polling cycle over the devices still pending, then why the run must stop
        (too few of the devices judged came back), or None."""
        p = self.poll
        if p is None or not p.pending:
            return None
        await p.cycle(self._cycles)
        self._cycles += 1
        followed, back, late = self.counts()
        judged = back + late
        if judged < self.min_judged or back >= self.share * judged:
            return None
        return (f"forced devices did not come back: {late:,} of {judged:,} judged are not back within "
                f"{_dur(self.within)} ({back / judged:.0%} back, needed {self.share:.0%}; "
                f"{followed:,} followed)")


def judge_from(reader: Any, share: float, within: float, every: float, *, min_judged: int = 1) -> ComeBack:
    """The come-back judge of a rollout reading through ``reader`` (:class:`ComeBack`)."""
    return ComeBack(reader, share, within, every, min_judged=min_judged)
