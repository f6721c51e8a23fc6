"""One batch pipeline for every client: :func:`run_operation`.

A client brings its checked ids and its ``send`` for one chunk; the pipeline does the
rest, in this order, the same for the LINK client, a gateway and the fan-out across
gateways: the client's defaults fill the options the caller left unset, the journal
(the client's) observes the run under its secret-free identity, a re-sent deletion first
reads what is already gone (:mod:`romakit.reconcile`), and the engine runs it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from romakit.engine import BatchOptions, SendChunk, run_batch
from romakit.engine.client import BatchClient
from romakit.reconcile import settle
from romakit.store.writer import with_journal

if TYPE_CHECKING:  # pragma: no cover
    from romakit.results import BatchResult
    from romakit.store.journal import Journal

async def run_operation(client: BatchClient, operation: str, ids: list, send: SendChunk, options: BatchOptions,
                        *, journal: Journal | None = None, **defaults: Any) -> BatchResult:
    """Run ``operation`` of ``client`` over ``ids``: ``defaults`` -> ``journal`` (the
    client's) -> settle -> engine."""
    opts = with_journal(options.merged(**defaults), client.identity(), journal)  # its address, never its secrets
    opts = await settle(client, operation, ids, opts)  # a re-sent deletion reads what is already gone
    return await run_batch(ids, operation=operation, target=client.target, send=send, options=opts)


__all__ = ["run_operation"]
