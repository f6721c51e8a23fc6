"""The LINK device operations of the sandbox, over its fleet.

======  ==========================  ==========================================
GET     ``/devices``                ListDevices (paged, filtered, ordered by id)
POST    ``/devices``                CreateDevice -> 201 Device
DELETE  ``/devices``                BatchDeleteDevices (``device_ids`` or ``resources``) -> 204
GET     ``/devices/{id}``           ShowDevice -> Device or 404 ROMA.00110006
DELETE  ``/devices/{id}``           DeleteDevice -> 204 or 404
POST    ``/devices/force-offline``  BatchFreezeDevices -> ``{"success", "failed"}``
======  ==========================  ==========================================

Choices where the public docs are silent (all documented on the handlers):
already-offline devices land in ``success`` (force-offline is idempotent); repeated
ids are answered once; ``success``/``failed`` are cut at 9,999 entries each as the
schema allows (the devices beyond are still processed); ``device_name`` and
``product_name`` filters match substrings, the other string filters match exactly.
CreateDevice (:mod:`romakit.sim.link_create`) takes the official SDK's body, with the
reference's name rules and the errors of a duplicate node id, a missing product and a
full quota.

A device is answered with every field of the official SDK's ``Device``: the fleet's
own, and the instance's (``instance_id``, the MQTT access addresses, IPv6 ones on the
loopback ``[::1]`` with the same ports) added as it is encoded. ShowDevice adds
``plugin_id``: the protocol plugin of a Modbus or OPC UA product, null for the others.

The faults that act inside an operation: ``fail_ids``, ``fail_products`` and
``lie_ids`` in force-offline; ``list_churn`` in ListDevices.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import msgspec
import numpy as np

from romakit.sim import link_create
from romakit.sim.faults import Faults
from romakit.sim.fleet import Fleet
from romakit.sim.link_request import INT_RE, LinkRequest, bad, id_list, not_found, path_id
from romakit.sim.openapi import ONLINE_STATUS_PATTERN
from romakit.sim.view import FleetView

MAX_LIMIT = 999
MAX_FORCE_OFFLINE_IDS = 999_999
MAX_RESULT_ITEMS = 9_999
_ONLINE_STATUS_RE = re.compile(ONLINE_STATUS_PATTERN)
#: ShowDevice's ``plugin_id`` by the product's protocol_type: the Modbus and OPC UA plugins
_PLUGINS = {2: 100_002, 4: 100_004}
_FILTERS = ("app_id", "product_id", "product_name", "device_name", "client_id", "node_id",
            "node_type", "online_status", "created_date_start", "created_date_end", "tag")
#: an operation: the request in, ``(status, JSON payload or None)`` out
Operation = Callable[[LinkRequest], tuple[int, Any]]


class LinkDevices:
    """The operations of the LINK device API on ``fleet``, each answering ``(status, payload)``."""

    def __init__(self, fleet: Fleet, faults: Faults, *, connect_address: str, ssl_connect_address: str,
                 instance_id: str = "") -> None:
        self.fleet = fleet
        self.faults = faults
        self.connect_address = connect_address
        self.ssl_connect_address = ssl_connect_address
        self.instance_id = instance_id
        self._filtered: OrderedDict[tuple, tuple[int, FleetView]] = OrderedDict()
        #: devices answered so far, by ListDevices (each item of each page) and ShowDevice:
        #: what a reader cost the service, whatever the requests' count
        self.served = 0

    def operation(self, method: str, rest: list[str]) -> tuple[Operation, str] | None:
        """The operation for ``method`` on the path below ``/devices`` (``rest``) and its
        path argument; None when there is none."""
        table: dict[tuple[tuple[str, ...], str], Operation] = {
            ((), "GET"): self._list,
            ((), "POST"): self._create,
            ((), "DELETE"): self._delete_batch,
            (("force-offline",), "POST"): self._force_offline,
        }
        key = (tuple(rest), method)
        if key in table:
            return table[key], ""
        if len(rest) == 1 and rest[0] and rest[0] != "force-offline":
            if method == "GET":
                return self._show, rest[0]
            if method == "DELETE":
                return self._delete_one, rest[0]
        return None

    def addresses(self) -> dict[str, str]:
        """The device access addresses of the instance, IPv4 and IPv6 (loopback, same ports)."""
        v4, v4_ssl = self.connect_address, self.ssl_connect_address
        return {"connect_address": v4, "ssl_connect_address": v4_ssl,
                "ipv6_connect_address": f"[::1]:{v4.rpartition(':')[2]}",
                "ipv6_ssl_connect_address": f"[::1]:{v4_ssl.rpartition(':')[2]}"}

    def instance_fields(self) -> dict[str, str]:
        """What every device answered carries of its instance: its id and the access addresses."""
        return {"instance_id": self.instance_id, **self.addresses()}

    def _show(self, ctx: LinkRequest) -> tuple[int, Any]:
        did = path_id(ctx.arg, "show")
        dev = self.fleet.get(did)
        if dev is None:
            raise not_found(ctx.arg)
        dev.update(self.instance_fields())
        dev["plugin_id"] = _PLUGINS.get(dev["product"]["protocol_type"])
        with self.fleet.lock:
            self.served += 1
        return 200, dev

    def _delete_one(self, ctx: LinkRequest) -> tuple[int, Any]:
        did = path_id(ctx.arg, "delete")
        if not self.fleet.delete([did]):
            raise not_found(ctx.arg)
        return 204, None

    def _delete_batch(self, ctx: LinkRequest) -> tuple[int, Any]:
        """Delete devices by id; the body names them ``device_ids`` (docs) or ``resources`` (SDK).

        Ids that do not exist are ignored: the answer is 204 either way.
        """
        data = ctx.json_object("batchDelete", "deviceBatchDeleteRequest")
        if "device_ids" not in data and "resources" not in data:
            raise bad("batchDelete", "device_ids", "body", "device_ids (or resources) is required.")
        ids: list[int] = []
        for key in ("device_ids", "resources"):
            if key in data:
                ids += id_list(data[key], "batchDelete", key, MAX_FORCE_OFFLINE_IDS)
        self.fleet.delete(dict.fromkeys(ids))
        return 204, None

    def _force_offline(self, ctx: LinkRequest) -> tuple[int, Any]:
        """Bring devices offline.

        Per distinct id (repeats answered once, first-seen order): unknown ->
        ``failed`` with device_name ""; in ``faults.fail_ids`` or a product in
        ``faults.fail_products`` -> ``failed``, unchanged; in ``faults.lie_ids`` ->
        ``success`` but left as it is; otherwise ``success`` and online_status 2,
        including devices already offline or never connected (idempotent).
        Each list is cut at 9,999 entries, as the schema allows; every id is
        processed regardless.
        """
        data = ctx.json_object("forceDisconnect", "deviceDisconnectRequest")
        if "device_ids" not in data:
            raise bad("forceDisconnect", "deviceDisconnectRequest", "body", "device_ids is required.")
        ids = list(dict.fromkeys(id_list(data["device_ids"], "forceDisconnect", "deviceDisconnectRequest",
                                          MAX_FORCE_OFFLINE_IDS)))
        f = self.faults
        fail_ids, fail_products, lie_ids = set(f.fail_ids), set(f.fail_products), set(f.lie_ids)
        success: list[dict] = []
        failed: list[dict] = []
        to_offline: list[int] = []
        fleet = self.fleet
        with fleet.lock:
            for did, found in zip(ids, fleet.names_and_products(ids), strict=True):
                if found is None:
                    failed.append({"id": did, "device_name": "", "device_id": did})
                    continue
                name, product_id = found
                item = {"id": did, "device_name": name, "device_id": did}
                if did in fail_ids or product_id in fail_products:
                    failed.append(item)
                    continue
                success.append(item)
                if did not in lie_ids:
                    to_offline.append(did)
            fleet.force_offline(to_offline)
        return 200, {"success": success[:MAX_RESULT_ITEMS], "failed": failed[:MAX_RESULT_ITEMS]}

    def _create(self, ctx: LinkRequest) -> tuple[int, Any]:
        """CreateDevice -> 201 Device (:mod:`romakit.sim.link_create`: the SDK's fields, the
        reference's rules and error codes)."""
        status, dev = link_create.create(self.fleet, self.faults, ctx)
        return status, {**dev, **self.instance_fields()}

    # -- list ------------------------------------------------------------------------------
    def _churn(self) -> None:
        """The ``list_churn`` fault: another operator deletes the lowest-id device while a
        page past the first is read (so offset paging shifts under the reader)."""
        with self.faults._lock:
            if self.faults.list_churn <= 0:
                return
            self.faults.list_churn -= 1
        with self.fleet.lock:
            first = self.fleet.snapshot().column("id")[:1].tolist()  # the id alone, no device formatted
        self.fleet.delete(first)

    def _list(self, ctx: LinkRequest) -> tuple[int, Any]:
        """Query devices, ordered by id.

        ``offset`` >= 0 (default 0), ``limit`` 1.. (default 10, more than 999 is cut to
        999). Filters: ``app_id``, ``client_id``, ``node_id`` (2..64), ``tag`` (one of
        the device's tags), ``product_id`` (int) and ``node_type`` (0/1/2) match exactly;
        ``device_name`` (2..64) and ``product_name`` match substrings (case-sensitive);
        ``online_status`` is a comma list of 0/1/2; ``created_date_start`` /
        ``created_date_end`` bound ``created_datetime`` (epoch ms, inclusive). A bad
        value answers 400 SCB.00000000; unknown parameters are ignored.
        """
        op, query = "list", ctx.query

        def integer(name: str, lo: int, hi: int | None = None, default: int | None = None) -> int | None:
            raw = query.get(name)
            if raw is None:
                return default
            if not INT_RE.fullmatch(raw):  # ASCII digits only: int() would take " 5", "+5", "1_0", "５"
                raise bad(op, name, "query", f"{name} must be an integer.")
            # past 30 digits every value acts alike (and int() refuses past 4,300 digits)
            v = int(raw) if len(raw.lstrip("-0")) <= 30 else (-1 if raw.startswith("-") else 10**30)
            if v < lo or (hi is not None and v > hi):
                raise bad(op, name, "query", f"{name} is out of range.")
            return v

        def text(name: str, lo: int = 0, hi: int = 256) -> str | None:
            raw = query.get(name)
            if raw is None or (raw == "" and lo == 0):
                return None
            if not lo <= len(raw) <= hi:
                raise bad(op, name, "query", f"{name} must be {lo}..{hi} characters.")
            return raw

        offset = integer("offset", 0, default=0)
        limit = min(integer("limit", 1, default=10), MAX_LIMIT)
        # each filter is a mask over the fleet's columns: no device is formatted to be filtered
        masks: list[Any] = []
        if (v := text("app_id")) is not None:
            apps = [a for a, _ in self.fleet.apps()]
            masks.append(lambda w, v=v: w.column("app") == (apps.index(v) if v in apps else -1))
        if (v := integer("product_id", 0)) is not None:
            masks.append(lambda w, v=v: w.column("product_id") == v)
        if (v := text("product_name")) is not None:
            named = [p["product_id"] for p in self.fleet.products() if v in p["product_name"]]
            masks.append(lambda w, named=named: np.isin(w.column("product_id"), named))
        if (v := text("device_name", 2, 64)) is not None:
            masks.append(lambda w, v=v: np.array([v in name for name in w.strings("device_name")], dtype=bool))
        if (v := text("client_id")) is not None:
            masks.append(lambda w, v=v: w.column("id") == _id_of(self.fleet.by_client_id(v)))
        if (v := text("node_id", 2, 64)) is not None:
            masks.append(lambda w, v=v: w.column("id") == _id_of(self.fleet.by_node_id(v)))
        if (v := integer("node_type", 0, 2)) is not None:
            masks.append(lambda w, v=v: w.column("node_type") == v)
        raw = query.get("online_status")
        if raw is not None:
            if not _ONLINE_STATUS_RE.fullmatch(raw):
                raise bad(op, "online_status", "query", "online_status must list 0, 1 or 2.")
            wanted = sorted({int(x) for x in raw.split(",")})
            masks.append(lambda w, v=wanted: np.isin(w.column("online_status"), v))
        if (v := integer("created_date_start", 0)) is not None:
            masks.append(lambda w, v=v: w.column("created_datetime") >= min(v, 2**62))
        if (v := integer("created_date_end", 0)) is not None:
            masks.append(lambda w, v=v: w.column("created_datetime") <= min(v, 2**62))
        if (v := text("tag")) is not None:
            masks.append(lambda w, v=v: w.has_tag(v))
        fleet = self.fleet
        if offset > 0 and self.faults.list_churn > 0:
            self._churn()
        with fleet.lock:
            devices = fleet.snapshot()
            if masks:
                # cached per filter set and fleet revision: paging through one filter is O(page)
                k = tuple(query.get(name) for name in _FILTERS)
                hit = self._filtered.get(k)
                if hit is not None and hit[0] == fleet.revision:
                    devices = hit[1]
                    self._filtered.move_to_end(k)
                else:
                    for mask in masks:
                        devices = devices.where(mask(devices))
                    self._filtered[k] = (fleet.revision, devices)
                    while len(self._filtered) > 16:
                        self._filtered.popitem(last=False)
            total = len(devices)
            size = len(devices.rows[offset:offset + limit])
            self.served += size
            instance = self.instance_fields()
            if self.faults.garbage_rate or self.faults.missing_fields_rate:
                # dicts: the faults take the answer apart
                page: Any = [{**d, **instance} for d in devices[offset:offset + limit]]
            else:  # the bytes straight from the columns (no dicts built)
                page = msgspec.Raw(devices.json(offset, offset + limit, instance))
        return 200, {"total": total, "size": size, "items": page, **self.addresses()}


#: JSON encoder of answers: a page of 999 devices in ~1 ms (json.dumps: ~10 ms), so a


def _id_of(dev: dict | None) -> int:
    """A device's id; -1 (no device has it) for None."""
    return -1 if dev is None else dev["id"]
