"""Frames and runs from the journal: ``rk.journal()`` lists past operations (or rebuilds
one), ``rk.resume(op_id, client)`` finishes an interrupted one.

The journal (:mod:`romakit.store`) holds no credentials, so a resume is given a client;
the operation registry (:mod:`romakit.operations`) says which kind, and the client
must act on the recorded target. A resume holds the operation's lease while it sends
(:mod:`romakit.store.lease`): of two engineers resuming one operation at once, one sends
and the other is told who holds it and since when.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any

from romakit.engine.rollout import Gate, Rollout
from romakit.errors import InputError
from romakit.operations import RESTORES, check_client
from romakit.store import reader as rd
from romakit.store.chain import net_state
from romakit.store.journal import Journal
from romakit.store.lease import take
from romakit.store.listing import frame, listing
from romakit.store.snapshot import deletion_of, of_deletion
from romakit.store.target import connect

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from romakit.results import BatchResult
    from romakit.store.reader import OperationRecord


def journal(op_id: str | None = None, *, with_resumes: bool = True, step: bool = False, who: Any = None,
            since: Any = None, until: Any = None, target: Any = None, operation: Any = None, state: Any = None,
            outcome: Any = None, url: Any = None) -> pd.DataFrame | BatchResult:
    """Past operations, oldest first, as a DataFrame (``op_id``, operation, target,
    requested, devices per outcome, state, ..., ``who`` started it as ``user@host``,
    romakit ``version``, ``policy``); or, given ``op_id`` (a unique prefix will do), that
    operation's :class:`BatchResult` rebuilt from the journal.

    An operation that was retried or resumed (or is a retry or resume itself) is shown
    as its whole chain's net state, whichever of its op ids is given: a
    :class:`~romakit.store.chain.ChainResult`, every device once with its latest
    outcome, the row's ``op_id`` naming the operation that settled it (``.settled_in``),
    ``.steps`` listing the operations and ``.describe()`` saying so. ``step=True``
    gives the one operation's own rows (``with_resumes=False`` too).

    ``state`` is ``finished``, ``stopped`` (cancel/abort), ``running`` or ``interrupted``
    (its process is gone; on another host: its lease expired): an interrupted
    operation's unanswered devices show as ``unknown`` (sent) or ``skipped`` (never
    sent) until ``rk.resume`` completes it (its chain's net state then says so).

    Filters (each takes one value or a list): ``who`` (``"alice"``, ``"alice@host"`` or
    ``"@host"``), ``since``/``until`` (a datetime, an ISO string in local time, epoch
    seconds, or an age like ``"2h"``, ``"7d"``), ``target``, ``operation``, ``state``,
    ``outcome`` (operations with at least one device ending so, e.g. ``"failed"``).
    ``url`` reads another journal than the one in effect (a postgresql:// URL or a file,
    or a client's ``journal``).
    """
    store = Journal.of(url).resolved()
    if op_id is not None:
        with rd.existing(op_id, store.where) as db:
            result = rd.rebuild(db, rd.load(db, op_id)) if step or not with_resumes else net_state(db, op_id)
            if result.operation in RESTORES:  # a deletion: what it removed, as read before each chunk
                result.snapshot = of_deletion(db, result.op_id)
            elif (deletion := deletion_of(db, result.op_id)) is not None:  # a restore: what it was sent
                records = of_deletion(db, deletion)
                result.inputs = {i: records[i] for i in result.frame["device_id"].astype(str) if i in records}
        result.journal = store
        return result
    db = store.reader()
    filters = {"who": who, "since": since, "until": until, "target": target, "operation": operation}
    if db is None:
        return frame([])
    with db:
        return listing(db, state=state, outcome=outcome, **filters)


def resume(op_id: str, client: Any, *, force: bool = False, **options: Any) -> Any:
    """Finish an interrupted (or stopped) operation: send only the devices that never got
    an answer (their chunk's was lost, or they were ``skipped``: never sent), as a new
    operation linked to ``op_id`` (relation ``resume``),
    and return the completed :class:`BatchResult`: every requested id exactly once, the
    journal's answered rows plus the new ones.

    ``client`` carries the credentials the journal never holds: a LinkClient for the
    same instance (force-offline, delete) or a connected Gateway for the same gateway
    (child deletion); anything else is refused. With an async client this returns a
    coroutine. ``options`` go to the client's method (``chunk_size=``, ...).

    The operation is read from the client's journal (``client.journal``: the one its
    connection's profile names; else the one in effect). Works from any process or
    machine that reaches the journal. Refused with an
    InputError naming the holder and since when: an operation still running, or one
    another resume is finishing right now (``force=True`` takes over, e.g. when a
    process id was reused or a crashed host's lease has not expired yet). Resuming a
    complete one sends nothing.

    The resume keeps the operation's rollout policy (:func:`recorded_rollout`) unless
    ``rollout=`` is given. A deletion reads the devices first (:mod:`romakit.reconcile`):
    those already gone end ``success`` settled by ``read`` and are not sent again.
    """
    store = Journal.of(getattr(client, "journal", None)).resolved()
    where = store.where
    with rd.existing(op_id, where) as db:
        op = rd.load(db, op_id)
        rec = rd.record_of(op)
        full_id = rec.op_id
        kind = check_client(client, rec.operation, rec.target, rec.client)
        if kind.takes not in ("ids", "snapshot"):
            raise InputError(f"{kind.name} cannot be resumed from the journal: it does not keep what each device was sent")
        if rec.state == "running" and not force:
            raise InputError(f"operation {full_id} is still running (process {rec.pid} on {rec.hostname}, "
                             f"started by {rec.os_user}); resume it once it has stopped")
        lease = take(db, where, full_id, "resume", force=force)
        try:  # what is left is read under the lease: a resume that finished first leaves nothing
            rec, todo = rd.pending_ids(full_id, db)
            if kind.takes == "snapshot" and todo:  # a restore: what to send is the deletion's snapshot
                options["snapshot"] = _snapshot_for(db, full_id, todo)
        except BaseException:
            lease.release(db)
            raise
    endpoint = (rec.client or {}).get("endpoint")
    if endpoint and client.identity().get("endpoint") not in (None, endpoint):
        rd.log.warning("resuming on %s although the operation ran through %s (same instance)",
                       client.identity().get("endpoint"), endpoint)

    def complete(new: BatchResult | None) -> BatchResult:
        try:
            with connect(where) as c:
                done = rd.completed(c, rd.load(c, full_id), new)
            done.journal = store
            return done
        finally:
            lease.release()

    if not todo:
        return complete(None)
    if "rollout" not in options:
        options["rollout"] = recorded_rollout(rec)
    try:
        call = getattr(client, kind.name)(todo, parent_op_id=full_id, relation="resume", **options)
    except BaseException:
        lease.release()
        raise
    if inspect.iscoroutine(call):
        async def finish() -> BatchResult:
            try:
                new = await call
            except BaseException:
                lease.release()
                raise
            return complete(new)

        return finish()
    return complete(call)


def _snapshot_for(db: Any, op_id: str, todo: list) -> dict[str, dict[str, Any]]:
    """The records a resumed restore ``op_id`` sends for ``todo``: its deletion's snapshot."""
    deletion = deletion_of(db, op_id)
    records = of_deletion(db, deletion) if deletion else {}
    missing = [str(i) for i in todo if str(i) not in records]
    if missing:
        raise InputError(f"operation {op_id}: no snapshot record of {len(missing)} device(s) "
                         f"({', '.join(missing[:5])}) in its deletion {deletion}; nothing sent")
    return {str(i): records[str(i)] for i in todo}


def recorded_rollout(rec: OperationRecord, gate: Gate | None = None) -> Rollout | bool | None:
    """The rollout policy to resume the operation ``rec`` (``pending_ids``' record) with:
    the one in force when it ran (the journal's ``policy``), its canary cut to the canary
    devices not answered yet (a canary already answered is not sent again), ``gate`` as
    its gate; ``False`` when it ran without one; None (the registry's default) when the
    journal did not record it."""
    data = rec.rollout
    if data is None or data is False:
        return data
    left = max(int(data.get("canary") or 0) - rec.answered, 0)
    return Rollout.from_dict({**data, "canary": left}, gate=gate if left else None)


__all__ = ["journal", "recorded_rollout", "resume"]
