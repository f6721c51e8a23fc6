"""What the batch machinery needs of a client: :class:`BatchClient` and its readers.

Every romakit client (``LinkClient``, ``Gateway``, their async twins, ``GatewayGroup``)
declares its ``kind`` (:data:`romakit.operations.LINK` or ``GATEWAY``), the ``target`` its
operations act on, and a secret-free :meth:`~BatchClient.identity` for the journal. The
reconcile step, resume, retry and the widgets ask for no more than these; reading what a
deletion already did asks for the reader of the client's kind. Sync and async clients
both fit: a reader's methods return a value or an awaitable of it.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from typing import Any, Protocol, runtime_checkable

#: what a batch operation takes as its devices: any iterable of ids (a list, a Series,
#: a frame's column), checked and de-duplicated by the client before anything is sent
Ids = Iterable[Hashable]


@runtime_checkable
class BatchClient(Protocol):
    """A client of batch operations (see the module docstring)."""

    @property
    def kind(self) -> str:
        """``"link"`` or ``"gateway"`` (:mod:`romakit.operations`)."""
        ...

    @property
    def target(self) -> str:
        """What its operations act on: the LINK instance id, the gateway id, ``"3 gateways"``."""
        ...

    def identity(self) -> dict[str, Any]:
        """The non-secret facts that name where it acts (what the journal keeps)."""
        ...


class LinkReader(BatchClient, Protocol):
    """A LINK client, as read before a deletion is sent again."""

    @property
    def concurrency(self) -> int: ...

    def device(self, device_id: Any) -> Any:
        """One device's details (or an awaitable of them)."""
        ...

    def devices(self, **filters: Any) -> Any:
        """Every device matching ``filters`` as a DataFrame (or an awaitable of it)."""
        ...


class GatewayReader(BatchClient, Protocol):
    """A gateway, as read before a deletion of its children is sent again."""

    @property
    def inventory(self) -> Any: ...

    @property
    def timeout(self) -> float: ...

    def children(self) -> Any:
        """Its children as a DataFrame (or an awaitable of it)."""
        ...

    def sync_sub_devices(self, version: int | None = None, *, wait: bool = False,
                         timeout: float | None = None) -> Any:
        """The platform's child list (or an awaitable of it)."""
        ...


__all__ = ["BatchClient", "GatewayReader", "Ids", "LinkReader"]
