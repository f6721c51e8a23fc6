"""One batch pipeline for every client: :func:`run_operation`.

A client brings its checked ids and its ``send`` for one chunk; the pipeline does the
rest, in this order, the same for the LINK client, a gateway and the fan-out across
gateways: the client's defaults fill the options the caller left unset, the journal
(the client's) observes the run under its secret-free identity, a re-sent deletion (and
every restore) first reads what is already done (:mod:`romakit.reconcile`), a deletion
reads each chunk's records just before sending it (:mod:`romakit.store.snapshot`), and
the engine runs it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Hashable, Sequence
from typing import TYPE_CHECKING, Any

from romakit.engine import BatchOptions, SendChunk, run_batch
from romakit.engine.client import BatchClient
from romakit.reconcile import settle
from romakit.store.snapshot import Reader, Snapshotter
from romakit.store.writer import with_journal

if TYPE_CHECKING:  # pragma: no cover
    from romakit.results import BatchResult
    from romakit.store.journal import Journal


async def run_operation(client: BatchClient, operation: str, ids: list, send: SendChunk, options: BatchOptions,
                        *, journal: Journal | None = None, snapshot: Reader | None = None,
                        done: Callable[[Sequence[Hashable]], Awaitable[set]] | None = None,
                        **defaults: Any) -> BatchResult:
    """Run ``operation`` of ``client`` over ``ids``: ``defaults`` -> ``journal`` (the
    client's) -> settle (``done``: how this operation reads what is already done) ->
    snapshot (``snapshot``: a deletion's reader of its devices' records) -> engine."""
    from romakit.results.schema import new_op_id

    opts = with_journal(options.merged(**defaults), client.identity(), journal)  # its address, never its secrets
    opts = await settle(client, operation, ids, opts, read=done)  # a re-sent deletion reads what is already gone
    taker = None
    if snapshot is not None:
        if opts.op_id is None:
            opts = dataclasses.replace(opts, op_id=new_op_id())
        assert opts.op_id is not None
        taker = Snapshotter(snapshot, opts.observer, opts.op_id, str(client.target))
        send = taker.wrap(send)
    res = await run_batch(ids, operation=operation, target=client.target, send=send, options=opts)
    if taker is not None:
        res.snapshot = taker.records
    return res


__all__ = ["run_operation"]
