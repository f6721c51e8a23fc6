"""What a gateway shares with the field gateway it logs in as (the :class:`FieldSide`
an :class:`~romakit.iotda.gateway.AsyncGateway` holds): the takeover check against
IoTDA's inventory, giving up when knocked off, and the child list (inventory or sync).

IoTDA allows a device one connection: the field gateway and romakit cannot both be
logged in as it. These methods read the inventory before a login, stop the running
batches when another client takes the link, and list the children without the LINK
listing (which, on a real account, does not hold IoTDA's gateways).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from romakit import outcomes as oc
from romakit.engine import CancelToken, limit
from romakit.errors import MqttError, TakeoverRefused, TransportError
from romakit.iotda import checks
from romakit.iotda import envelope as env

if TYPE_CHECKING:  # pragma: no cover
    from romakit.engine.limit import Pace
    from romakit.iotda.recorder import EventRecorder
    from romakit.iotda.session import Session
    from romakit.iotda.settings import GatewaySettings

#: seconds after closing its own session during which a gateway reads an ONLINE status
#: again (the platform may not have seen the disconnect yet) before calling it a takeover
OWN_DISCONNECT_GRACE = 10.0
#: seconds between those reads
STATUS_REREAD = 0.2


class FieldSide:
    """The field gateway's side of one :class:`~romakit.iotda.gateway.AsyncGateway`: the
    inventory's view of it, the runs a takeover stops, the child-list notifies. Given its
    collaborators explicitly; the gateway hands it the session where one is needed."""

    def __init__(self, settings: GatewaySettings, *, recorder: EventRecorder, pace: Pace,
                 count: Callable[[str], None], up_topic: str) -> None:
        self.device_id = settings.device_id
        self.inventory = settings.inventory
        self.timeout = settings.timeout
        self.recorder, self.pace, self.count, self.up_topic = recorder, pace, count, up_topic
        #: the cancel tokens of the runs going on (a takeover cancels them)
        self.cancels: set[CancelToken] = set()
        self.notifies: list[env.DownEvent] = []  # add_sub_device_notify events, newest last (bounded)

    def online_elsewhere(self) -> bool | None:
        """Whether the inventory shows this gateway ONLINE (asked after a drop)."""
        if self.inventory is None:
            return None
        return self.inventory.status(self.device_id) == "ONLINE"

    def keep_notify(self, ev: env.DownEvent) -> None:
        if ev.event_type == "add_sub_device_notify":
            self.notifies = [*self.notifies[-99:], ev]

    def taken(self, why: str) -> None:
        """Another client took the link: every run going on stops, with ``why``."""
        for token in list(self.cancels):
            token.cancel(why)

    @contextmanager
    def running(self, cancel: CancelToken) -> Iterator[CancelToken]:
        """A run stopped by a takeover (``cancel`` is cancelled with the reason)."""
        self.cancels.add(cancel)
        try:
            yield cancel
        finally:
            self.cancels.discard(cancel)

    def check_takeover(self, takeover: bool, closed_at: float | None, grace: float = 0.0) -> str | None:
        """The gateway's status in the inventory (None without one); raises
        :class:`~romakit.TakeoverRefused` for an ONLINE gateway unless ``takeover``.

        One read, unless ``grace`` (seconds): then an ONLINE status within ``grace`` of
        romakit closing this gateway's own session (``closed_at``, monotonic) is read again
        until it clears or the grace is over, since the platform lets go of a connection
        a moment late (a retry right after a run)."""
        if self.inventory is None:
            return None
        status = self.inventory.status(self.device_id)
        if status == "ONLINE" and not takeover and grace > 0 and closed_at is not None:
            deadline = closed_at + grace
            while status == "ONLINE" and time.monotonic() < deadline:
                time.sleep(STATUS_REREAD)
                status = self.inventory.status(self.device_id)
        if status == "ONLINE" and not takeover:
            raise TakeoverRefused(self.device_id)
        return status

    async def sync(self, session: Session, version: int | None, *, wait: bool, timeout: float | None) -> Any:
        """``sub_device_sync_request`` over ``session`` (see ``AsyncGateway.sync_sub_devices``)."""
        version = checks.sync_version(version)
        if not session.connected:
            raise MqttError(f"gateway {self.device_id} is not connected")
        eid = env.new_event_id()
        mark, seen = self.recorder.total, len(self.notifies)
        ticket = await self.pace.acquire()
        problem = session.publish(
            self.up_topic, env.build(self.device_id, env.SYNC_REQUEST, env.sync_paras(version), event_id=eid))
        if problem is not None:
            self.pace.release(ticket, limit.NEUTRAL)
            raise MqttError(f"sub_device_sync_request not published: {problem}")
        self.count("published")
        if not wait:
            self.pace.release(ticket, limit.NEUTRAL)
            return eid
        timeout = self.timeout if timeout is None else float(timeout)
        got = await asyncio.to_thread(self.recorder.wait_for_event, "add_sub_device_notify", timeout=timeout,
                                      since=mark)
        fresh = self.notifies[seen - len(self.notifies):] if seen < len(self.notifies) else []
        mine = [ev for ev in fresh if ev.event_id == eid] or fresh
        self.pace.release(ticket, limit.NEUTRAL if got and mine else limit.LOST)
        if not got or not mine:
            raise TransportError(f"no add_sub_device_notify answered sub_device_sync_request {eid} within {timeout} s",
                                 sent=True, code=oc.TIMEOUT, event_id=eid)
        return [dict(d) for ev in mine for d in ev.devices]


def children_frame(rows: list[dict]) -> Any:
    """The children a sync listed, as the inventory's frame names them."""
    import pandas as pd

    cols = ["device_id", "name", "node_id", "status", "product_id", "parent_device_id"]
    return pd.DataFrame.from_records([{c: r.get(c) for c in cols} for r in rows], columns=cols).rename(
        columns={"name": "device_name", "parent_device_id": "gateway_id"})


__all__ = ["OWN_DISCONNECT_GRACE", "FieldSide", "children_frame"]
