"""What an :class:`~romakit.widgets.ActionPanel` stages besides a run of the picked
devices (a retry, a resume), how it sends a plan, and what it does after a run. Plain
functions of what they are given: the panel composes them."""

from __future__ import annotations

import html
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from romakit.errors import InputError, TakeoverRefused
from romakit.operations import Operation, check_client, operation
from romakit.outcomes import OUTCOMES, SKIPPED, SUCCESS

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from romakit.engine import CancelToken
    from romakit.results import BatchResult
    from romakit.widgets.picker import DevicePicker
    from romakit.widgets.preview import Plan

log = logging.getLogger("romakit.widgets")

#: what the panel's rollout section says when no policy is in force
NO_POLICY = ("<i>No rollout policy: no canary, no abort criteria, no slow start; every chunk is sent as fast as "
             "the client allows.</i>")


def retry_of(client: Any, result: BatchResult) -> tuple[Operation, list, dict]:
    """``(operation, ids, names)`` of a retry of ``result``'s transient failures with
    ``client``; InputError when there is none or the client cannot carry it."""
    op = check_client(client, result.operation, result.target)
    ids = result.retry_ids()
    if not ids:
        raise InputError("nothing to retry: no failure with a transient cause")
    names = {i: n for i, n in zip(result.ids(), result.frame["device_name"], strict=True) if isinstance(n, str)}
    return op, ids, names


def resume_of(client: Any, op_id: str) -> tuple[Operation, dict[str, Any], list]:
    """``(operation, journal record, pending ids)`` of a resume of ``op_id`` with
    ``client``; InputError when it cannot (or need not) be resumed."""
    from romakit.store.reader import pending_ids

    if not op_id:
        raise InputError("type the op_id of the operation to resume (see rk.journal())")
    rec, todo = pending_ids(op_id)
    op = check_client(client, rec["operation"], rec["target"], rec["client"])
    if rec["state"] == "running":
        raise InputError(f"operation {rec['op_id']} is still running")
    if not todo:
        raise InputError(f"operation {rec['op_id']} is complete: nothing to resume")
    return op, rec, todo


def rows_of(picker: DevicePicker | None, ids: list) -> pd.DataFrame | None:
    """The picker's fleet rows of ``ids`` (None when it lists another kind of id)."""
    if picker is None or not len(picker.fleet) or picker.int_ids != isinstance(ids[0], int):
        return None
    return picker.fleet[picker.fleet[picker.id_column].isin(ids)]


def send(client: Any, plan: Plan, policy: Any, cancel: CancelToken,
         progress: Callable[[int, int], None]) -> BatchResult:
    """The one call of each kind of plan, with its chunk size, ``policy`` (the plan's,
    its gate passing through the panel's flow), progress and cancel."""
    kwargs: dict[str, Any] = {"progress": progress, "cancel": cancel, "rollout": policy,
                              "chunk_size": plan.chunk_size}
    if plan.kind == "retry":
        return plan.source.retry(client, ids=plan.ids, **kwargs)
    if plan.kind == "resume":
        from romakit.replay import resume

        return resume(plan.source, client, **kwargs)
    if plan.kind == "restore":
        from romakit.restoring import restore

        return restore(plan.source, client, ids=plan.ids, **kwargs)
    if plan.names:
        kwargs["names"] = plan.names
    return getattr(client, plan.operation)(plan.ids, **kwargs)


def after_run(picker: DevicePicker | None, refresh: Callable[[], None] | None, result: BatchResult) -> str:
    """Refresh the fleet (``refresh``, when given) and drop what the run acted on from the
    picker's selection; what was dropped, in words."""
    if picker is None or not len(result):
        return ""
    op = operation(result.operation)
    acted = result.ids([o for o in OUTCOMES if o != SKIPPED])
    gone = result.ids(SUCCESS) if op.expected == "gone" else []
    if picker.int_ids != op.int_ids:
        return ""
    if refresh is not None:
        try:
            refresh()
        except Exception:  # noqa: BLE001 - a listing problem must not hide the result
            log.exception("refresh after the run failed")
        n = picker.drop(acted)
    else:
        n = picker.drop(acted, gone=gone)
    left = f" {n:,} acted-on devices left the selection" if n else ""
    return (left + (f"; {len(gone):,} deleted ones left the list." if gone else ".")) if left else ""


def takeover_note(gateway: Any) -> tuple[str, str | None]:
    """``(what the preview says, the takeover box's label or None)`` for a gateway not yet
    connected: asks the inventory whether it is ONLINE (logging in as it then knocks the
    field gateway off)."""
    check = getattr(gateway, "check_takeover", None)
    if not callable(check) or getattr(gateway, "connected", False):
        return "", None
    try:
        check()
    except TakeoverRefused:
        gid = html.escape(str(gateway.target))
        return (f"<p style='color:#b00'><b>{gid} is ONLINE in IoTDA</b>: the field gateway is connected. "
                "Logging in as it disconnects it, and its children stop reporting until it reconnects "
                "after the run.</p>",
                f"Take over {gid}: disconnect the field gateway for this run (IoTDA allows one connection per device)")
    except Exception as e:  # noqa: BLE001 - the inventory unreachable: say it, the run may still go
        return f"<p><i>could not read the gateway's status: {html.escape(str(e))[:200]}</i></p>", None
    return "", None


def progress_text(plan: Plan | None, done: int, total: int) -> str:
    """``"120/300 devices, 2/5 chunks"``: the chunks of ``plan`` (the one running: a
    retry's or a resume's own) whose devices are all answered, counted in sending order;
    a chunk carried in several requests counts once."""
    if plan is None:
        return f"{done:,}/{total:,} devices"
    ends = 0
    finished = 0
    for ids in plan.batch.chunk_ids:
        ends += len(ids)
        if ends > done:
            break
        finished += 1
    return f"{done:,}/{total:,} devices, {finished:,}/{plan.chunks:,} chunks"
