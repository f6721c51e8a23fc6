"""One engine for every batch operation (see :mod:`romakit.engine.run`).

- :mod:`~romakit.engine.policy`: :class:`RetryPolicy`, :class:`CancelToken`
- :mod:`~romakit.engine.rollout`: :class:`Rollout` (canary, ramp, caps, abort criteria)
- :mod:`~romakit.engine.observer`: :class:`Answer` and the :class:`BatchObserver` hooks
- :mod:`~romakit.engine.options`: the one frozen :class:`BatchOptions`
- :mod:`~romakit.engine.limit`: the :class:`Limiter` interface (:class:`Pace`, ...) the
  engine, the gateways and the fan-out share; :mod:`~romakit.engine.adaptive` finds the
  service's limit
- :mod:`~romakit.engine.client`: :class:`BatchClient`, what the batch machinery needs of a client
- :mod:`~romakit.engine.run`: :func:`run_batch` (a :class:`BatchRun` per call)
- :mod:`~romakit.engine.plan`: :func:`~romakit.engine.plan.plan`, what a run will send (its chunks,
  canary, worst case, fan-out split); :mod:`~romakit.engine.guard`, the confirmation it needs;
  :mod:`~romakit.engine.flow`, the panel's way from preview to run
"""

from romakit.engine.client import BatchClient
from romakit.engine.limit import Limiter, Pace
from romakit.engine.observer import Answer, BatchObserver, SendChunk
from romakit.engine.options import BatchKwargs, BatchOptions, Progress
from romakit.engine.policy import FAILURE_TYPES, CancelToken, RetryPolicy
from romakit.engine.rollout import CanaryReport, Rollout, RolloutState
from romakit.engine.run import BatchRun, chunked, run_batch

__all__ = [
    "FAILURE_TYPES", "Answer", "BatchClient", "BatchKwargs", "BatchObserver", "BatchOptions", "BatchRun",
    "CanaryReport", "CancelToken", "Limiter", "Pace", "Progress", "RetryPolicy", "Rollout", "RolloutState",
    "SendChunk", "chunked", "run_batch",
]
