"""One frozen :class:`BatchOptions`: every knob of a batch run, in one place.

Clients take these as keywords (``link.force_offline(ids, chunk_size=250, rollout=...)``),
check them once with :meth:`BatchOptions.from_kwargs`, fill in their own defaults with
:meth:`BatchOptions.merged`, and hand the one object to the engine.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Hashable, Mapping
from dataclasses import dataclass, fields, replace
from typing import TYPE_CHECKING, Any, TypedDict

from romakit.errors import InputError

if TYPE_CHECKING:  # pragma: no cover
    from romakit.engine.observer import BatchObserver
    from romakit.engine.policy import CancelToken, RetryPolicy
    from romakit.engine.rollout import Rollout

#: ``progress=``: True/False for a bar, None for "if someone is watching", or a
#: callable ``(devices_done, devices_total)`` called after every chunk
Progress = bool | None | Callable[[int, int], None]


class BatchKwargs(TypedDict, total=False):
    """The keywords every batch operation takes (see :class:`BatchOptions`)."""

    chunk_size: int
    concurrency: int
    retry: RetryPolicy
    progress: Progress
    cancel: CancelToken
    names: Mapping[Hashable, str]
    observer: BatchObserver
    op_id: str
    parent_op_id: str
    relation: str
    rollout: Rollout | bool | None
    settled: Collection[Hashable]
    timeout: float
    adaptive: bool


@dataclass(frozen=True)
class BatchOptions:
    """How one batch runs. ``None`` means "the client's (or engine's) default".

    - ``chunk_size``: devices per request; ``concurrency``: requests in flight.
    - ``retry``: :class:`~romakit.RetryPolicy`; ``rollout``: :class:`~romakit.Rollout`.
    - ``progress``: a bar (True/False/None = if watched) or ``callable(done, total)``.
    - ``cancel``: a :class:`~romakit.CancelToken` to stop between chunks.
    - ``names``: device names for the rows; ``op_id``: this run's id (else a new one).
    - ``parent_op_id`` and ``relation`` (``"retry"``, ``"resume"``; ``"restore"``: it puts
      back what that deletion removed): the run this one continues, for the journal.
    - ``observer``: the engine's hooks (the journal unless given).
    - ``rollout``: None takes the operation registry's default policy, ``False`` none.
    - ``settled``: ids read as already done before the run (reconcile): they end
      ``success`` settled by ``read`` and are never sent.
    - ``timeout``: seconds to wait for each answer (the gateway's; LINK has its own).
    - ``adaptive``: find the service's limit (:mod:`romakit.engine.adaptive`): on unless False.
    - ``rate``, ``attempt_timeout``: set by the client (request starts per second; a
      hard bound on each try).
    """

    chunk_size: int | None = None
    concurrency: int | None = None
    retry: RetryPolicy | None = None
    progress: Progress = None
    cancel: CancelToken | None = None
    names: Mapping[Hashable, str] | None = None
    observer: BatchObserver | None = None
    op_id: str | None = None
    parent_op_id: str | None = None
    relation: str | None = None
    rollout: Rollout | bool | None = None
    settled: Collection[Hashable] | None = None
    timeout: float | None = None
    rate: float | None = None
    attempt_timeout: float | None = None
    adaptive: bool | None = None

    def __post_init__(self) -> None:
        for name in ("chunk_size", "concurrency"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
                raise InputError(f"{name} must be an int >= 1, got {v!r}")
        for name in ("timeout", "rate", "attempt_timeout"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0):
                raise InputError(f"{name} must be a number > 0, got {v!r}")
        if self.adaptive is not None and not isinstance(self.adaptive, bool):
            raise InputError(f"adaptive must be True or False, got {self.adaptive!r}")
        if self.relation is not None and self.relation not in ("retry", "resume", "child", "restore"):
            raise InputError(f"relation must be 'retry', 'resume', 'child' or 'restore', got {self.relation!r}")

    @classmethod
    def from_kwargs(cls, kwargs: Mapping[str, Any], *, refuse: tuple[str, ...] = (), where: str = "") -> BatchOptions:
        """The options named by ``kwargs``; an unknown (or ``refuse``d) keyword is an
        InputError naming it and the known ones, raised before anything is sent."""
        known = {f.name for f in fields(cls)} - set(refuse)
        unknown = sorted(set(kwargs) - known)
        if unknown:
            at = f"{where}: " if where else ""
            raise InputError(f"{at}unknown option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        return cls(**kwargs)

    def merged(self, **defaults: Any) -> BatchOptions:
        """These options with every ``None`` field taken from ``defaults``."""
        fill = {k: v for k, v in defaults.items() if getattr(self, k) is None and v is not None}
        return replace(self, **fill) if fill else self
