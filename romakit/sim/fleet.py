"""One seeded device fleet shared by the LINK HTTP simulator and the IoTDA platform simulator.

``Fleet(devices=2000, seed=7)`` builds the same fleet for the same seed
(:mod:`romakit.sim.generate`): gateways, their children and direct devices over a
handful of realistic products. Devices are handed out as plain dicts in ROMA Connect
LINK's wire shape (the ``Device`` object of the API reference), so the LINK side
serialises them as they are; the MQTT side addresses them by ``client_id`` (the IoTDA
device id: ``gw-0001``, ``gw-0001_c0007``, ``dev-000123``).

Every device, generated or created at run time, is one row of the same columns
(:mod:`romakit.sim.columns`), formatted only when read.

Time stamps (epoch ms) of the generated fleet are spread over the year before a fixed
epoch derived from the seed, never the wall clock, so a fleet is reproducible. Changes
made at run time are stamped with the fleet's ``clock`` (the sandbox's: this machine's
clock plus its ``clock_offset_s``), as a service stamps what happens to its devices,
so a client can compare them with its own clock.

Besides the LINK fields, a device carries its connection: ``conn`` the time (ms) its
connection status last changed (IoTDA's ``connection_status_update_time``), ``held``
whether a (simulated) field device holds its connection (IoTDA ONLINE for gateways and
direct devices), ``back_at`` the monotonic time its reconnect is due (0: none), kept by
:mod:`romakit.sim.life`. Generated direct devices that are online are held; gateways
are not (their connection is romakit's to take in the sandbox).

A device that never connected (online_status 0) has ``last_login_datetime``,
``last_active_time`` None and ``client_ip`` "". ``keep_alive`` and ``version`` are
strings, as the official SDK's ``Device`` model types them.

Thread safety: every method takes ``fleet.lock`` (a re-entrant lock). Every reader
hands out fresh dicts, so a caller cannot change the fleet by accident; only the
mutating methods change it. ``snapshot()`` is the read path for hot loops: a
:class:`~romakit.sim.view.FleetView` of the devices in id order whose columns filter
without building dicts; ``revision`` rises on every change, for readers' caches.
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from romakit.sim import catalog
from romakit.sim.columns import MAX_ID, DeviceColumns, Table
from romakit.sim.generate import generate
from romakit.sim.view import FleetView

__all__ = ["ERR_BAD_INPUT", "ERR_BAD_PRODUCT", "ERR_BAD_STATUS", "ERR_DUPLICATE", "ERR_NOT_CHILD", "MAX_ID",
           "Fleet", "FleetView"]

#: IoTDA-side error codes the sandbox uses in ``failed_devices`` (the real ones are undocumented)
ERR_NOT_CHILD = "IOTDA.014000"
ERR_DUPLICATE = "IOTDA.014001"
ERR_BAD_PRODUCT = "IOTDA.014002"
ERR_BAD_INPUT = "IOTDA.014003"
ERR_BAD_STATUS = "IOTDA.014004"
_CID_RE = re.compile(r"^[A-Za-z0-9_-]{1,32}$")


class Fleet:
    """A reproducible fleet of LINK devices, with gateways, children and direct devices."""

    def __init__(self, devices: int = 2000, seed: int = 7, clock: Callable[[], float] = time.time) -> None:
        if not isinstance(devices, int) or devices < 0:
            raise ValueError(f"devices must be a non-negative int, got {devices!r}")
        self.seed = seed
        self.lock = threading.RLock()
        made = generate(devices, seed)
        self._clock = clock
        cols = made.columns
        on = cols["online"] == 1
        cols["conn"] = np.where(on, cols["login"], cols["active"])
        cols["held"] = on & (cols["role"] == 0)
        cols["back_at"] = np.zeros(devices, dtype=np.float64)
        #: called with the rows a force-offline cut (under the lock): the fleet's life
        #: schedules their reconnects
        self.on_forced: Callable[[np.ndarray], None] | None = None
        #: the fixed epoch (ms) the fleet's time stamps are relative to
        self.epoch_ms: int = made.epoch_ms
        self._secret_salt = made.secret_salt
        tables = {"tags": Table(made.tag_sets), "desc": Table(catalog.DESCRIPTIONS),
                  "keep_alive": Table(catalog.KEEP_ALIVE), "version": Table(catalog.VERSIONS)}
        self.columns = DeviceColumns(made.columns, made.products, made.apps, tables, salt=made.secret_salt)
        self._product_index = {p["product_id"]: k for k, p in enumerate(made.products)}
        self._last_id = int(made.columns["id"][-1]) if devices else made.first_id
        self._gw_count = int((made.columns["role"] == 1).sum())
        self._dev_count = int((made.columns["role"] == 0).sum())
        self._alive_count = devices
        self._order: FleetView | None = None
        self._rev = 0
        #: IoTDA ``extension_info`` of children added with one, by client_id (others: {})
        self._extension: dict[str, dict[str, Any]] = {}

    @property
    def revision(self) -> int:
        """A counter that rises on every change to the fleet (for readers' caches)."""
        return self._rev

    def now_ms(self) -> int:
        """The fleet clock, epoch ms: what run-time changes are stamped with."""
        return int(self._clock() * 1000)

    def changed(self) -> None:
        """Note a change made straight to the columns (readers' caches drop theirs)."""
        self._rev += 1

    def connection(self, client_id: str) -> tuple[bool, int | None] | None:
        """``(held, connection status update time ms or None)`` of a device; None if unknown."""
        with self.lock:
            row = self.columns.row_of("client_id", client_id)
            if row is None:
                return None
            conn = int(self.columns.col("conn")[row])
            return bool(self.columns.col("held")[row]), (conn if conn >= 0 else None)

    # -- reading ---------------------------------------------------------------------
    def __len__(self) -> int:
        return self._alive_count

    def _one(self, row: int | None) -> dict[str, Any] | None:
        return None if row is None else self.columns.dicts(np.array([row]))[0]

    def get(self, id: int) -> dict[str, Any] | None:  # noqa: A002 - the wire name
        """The device with LINK id ``id`` (a fresh dict), or None."""
        with self.lock:
            return self._one(self.columns.row_of_id(id))

    def by_client_id(self, cid: str) -> dict[str, Any] | None:
        """The device whose IoTDA-side id (``client_id``) is ``cid`` (a fresh dict), or None."""
        with self.lock:
            return self._one(self.columns.row_of("client_id", cid))

    def by_node_id(self, node_id: str) -> dict[str, Any] | None:
        """The device whose ``node_id`` is ``node_id`` (a fresh dict), or None."""
        with self.lock:
            return self._one(self.columns.row_of("node_id", node_id))

    def all(self) -> list[dict[str, Any]]:
        """Every device (fresh dicts), sorted by id."""
        with self.lock:
            return self.snapshot()[:]

    def snapshot(self) -> FleetView:
        """The devices now in the fleet, in id order, as a :class:`FleetView`.

        The view is fixed (devices deleted later stay in it, created ones are not
        added) and shared until the next deletion or creation; the values it
        formats are the fleet's at the time they are read.
        """
        with self.lock:
            if self._order is None:
                self._order = FleetView(self.columns, self.lock, np.flatnonzero(self.columns.col("alive")))
            return self._order

    def names_and_products(self, ids: list[int]) -> list[tuple[str, int] | None]:
        """``(device_name, product_id)`` of each of ``ids`` (None when not in the fleet),
        without formatting whole devices: what a force-offline answer needs."""
        with self.lock:
            rows = self.columns.rows_of_ids(ids)
            found = np.array([r for r in rows if r >= 0], dtype=np.int64)
            named = iter(self.columns.strings("device_name", found))
            pids = iter(self.columns.column("product_id", found).tolist())
            return [(next(named), next(pids)) if r >= 0 else None for r in rows]

    def products(self) -> list[dict[str, Any]]:
        """Copies of the products, sorted by product_id."""
        return [dict(p) for p in sorted(self.columns.products, key=lambda p: p["product_id"])]

    def apps(self) -> list[tuple[str, str]]:
        """The ``(app_id, app_name)`` pairs devices belong to."""
        return list(self.columns.apps)

    def gateways(self) -> list[dict[str, Any]]:
        """The gateways (node_type 1, fresh dicts), sorted by id."""
        with self.lock:
            c = self.columns
            return c.dicts(np.flatnonzero(c.col("alive") & (c.col("role") == 1)))

    def _kid_rows(self, row: int) -> np.ndarray:
        """The live children of the gateway at ``row``, in id order."""
        c = self.columns
        return np.flatnonzero((c.col("parent") == row) & c.col("alive"))

    def children_of(self, gateway_id: int) -> list[dict[str, Any]]:
        """The children of gateway ``gateway_id`` (LINK id; fresh dicts), sorted by id."""
        with self.lock:
            row = self.columns.row_of_id(gateway_id)
            if row is None or self.columns.col("role")[row] != 1:
                return []
            return self.columns.dicts(self._kid_rows(row))

    def secret_of(self, client_id: str) -> str:
        """The device's MQTT secret (16 hex chars), deterministic from seed and client_id.

        Raises KeyError for a client_id not in the fleet.
        """
        with self.lock:
            if self.columns.row_of("client_id", client_id) is None:
                raise KeyError(client_id)
        return hashlib.sha256(f"{self._secret_salt}:{client_id}".encode()).hexdigest()[:16]

    def extension_of(self, client_id: str) -> dict[str, Any]:
        """The IoTDA ``extension_info`` a child was added with (a copy; {} when none)."""
        with self.lock:
            return dict(self._extension.get(client_id) or {})

    def version_of(self, gateway_cid: str) -> int:
        """The gateway's child-list version: rises on every child add or delete; 0 if unknown."""
        with self.lock:
            row = self._gateway_row(gateway_cid)
            return 0 if row is None else int(self.columns.col("kids_version")[row])

    # -- LINK-side changes -----------------------------------------------------------
    def force_offline(self, ids: Iterable[int]) -> list[int]:
        """Set online_status 2 on the existing ones of ``ids``; returns those ids.

        Those that were online lose their connection now (``last_active_time`` and the
        connection time are now); ``on_forced`` gets them, less the disabled ones and
        those whose reconnect is already under way (it stays as it is).
        """
        ids = list(ids)
        with self.lock:
            c = self.columns
            rows = c.rows_of_ids(ids)
            hit = np.array([r for r in rows if r >= 0], dtype=np.int64)
            now = self.now_ms()
            cut = hit[c.col("online")[hit] == 1]
            c.col("online")[hit] = 2
            c.col("updated")[hit] = now
            c.col("held")[hit] = False
            c.col("active")[cut] = now
            c.col("conn")[cut] = now
            self._rev += 1
            if self.on_forced is not None:
                self.on_forced(cut[c.col("status")[cut] == 0])
        return [did for did, r in zip(ids, rows, strict=True) if r >= 0]

    def delete(self, ids: Iterable[int]) -> list[int]:
        """Remove the existing ones of ``ids``; returns the removed ids.

        Deleting a gateway removes only the gateway: its children stay, with their
        parent fields unchanged (orphans), as the LINK side does not cascade.
        """
        ids = list(ids)
        removed = []
        with self.lock:
            alive = self.columns.col("alive")
            for did, row in zip(ids, self.columns.rows_of_ids(ids), strict=True):
                if row >= 0 and alive[row]:  # a repeated id is removed once
                    self._remove(row)
                    removed.append(did)
        return removed

    def _remove(self, row: int) -> None:
        """Remove a live row. A deleted gateway's children keep their parent fields."""
        c = self.columns
        c.col("alive")[row] = False
        self._extension.pop(str(c.col("client_id")[row]), None)
        self._alive_count -= 1
        parent = int(c.col("parent")[row])
        if parent >= 0 and c.col("alive")[parent]:
            c.col("kids_version")[parent] += 1
        self._order = None
        self._rev += 1

    def create(self, **fields: Any) -> dict[str, Any]:
        """Create a device from LINK CreateDevice fields; returns a copy of it.

        Required: ``device_name`` (2..64 chars), ``product_id`` (an existing product),
        ``node_id`` (2..64 chars, unique). Optional: ``parent_device_id`` (a gateway;
        makes a child), ``app_id``, ``description``, ``tags``, ``status``, ``client_id``.
        A gateway product makes a gateway. Texts must be valid Unicode (no lone
        surrogates). Raises ValueError naming the bad field.
        """
        with self.lock:
            row = self._create(fields)
            return self.columns.dicts(np.array([row]))[0]

    def _create(self, f: dict[str, Any]) -> int:
        """Check ``f``, store the device; returns its row."""
        c = self.columns
        name = f.get("device_name")
        if not _is_text(name, 2, 64):
            raise ValueError(f"device_name must be a string of 2..64 characters, got {name!r}")
        pid = f.get("product_id")
        if isinstance(pid, str) and pid.isdigit():
            pid = int(pid)
        if isinstance(pid, bool) or not isinstance(pid, int) or pid not in self._product_index:
            raise ValueError(f"product_id {pid!r} does not exist")
        node_id = f.get("node_id")
        if not _is_text(node_id, 2, 64):
            raise ValueError(f"node_id must be a string of 2..64 characters, got {node_id!r}")
        if c.row_of("node_id", node_id) is not None:
            raise ValueError(f"node_id {node_id!r} already exists")
        parent_row = None
        parent_id = f.get("parent_device_id")
        if parent_id is not None:
            if isinstance(parent_id, float):
                parent_id = int(parent_id)
            parent_row = c.row_of_id(parent_id) if isinstance(parent_id, int) else None
            if parent_row is None or c.col("role")[parent_row] != 1:
                raise ValueError(f"parent_device_id {parent_id!r} is not an existing gateway")
        app_ids = [a for a, _ in c.apps]
        app_id = f.get("app_id")
        if app_id is None:
            app_id = app_ids[0]
        elif app_id not in app_ids:
            raise ValueError(f"app_id {app_id!r} does not exist")
        tags = f.get("tags") or []
        if not isinstance(tags, list) or not all(_is_text(t, 0, 10**6) for t in tags):
            raise ValueError(f"tags must be a list of strings, got {tags!r}")
        desc = f.get("description") or ""
        if not _is_text(desc, 0, 200):
            raise ValueError("description must be a string of at most 200 characters")
        status = f.get("status", 0)
        if status not in (0, 1) or isinstance(status, bool):
            raise ValueError(f"status must be 0 or 1, got {status!r}")
        cid = f.get("client_id")
        if cid is not None and (not isinstance(cid, str) or not _CID_RE.match(cid)
                                or c.row_of("client_id", cid) is not None):
            raise ValueError(f"client_id {cid!r} is malformed or already taken")
        product = self._product_index[pid]
        role = 1 if c.products[product]["product_type"] == 1 else (2 if parent_row is not None else 0)
        if role != 2:
            parent_row = None  # a gateway product makes a gateway, never a child
        cid = cid or self._free_client_id(role, parent_row)
        self._last_id += 1 + (self._last_id % 7)
        now = self.now_ms()
        row = c.append({
            "id": self._last_id, "alive": True, "role": role, "product": product, "status": status,
            "online": 0, "created": now, "updated": now, "login": -1, "active": -1, "conn": -1,
            "app": app_ids.index(app_id), "parent": -1 if parent_row is None else parent_row,
            "tags": c.tables["tags"].code(tuple(tags)), "desc": c.tables["desc"].code(desc),
            "keep_alive": c.tables["keep_alive"].code(catalog.CREATED_KEEP_ALIVE),
            "version": c.tables["version"].code(catalog.CREATED_VERSION), "ip": -1,
            "kids": 0, "kids_version": 1, "name": name, "client_id": cid, "node_id": node_id,
        })
        if parent_row is not None:
            c.col("kids_version")[parent_row] += 1
        self._alive_count += 1
        self._order = None
        self._rev += 1
        return row

    def _free_client_id(self, role: int, parent_row: int | None) -> str:
        """The next client_id of the pattern of ``role`` no live device holds."""
        c = self.columns
        while True:
            if role == 1:
                self._gw_count += 1
                cid = f"gw-{self._gw_count:04d}"
            elif parent_row is not None:
                c.col("kids")[parent_row] += 1
                cid = f"{c.col('client_id')[parent_row]}_c{c.col('kids')[parent_row]:04d}"
            else:
                self._dev_count += 1
                cid = f"dev-{self._dev_count:06d}"
            if c.row_of("client_id", cid) is None:
                return cid

    # -- MQTT-side changes (IoTDA $sub_device_manager) -------------------------------
    def _gateway_row(self, gateway_cid: str) -> int | None:
        row = self.columns.row_of("client_id", gateway_cid)
        return row if row is not None and self.columns.col("role")[row] == 1 else None

    def delete_children(
        self, gateway_cid: str, child_cids: list[str]
    ) -> tuple[list[str], list[tuple[str, str, str]]]:
        """Delete children of a gateway by client_id.

        Returns ``(deleted client_ids, failed)`` with failed items
        ``(client_id, error_code, error_msg)``: a child that does not exist or is not
        under this gateway fails with ERR_NOT_CHILD; an unknown gateway fails them all.
        """
        ok: list[str] = []
        failed: list[tuple[str, str, str]] = []
        with self.lock:
            gw = self._gateway_row(gateway_cid)
            if gw is None:
                return [], [(str(c), ERR_NOT_CHILD, f"gateway {gateway_cid} not found") for c in child_cids]
            c = self.columns
            for cid in child_cids:
                row = self.columns.row_of("client_id", cid)
                if row is None or c.col("parent")[row] != gw or c.col("role")[row] != 2:
                    failed.append((str(cid), ERR_NOT_CHILD, f"device {cid} not found or not a child of {gateway_cid}"))
                    continue
                self._remove(row)
                ok.append(cid)
        return ok, failed

    def add_children(
        self, gateway_cid: str, specs: list[dict[str, Any]]
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Add children under a gateway from IoTDA ``add_sub_device_request`` specs.

        A spec has ``node_id`` and ``product_id`` (required) and optional ``device_id``
        (the wanted client_id), ``name``, ``description``, ``extension_info`` (an object,
        kept). Success items are
        ``{device_id, node_id, parent_device_id, name, product_id, status}`` (status
        "INACTIVE": never connected); failed items ``{node_id, product_id, error_code, error_msg}``.
        """
        ok: list[dict[str, Any]] = []
        failed: list[dict[str, Any]] = []
        with self.lock:
            gw_row = self._gateway_row(gateway_cid)
            gw = self._one(gw_row)
            for spec in specs:
                spec = spec if isinstance(spec, dict) else {}
                node_id, pid = spec.get("node_id"), spec.get("product_id")

                def fail(code: str, msg: str, node_id: Any = node_id, pid: Any = pid) -> None:
                    failed.append({"node_id": node_id, "product_id": pid, "error_code": code, "error_msg": msg})

                if gw is None:
                    fail(ERR_NOT_CHILD, f"gateway {gateway_cid} not found")
                    continue
                if not isinstance(node_id, str) or not node_id:
                    fail(ERR_BAD_INPUT, f"node_id {node_id!r} is missing or not a string")
                    continue
                if self.columns.row_of("node_id", node_id) is not None:
                    fail(ERR_DUPLICATE, f"node_id {node_id} already exists")
                    continue
                ipid = int(pid) if isinstance(pid, str) and pid.isdigit() else pid
                k = self._product_index.get(ipid) if isinstance(ipid, int) and not isinstance(ipid, bool) else None
                if k is None or self.columns.products[k]["product_type"] != 0:
                    fail(ERR_BAD_PRODUCT, f"product {pid} not found or not a child product")
                    continue
                name = spec.get("name") or f"{catalog.PRODUCTS[k][5]}-{node_id.replace(':', '').lower()[-12:]}"
                try:
                    row = self._create({
                        "device_name": str(name)[:64], "product_id": ipid, "node_id": node_id,
                        "parent_device_id": gw["id"], "description": spec.get("description") or "",
                        "client_id": spec.get("device_id") or None, "app_id": gw["app_id"],
                    })
                except ValueError as e:
                    code = ERR_DUPLICATE if "taken" in str(e) else ERR_BAD_INPUT
                    fail(code, str(e)[:200])
                    continue
                if isinstance(spec.get("extension_info"), dict) and spec["extension_info"]:
                    self._extension[str(self.columns.col("client_id")[row])] = dict(spec["extension_info"])
                ok.append({"device_id": self.columns.col("client_id")[row], "node_id": node_id,
                           "parent_device_id": gateway_cid, "name": self.columns.col("name")[row],
                           "product_id": pid, "status": "INACTIVE"})
        return ok, failed

    def set_child_status(
        self, gateway_cid: str, statuses: list[dict[str, Any]]
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Apply ``sub_device_update_status`` items ``{device_id, status: ONLINE|OFFLINE}``.

        ONLINE sets online_status 1 (and login/active times), OFFLINE 2. Returns
        ``(successful [{device_id, status}], failed [{device_id, error_code, error_msg}])``.
        """
        ok: list[dict[str, Any]] = []
        failed: list[dict[str, Any]] = []
        with self.lock:
            gw = self.columns.row_of("client_id", gateway_cid)
            now = self.now_ms()
            c = self.columns
            for item in statuses:
                item = item if isinstance(item, dict) else {}
                cid, st = item.get("device_id"), item.get("status")
                row = self.columns.row_of("client_id", cid)
                if gw is None or row is None or c.col("parent")[row] != gw:
                    failed.append({"device_id": cid, "error_code": ERR_NOT_CHILD,
                                   "error_msg": f"device {cid} not found or not a child of {gateway_cid}"})
                    continue
                if st not in ("ONLINE", "OFFLINE"):
                    failed.append({"device_id": cid, "error_code": ERR_BAD_STATUS,
                                   "error_msg": f"status {st!r} is not ONLINE or OFFLINE"})
                    continue
                new = 1 if st == "ONLINE" else 2
                if c.col("online")[row] != new:
                    c.col("conn")[row] = now
                c.col("online")[row] = new
                c.col("updated")[row] = now
                c.col("back_at")[row] = 0.0  # the gateway's word settles a reconnect under way
                if st == "ONLINE":
                    c.col("login")[row] = c.col("active")[row] = now
                ok.append({"device_id": cid, "status": st})
                self._rev += 1
        return ok, failed


def _is_text(value: Any, low: int, high: int) -> bool:
    """A str of ``low``..``high`` characters that UTF-8 can encode (no lone surrogates)."""
    if not isinstance(value, str) or not low <= len(value) <= high:
        return False
    try:
        value.encode()
    except UnicodeEncodeError:
        return False
    return True
