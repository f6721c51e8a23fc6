"""What a gateway shares with the field gateway it logs in as (the :class:`FieldSide`
of :class:`~romakit.iotda.gateway.AsyncGateway`): the takeover check against IoTDA's
inventory, giving up when knocked off, and the child list (inventory or sync).

IoTDA allows a device one connection: the field gateway and romakit cannot both be
logged in as it. These methods read the inventory before a login, stop the running
batches when another client takes the link, and list the children without the LINK
listing (which, on a real account, does not hold IoTDA's gateways).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from romakit import outcomes as oc
from romakit.engine import limit
from romakit.errors import MqttError, TakeoverRefused, TransportError
from romakit.iotda import checks
from romakit.iotda import envelope as env

#: seconds after closing its own session during which a gateway reads an ONLINE status
#: again (the platform may not have seen the disconnect yet) before calling it a takeover
OWN_DISCONNECT_GRACE = 10.0
#: seconds between those reads
STATUS_REREAD = 0.2


class FieldSide:
    """Mixin of :class:`~romakit.iotda.gateway.AsyncGateway` (uses its session, inventory,
    pace, recorder and correlator)."""

    device_id: str
    inventory: Any
    takeover: bool
    timeout: float

    @property
    def taken_over(self) -> str | None:
        """Why the gateway gave up its link (another client logged in as it), or None."""
        return self._session.taken_over

    def _online_elsewhere(self) -> bool | None:
        """Whether the inventory shows this gateway ONLINE (asked after a drop)."""
        return self.inventory.status(self.device_id) == "ONLINE"

    def _keep_notify(self, ev: env.DownEvent) -> None:
        if ev.event_type == "add_sub_device_notify":
            self._notifies = [*self._notifies[-99:], ev]

    def _taken(self, why: str) -> None:
        for token in list(self._cancels):
            token.cancel(why)

    def check_takeover(self, grace: float = 0.0) -> str | None:
        """The gateway's status in the inventory (None without one); raises
        :class:`~romakit.TakeoverRefused` for an ONLINE gateway unless ``takeover=True``.

        One read, unless ``grace`` (seconds; :meth:`connect` passes
        ``OWN_DISCONNECT_GRACE``): then an ONLINE status within ``grace`` of romakit closing
        this gateway's own session is read again until it clears or the grace is over,
        since the platform lets go of a connection a moment late (a retry right after a run)."""
        if self.inventory is None:
            return None
        status = self.inventory.status(self.device_id)
        closed_at = self._session.closed_at
        if status == "ONLINE" and not self.takeover and grace > 0 and closed_at is not None:
            deadline = closed_at + grace
            while status == "ONLINE" and time.monotonic() < deadline:
                time.sleep(STATUS_REREAD)
                status = self.inventory.status(self.device_id)
        if status == "ONLINE" and not self.takeover:
            raise TakeoverRefused(self.device_id)
        return status


    async def sync_sub_devices(self, version: int | None = None, *, wait: bool = False,
                               timeout: float | None = None) -> Any:
        """Ask the platform for the child list (``sub_device_sync_request``).

        Returns its event_id; with ``wait=True`` waits (up to ``timeout``, default the
        gateway's) for the ``add_sub_device_notify`` that answers it and returns the
        children it lists, as dicts (``device_id``, ``node_id``, ``name``, ``status``, ...).
        The notifies also land in :meth:`events` (``match == "notify"``).
        """
        version = checks.sync_version(version)
        if not self._session.connected:
            raise MqttError(f"gateway {self.device_id} is not connected")
        eid = env.new_event_id()
        mark, seen = self.recorder.total, len(self._notifies)
        ticket = await self.pace.acquire()
        problem = self._session.publish(
            self.up_topic, env.build(self.device_id, env.SYNC_REQUEST, env.sync_paras(version), event_id=eid))
        if problem is not None:
            self.pace.release(ticket, limit.NEUTRAL)
            raise MqttError(f"sub_device_sync_request not published: {problem}")
        self._correlator.count("published")
        if not wait:
            self.pace.release(ticket, limit.NEUTRAL)
            return eid
        timeout = self.timeout if timeout is None else float(timeout)
        got = await asyncio.to_thread(self.recorder.wait_for_event, "add_sub_device_notify", timeout=timeout,
                                      since=mark)
        fresh = self._notifies[seen - len(self._notifies):] if seen < len(self._notifies) else []
        mine = [ev for ev in fresh if ev.event_id == eid] or fresh
        self.pace.release(ticket, limit.NEUTRAL if got and mine else limit.LOST)
        if not got or not mine:
            raise TransportError(f"no add_sub_device_notify answered sub_device_sync_request {eid} within {timeout} s",
                                 sent=True, code=oc.TIMEOUT, event_id=eid)
        return [dict(d) for ev in mine for d in ev.devices]

    async def children(self) -> Any:
        """This gateway's children as a DataFrame: from the inventory (IoTDA REST,
        ``rk.IotdaClient.devices(gateway_id=...)``) when the gateway has one, else from its
        own sync, logging in first if needed (the gateway stays connected). Columns include
        ``device_id``, ``node_id``, ``status``."""
        import pandas as pd

        if self.inventory is not None:
            return await asyncio.to_thread(self.inventory.devices, gateway_id=self.device_id)
        if not self._session.is_open:
            await self.connect()
        rows = await self.sync_sub_devices(wait=True)
        cols = ["device_id", "name", "node_id", "status", "product_id", "parent_device_id"]
        return pd.DataFrame.from_records([{c: r.get(c) for c in cols} for r in rows], columns=cols).rename(
            columns={"name": "device_name", "parent_device_id": "gateway_id"})


__all__ = ["FieldSide"]
