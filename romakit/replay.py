"""Frames and runs from the journal: ``rk.journal()`` lists past operations (or rebuilds
one), ``rk.resume(op_id, client)`` finishes an interrupted one.

The journal (:mod:`romakit.store`) holds no credentials, so a resume is given a client;
the operation registry (:mod:`romakit.operations`) says which kind, and the client
must act on the recorded target.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any

from romakit.engine.rollout import Gate, Rollout
from romakit.errors import InputError
from romakit.operations import check_client
from romakit.store import reader as rd
from romakit.store.schema import path

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from romakit.results import BatchResult


def journal(op_id: str | None = None, *, with_resumes: bool = False) -> pd.DataFrame | BatchResult:
    """Past operations, oldest first, as a DataFrame (``op_id``, operation, target,
    requested, devices per outcome, state, ...); or, given ``op_id`` (a unique prefix
    will do), that operation's :class:`BatchResult` rebuilt from the journal.

    ``state`` is ``finished``, ``stopped`` (cancel/abort), ``running`` or ``interrupted``
    (its process is gone): an interrupted operation's unanswered devices show as
    ``unknown`` (sent) or ``skipped`` (never sent) until ``rk.resume`` completes it.
    ``with_resumes=True`` gives the operation as completed by its resumes so far.
    """
    import pandas as pd

    db = rd.reader()
    if op_id is not None:
        if db is None:
            raise InputError(f"no operation {op_id!r}: the journal at {path()} does not exist yet")
        try:
            op = rd.load(db, op_id)
            return rd.completed(db, op, None) if with_resumes else rd.rebuild(db, op)
        finally:
            db.close()
    if db is None:
        return pd.DataFrame(columns=rd.LIST_COLUMNS)
    try:
        return rd.listing(db)
    finally:
        db.close()


def resume(op_id: str, client: Any, *, force: bool = False, **options: Any) -> Any:
    """Finish an interrupted (or stopped) operation: send only the devices whose chunk
    never got an answer, as a new operation linked to ``op_id`` (relation ``resume``),
    and return the completed :class:`BatchResult`: every requested id exactly once, the
    journal's answered rows plus the new ones.

    ``client`` carries the credentials the journal never holds: a LinkClient for the
    same instance (force-offline, delete) or a connected Gateway for the same gateway
    (child deletion); anything else is refused. With an async client this returns a
    coroutine. ``options`` go to the client's method (``chunk_size=``, ...). Resuming an
    operation that is still running is refused (``force=True`` overrides, e.g. when its
    process id was reused); resuming a complete one sends nothing.

    The resume keeps the operation's rollout policy (:func:`recorded_rollout`) unless
    ``rollout=`` is given. A deletion reads the devices first (:mod:`romakit.reconcile`):
    those already gone end ``success`` settled by ``read`` and are not sent again.
    """
    rec, todo = rd.pending_ids(op_id)
    full_id = rec["op_id"]
    op = check_client(client, rec["operation"], rec["target"], rec["client"])
    if op.takes != "ids":
        raise InputError(f"{op.name} cannot be resumed from the journal: it does not keep what each device was sent")
    if rec["state"] == "running" and not force:
        raise InputError(f"operation {full_id} is still running (process {rec['pid']}); resume it once it has stopped")
    endpoint = (rec["client"] or {}).get("endpoint")
    if endpoint and client.identity().get("endpoint") not in (None, endpoint):
        rd.log.warning("resuming on %s although the operation ran through %s (same instance)",
                       client.identity().get("endpoint"), endpoint)

    def complete(new: BatchResult | None) -> BatchResult:
        db = rd.reader()
        assert db is not None
        try:
            return rd.completed(db, rd.load(db, full_id), new)
        finally:
            db.close()

    if not todo:
        return complete(None)
    if "rollout" not in options:
        options["rollout"] = recorded_rollout(rec)
    call = getattr(client, op.name)(todo, parent_op_id=full_id, relation="resume", **options)
    if inspect.iscoroutine(call):
        async def finish() -> BatchResult:
            return complete(await call)

        return finish()
    return complete(call)


def recorded_rollout(rec: dict[str, Any], gate: Gate | None = None) -> Rollout | bool | None:
    """The rollout policy to resume the operation ``rec`` (``pending_ids``' record) with:
    the one it ran with, its canary cut to the canary devices not answered yet (a canary
    already answered is not sent again), ``gate`` as its gate; ``False`` when it ran
    without one; None (the registry's default) when the journal predates the column."""
    data = rec.get("rollout")
    if data is None or data is False:
        return data
    left = max(int(data.get("canary") or 0) - int(rec.get("answered") or 0), 0)
    return Rollout.from_dict({**data, "canary": left}, gate=gate if left else None)


__all__ = ["journal", "recorded_rollout", "resume"]
