"""``RolloutForm``: the rollout policy with its defaults, editable before a run."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import ipywidgets as w

from romakit.engine.rollout import ABORT_ON, Gate, Rollout
from romakit.errors import InputError

_WIDE = {"style": {"description_width": "200px"}, "layout": w.Layout(width="360px")}  # labels in full


class RolloutForm:
    """Fields for every :class:`~romakit.Rollout` setting, starting from its defaults.

    ``enabled`` off means no policy at all. ``policy(gate=...)`` builds the Rollout
    (raising :class:`InputError` with the bad fields named); ``on_change(cb)`` calls
    ``cb()`` whenever a field changes. Drivable from Python: set ``form.canary.value``.
    """

    def __init__(self, policy: Rollout | None = None) -> None:
        d = Rollout()
        self.enabled = w.Checkbox(description="Use a rollout policy", indent=False, value=False)
        self.canary = w.BoundedIntText(description="Canary devices", min=0, max=10**9, value=d.canary, **_WIDE)
        self.wait_for_me = w.Checkbox(description="after the canary, wait for me to continue", indent=False, value=True)
        self.max_per_minute = w.BoundedFloatText(description="Max devices/min (0: none)", min=0, max=1e9, value=0, **_WIDE)
        self.ramp_start = w.BoundedFloatText(description="Ramp from /min (0: off)", min=0, max=1e9, value=0, **_WIDE)
        self.ramp_factor = w.BoundedFloatText(description="Ramp factor", min=1, max=100, value=d.ramp_factor, **_WIDE)
        self.ramp_every = w.BoundedIntText(description="Raise after successes", min=1, max=10**9, value=d.ramp_every, **_WIDE)
        self.abort_on = w.Dropdown(description="Abort on", options=sorted(ABORT_ON), value=d.abort_on, **_WIDE)
        self.abort_threshold = w.BoundedFloatText(
            description="Abort at share", min=0.001, max=1.0, step=0.01, value=d.abort_threshold, **_WIDE
        )
        self.abort_min = w.BoundedIntText(description="...after devices", min=0, max=10**9, value=d.abort_min, **_WIDE)
        self.fields = w.VBox(
            [
                w.HBox([self.canary, self.wait_for_me]),
                w.HBox([self.max_per_minute, self.ramp_start]),
                w.HBox([self.ramp_factor, self.ramp_every]),
                w.HBox([self.abort_on, self.abort_threshold, self.abort_min]),
            ]
        )
        self.widget = w.VBox([self.enabled, self.fields])
        self._callbacks: list[Callable[[], None]] = []
        self._quiet = False
        if policy is not None:
            self.set(policy)
        self._show_fields()
        for field in (self.enabled, self.canary, self.wait_for_me, self.max_per_minute, self.ramp_start,
                      self.ramp_factor, self.ramp_every, self.abort_on, self.abort_threshold, self.abort_min):
            field.observe(self._changed, "value")

    def set(self, policy: Rollout | None) -> None:
        """Show ``policy`` in the fields (None: switch the policy off)."""
        self._quiet = True
        try:
            self.enabled.value = policy is not None
            if policy is not None:
                self.canary.value = policy.canary
                self.max_per_minute.value = policy.max_per_minute or 0
                self.ramp_start.value = policy.ramp_start or 0
                self.ramp_factor.value = policy.ramp_factor
                self.ramp_every.value = policy.ramp_every
                self.abort_on.value = policy.abort_on
                self.abort_threshold.value = policy.abort_threshold
                self.abort_min.value = policy.abort_min
        finally:
            self._quiet = False
            self._show_fields()

    def policy(self, gate: Gate | None = None) -> Rollout | None:
        """The Rollout the fields describe (``gate`` used when "wait for me" is ticked)."""
        if not self.enabled.value:
            return None
        return Rollout(
            canary=int(self.canary.value),
            max_per_minute=float(self.max_per_minute.value) or None,
            ramp_start=float(self.ramp_start.value) or None,
            ramp_factor=float(self.ramp_factor.value),
            ramp_every=int(self.ramp_every.value),
            abort_on=self.abort_on.value,
            abort_threshold=float(self.abort_threshold.value),
            abort_min=int(self.abort_min.value),
            gate=gate if self.wait_for_me.value and self.canary.value else None,
        )

    def on_change(self, callback: Callable[[], None]) -> None:
        self._callbacks.append(callback)

    def _show_fields(self) -> None:
        self.fields.layout.display = "" if self.enabled.value else "none"

    def _changed(self, _change: Any) -> None:
        self._show_fields()
        if self._quiet:
            return
        for cb in list(self._callbacks):
            cb()

    def __repr__(self) -> str:
        try:
            p = self.policy()
        except InputError as e:
            return f"<RolloutForm: invalid ({e})>"
        return f"<RolloutForm: {p.describe() if p else 'no rollout policy'}>"
