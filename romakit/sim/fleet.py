"""One seeded device fleet shared by the LINK HTTP simulator and the IoTDA platform simulator.

(Longer than romakit's other modules on purpose: the fleet is one lock, one set of
indexes and the operations that change them; split, every change would cross modules
while holding the lock.)

``Fleet(devices=2000, seed=7)`` builds the same fleet for the same seed: gateways
(about 1 in 40), their children (about 60 %, spread unevenly) and direct devices,
over a handful of realistic products. Devices are plain dicts in ROMA Connect
LINK's wire shape (the ``Device`` object of the API reference), so the LINK side
serialises them as they are; the MQTT side addresses them by ``client_id``
(the IoTDA device id: ``gw-0001``, ``gw-0001_c0007``, ``dev-000123``).

Time stamps (epoch ms) are spread over the year before a fixed epoch derived
from the seed, never the wall clock, so a fleet is reproducible. Changes made at
run time are stamped with the fleet clock: that epoch plus the monotonic time
elapsed since the fleet was built.

A device that never connected (online_status 0) has ``last_login_datetime``,
``last_active_time`` None and ``client_ip`` "". ``keep_alive`` and ``version`` are
strings, as the official SDK's ``Device`` model types them.

Thread safety: every method takes ``fleet.lock`` (a re-entrant lock). Readers get
copies (``get``, ``by_client_id``, ``all`` ...), so a caller cannot change the
fleet by accident; only the mutating methods change it. ``snapshot()`` and
``peek()`` are the no-copy read paths for hot loops (read-only, under the lock);
``revision`` rises on every change, for readers' caches.

The IoTDA error codes in ``failed`` lists are the sandbox's own: the real ones are
not publicly documented (see the IoTDA reference).
"""

from __future__ import annotations

import gc
import hashlib
import random
import re
import threading
import time
from bisect import bisect_left
from collections.abc import Iterable
from typing import Any

#: IoTDA-side error codes the sandbox uses in ``failed_devices`` (the real ones are undocumented)
ERR_NOT_CHILD = "IOTDA.014000"
ERR_DUPLICATE = "IOTDA.014001"
ERR_BAD_PRODUCT = "IOTDA.014002"
ERR_BAD_INPUT = "IOTDA.014003"
ERR_BAD_STATUS = "IOTDA.014004"

MAX_ID = 99_999_999_999_999_999
_DAY_MS = 86_400_000
_BASE_EPOCH_MS = 1_735_689_600_000  # 2025-01-01T00:00:00Z
_CID_RE = re.compile(r"^[A-Za-z0-9_-]{1,32}$")

# (product_name, manufacturer_id, model, protocol_type, product_type, name prefix, weight)
_PRODUCTS: list[tuple[str, str, str, int, int, str, float]] = [
    ("SmartMeter EM300", "Huixin Metering", "EM300-3P", 0, 0, "meter", 5.0),
    ("AquaGuard Leak Sensor", "Hangzhou Aqualink", "WL-2", 1, 0, "water", 3.0),
    ("ClimaCore HVAC Controller", "Guangzhou ClimaCore", "HC-500", 2, 0, "hvac", 2.0),
    ("ThermoSense T/H Sensor", "Suzhou Sensetek", "TH-10", 0, 0, "th", 3.0),
    ("GateKeeper Access Controller", "Shenzhen Gatekeeper", "AC-7", 3, 0, "door", 1.0),
    ("EdgeLink 4G Gateway", "EdgeLink Networks", "GW-4G-X2", 0, 1, "edgegw", 3.0),
    ("OPC Bridge Industrial Gateway", "Ningbo Fieldbus", "IG-200", 4, 1, "indgw", 1.0),
]
_SITES = ["sz", "bj", "sh", "gz", "hz", "cd", "wh", "xa", "nj", "tj"]
_APPS = [("metering-ops", "Metering operations"), ("facility-ops", "Facility management"),
         ("cold-chain", "Cold chain monitoring")]
_TAGS = ["building-a", "building-b", "floor-1", "floor-2", "floor-3", "critical", "pilot",
         "batch-2024q3", "batch-2025q1", "outdoor", "retrofit"]
_KEEP_ALIVE = ("120", "120", "60", "300")
_VERSIONS = [f"1.{a}.{b}" for a in range(6) for b in range(10)]
_DESCRIPTIONS = ["", "", "", "installed by field team", "replaced in last audit",
                 "pilot site device", "under warranty", "firmware pinned by customer"]


class Fleet:
    """A reproducible fleet of LINK devices, with gateways, children and direct devices."""

    def __init__(self, devices: int = 2000, seed: int = 7) -> None:
        if not isinstance(devices, int) or devices < 0:
            raise ValueError(f"devices must be a non-negative int, got {devices!r}")
        self.seed = seed
        self.lock = threading.RLock()
        rnd = random.Random(f"romakit-fleet-{seed}")
        #: the fixed epoch (ms) the fleet's time stamps are relative to
        self.epoch_ms: int = _BASE_EPOCH_MS + rnd.randrange(0, 180) * _DAY_MS
        self._t0 = time.monotonic()
        self._secret_salt = f"{seed}:{rnd.random()}"
        self._products: dict[int, dict[str, Any]] = {}
        self._prefix: dict[int, str] = {}
        pid = 100_000 + rnd.randrange(0, 800_000)
        for name, maker, model, proto, ptype, prefix, _w in _PRODUCTS:
            pid += rnd.randrange(3, 400)
            self._products[pid] = {
                "product_id": pid, "product_name": name, "manufacturer_id": maker,
                "model": model, "protocol_type": proto, "product_type": ptype,
            }
            self._prefix[pid] = prefix
        napps = 2 + int(rnd.random() * 2)
        self._apps = [(f"{rnd.getrandbits(128):032x}", name) for name, _ in _APPS[:napps]]
        self._devices: dict[int, dict[str, Any]] = {}  # insertion order == id order
        self._by_cid: dict[str, dict[str, Any]] = {}
        self._node_ids: set[str] = set()
        self._children: dict[int, dict[int, None]] = {}  # gateway id -> ordered set of child ids
        self._child_seq: dict[int, int] = {}  # gateway id -> last child number used
        self._version: dict[int, int] = {}  # gateway id -> child list version
        self._next_gw = 1
        self._next_dev = 1
        self._next_id = 7_100_000 + rnd.randrange(0, 50_000)
        self._order_cache: list[dict[str, Any]] | None = None
        self._rev = 0
        gc_was_on = gc.isenabled()
        gc.disable()  # ~100k small dicts: collector passes would cost a third of the time
        try:
            self._build(devices, rnd)
        finally:
            if gc_was_on:
                gc.enable()

    # -- generation ------------------------------------------------------------------
    def _build(self, n: int, rnd: random.Random) -> None:
        r = rnd.random
        n_gw = 0 if n < 2 else max(1, round(n / 40))
        n_child = round(n * 0.6) if n_gw else 0
        n_child = min(n_child, n - n_gw)
        roles = [1] * n_gw + [2] * n_child + [0] * (n - n_gw - n_child)
        rnd.shuffle(roles)
        ids = []
        nid = self._next_id
        for _ in range(n):
            nid += 1 + int(r() * r() * 40)
            ids.append(nid)
        self._next_id = nid

        gw_products = [p for p in self._products.values() if p["product_type"] == 1]
        dev_products = [p for p in self._products.values() if p["product_type"] == 0]
        weight = {name: w for name, *_rest, w in _PRODUCTS}
        gw_w = _cum([weight[p["product_name"]] for p in gw_products])
        dev_w = _cum([weight[p["product_name"]] for p in dev_products])
        apps = self._apps
        epoch = self.epoch_ms
        mac_base = rnd.getrandbits(40)
        imei_base = rnd.randrange(10**12)
        n_tags = len(_TAGS)
        n_direct = 0
        site_tags = {site: [f"site-{site}"] for site in _SITES}
        made: list[dict[str, Any]] = []
        gateways: list[dict[str, Any]] = []
        children: list[dict[str, Any]] = []
        for i, (did, role) in enumerate(zip(ids, roles, strict=True)):
            site = _SITES[int(r() * len(_SITES))]
            if role == 1:
                product = gw_products[bisect_left(gw_w, r())]
            else:
                product = dev_products[bisect_left(dev_w, r())]
            prefix = self._prefix[product["product_id"]]
            u = r()
            online = 0 if u < 0.05 else (1 if u < 0.75 else 2)
            created = epoch - 365 * _DAY_MS + int(r() * 364 * _DAY_MS)
            login = active = None
            if online:
                login = created + int(r() * (epoch - created))
                active = login + int(r() * (epoch - login))
                updated = login + int(r() * (epoch - login))
            else:
                updated = created + int(r() * (epoch - created))
            if product["protocol_type"] == 1:  # cellular: IMEI-like
                node_id = f"86{(imei_base + i * 7919) % 10**13:013d}"
            else:  # MAC-like
                h = f"{(mac_base + i * 104_729) % (1 << 40):010X}"
                node_id = f"A4:{h[:2]}:{h[2:4]}:{h[4:6]}:{h[6:8]}:{h[8:]}"
            app_id, app_name = apps[int(r() * len(apps))]
            ntags = int(r() * r() * 4)
            if ntags:
                tags = sorted({_TAGS[int(r() * n_tags)] for _ in range(ntags)} | {f"site-{site}"})
            else:
                tags = list(site_tags[site])
            ip = int(r() * 16_777_216)
            dev: dict[str, Any] = {
                "id": did, "device_id": did,
                "device_name": f"{prefix}-{site}-{i + 1:05d}",
                "client_id": "",
                "node_id": node_id,
                "parent_device_id": None, "parent_device_name": None,
                "product": product,  # shared, never mutated; readers get copies
                "status": 1 if r() < 0.02 else 0,
                "online_status": online,
                "node_type": role, "device_type": role,
                "app_id": app_id, "app_name": app_name,
                "tags": tags,
                "description": _DESCRIPTIONS[int(r() * len(_DESCRIPTIONS))],
                "created_datetime": created,
                "last_updated_datetime": updated,
                "last_login_datetime": login,
                "last_active_time": active,
                "client_ip": f"10.{ip >> 16}.{(ip >> 8) & 255}.{1 + (ip & 255) % 254}" if online else "",
                "keep_alive": _KEEP_ALIVE[int(r() * 4)],
                "version": _VERSIONS[int(r() * len(_VERSIONS))],
            }
            made.append(dev)
            if role == 1:
                gateways.append(dev)
                dev["client_id"] = f"gw-{len(gateways):04d}"
            elif role == 0:
                n_direct += 1
                dev["client_id"] = f"dev-{n_direct:06d}"
            else:
                children.append(dev)
        self._next_gw, self._next_dev = len(gateways) + 1, n_direct + 1
        for gw in gateways:
            self._children[gw["id"]] = {}
            self._version[gw["id"]] = 1
        if gateways:
            # children spread unevenly: heavy-tailed (Pareto) weights per gateway
            cum = _cum([rnd.paretovariate(1.1) for _ in gateways])
            last = len(gateways) - 1
            seq = [0] * len(gateways)
            kids = [self._children[gw["id"]] for gw in gateways]
            for dev in children:  # in id order, so child numbers follow ids
                g = min(bisect_left(cum, r()), last)
                gw = gateways[g]
                seq[g] += 1
                dev["client_id"] = f"{gw['client_id']}_c{seq[g]:04d}"
                dev["parent_device_id"] = gw["id"]
                dev["parent_device_name"] = gw["device_name"]
                kids[g][dev["id"]] = None
            for gw, n_kids in zip(gateways, seq, strict=True):
                self._child_seq[gw["id"]] = n_kids
        self._devices = {d["id"]: d for d in made}
        self._by_cid = {d["client_id"]: d for d in made}
        self._node_ids = {d["node_id"] for d in made}

    def _new_gw_cid(self) -> str:
        cid = f"gw-{self._next_gw:04d}"
        self._next_gw += 1
        return cid

    def _new_dev_cid(self) -> str:
        while True:
            cid = f"dev-{self._next_dev:06d}"
            self._next_dev += 1
            if cid not in self._by_cid:
                return cid

    def _attach(self, dev: dict[str, Any], gw: dict[str, Any]) -> None:
        gid = gw["id"]
        if not dev["client_id"]:
            while True:
                self._child_seq[gid] += 1
                cid = f"{gw['client_id']}_c{self._child_seq[gid]:04d}"
                if cid not in self._by_cid:
                    break
            dev["client_id"] = cid
        dev["parent_device_id"] = gid
        dev["parent_device_name"] = gw["device_name"]
        self._children[gid][dev["id"]] = None

    def _store(self, dev: dict[str, Any]) -> None:
        self._devices[dev["id"]] = dev
        self._by_cid[dev["client_id"]] = dev
        self._node_ids.add(dev["node_id"])
        self._order_cache = None
        self._rev += 1

    def _unstore(self, did: int) -> dict[str, Any] | None:
        dev = self._devices.pop(did, None)
        if dev is None:
            return None
        self._by_cid.pop(dev["client_id"], None)
        self._node_ids.discard(dev["node_id"])
        pid = dev.get("parent_device_id")
        if pid in self._children:
            self._children[pid].pop(did, None)
            self._version[pid] += 1
        self._children.pop(did, None)  # a deleted gateway's children keep their parent fields
        self._order_cache = None
        self._rev += 1
        return dev

    @property
    def revision(self) -> int:
        """A counter that rises on every change to the fleet (for readers' caches)."""
        return self._rev

    def now_ms(self) -> int:
        """The fleet clock: the fixed epoch plus the monotonic time since the fleet was built."""
        return self.epoch_ms + int((time.monotonic() - self._t0) * 1000)

    # -- reading ---------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._devices)

    def get(self, id: int) -> dict[str, Any] | None:  # noqa: A002 - the wire name
        """A copy of the device with LINK id ``id``, or None."""
        with self.lock:
            dev = self._devices.get(id)
            return _copy(dev) if dev is not None else None

    def by_client_id(self, cid: str) -> dict[str, Any] | None:
        """A copy of the device whose IoTDA-side id (``client_id``) is ``cid``, or None."""
        with self.lock:
            dev = self._by_cid.get(cid)
            return _copy(dev) if dev is not None else None

    def all(self) -> list[dict[str, Any]]:
        """Copies of every device, sorted by id."""
        with self.lock:
            return [_copy(d) for d in self._devices.values()]

    def snapshot(self) -> list[dict[str, Any]]:
        """The stored device dicts, sorted by id, WITHOUT copying: read-only use.

        For hot read paths (the LINK simulator filters 100,000 devices per list
        call); the returned list itself is shared until the next change, so
        neither it nor its dicts may be modified. Copy what you hand out.
        """
        with self.lock:
            if self._order_cache is None:
                self._order_cache = list(self._devices.values())
            return self._order_cache

    def peek(self, id: int) -> dict[str, Any] | None:  # noqa: A002 - the wire name
        """The stored device dict WITHOUT copying (read-only use, under ``fleet.lock``), or None."""
        return self._devices.get(id)

    def products(self) -> list[dict[str, Any]]:
        """Copies of the products, sorted by product_id."""
        with self.lock:
            return [dict(p) for _, p in sorted(self._products.items())]

    def apps(self) -> list[tuple[str, str]]:
        """The ``(app_id, app_name)`` pairs devices belong to."""
        return list(self._apps)

    def gateways(self) -> list[dict[str, Any]]:
        """Copies of the gateways (node_type 1), sorted by id."""
        with self.lock:
            return [_copy(d) for d in self._devices.values() if d["node_type"] == 1]

    def children_of(self, gateway_id: int) -> list[dict[str, Any]]:
        """Copies of the children of gateway ``gateway_id`` (LINK id), sorted by id."""
        with self.lock:
            kids = self._children.get(gateway_id, {})
            return [_copy(self._devices[k]) for k in sorted(kids) if k in self._devices]

    def secret_of(self, client_id: str) -> str:
        """The device's MQTT secret (16 hex chars), deterministic from seed and client_id.

        Raises KeyError for a client_id not in the fleet.
        """
        with self.lock:
            if client_id not in self._by_cid:
                raise KeyError(client_id)
        return hashlib.sha256(f"{self._secret_salt}:{client_id}".encode()).hexdigest()[:16]

    def version_of(self, gateway_cid: str) -> int:
        """The gateway's child-list version: rises on every child add or delete; 0 if unknown."""
        with self.lock:
            gw = self._by_cid.get(gateway_cid)
            return self._version.get(gw["id"], 0) if gw is not None else 0

    # -- LINK-side changes -----------------------------------------------------------
    def force_offline(self, ids: Iterable[int]) -> list[int]:
        """Set online_status 2 on the existing ones of ``ids``; returns those ids."""
        done = []
        with self.lock:
            now = self.now_ms()
            for did in ids:
                dev = self._devices.get(did)
                if dev is not None:
                    dev["online_status"] = 2
                    dev["last_updated_datetime"] = now
                    done.append(did)
            self._rev += 1
        return done

    def delete(self, ids: Iterable[int]) -> list[int]:
        """Remove the existing ones of ``ids``; returns the removed ids.

        Deleting a gateway removes only the gateway: its children stay, with their
        parent fields unchanged (orphans), as the LINK side does not cascade.
        """
        removed = []
        with self.lock:
            for did in ids:
                if self._unstore(did) is not None:
                    removed.append(did)
        return removed

    def create(self, **fields: Any) -> dict[str, Any]:
        """Create a device from LINK CreateDevice fields; returns a copy of it.

        Required: ``device_name`` (2..64 chars), ``product_id`` (an existing product),
        ``node_id`` (2..64 chars, unique). Optional: ``parent_device_id`` (a gateway;
        makes a child), ``app_id``, ``description``, ``tags``, ``status``, ``client_id``.
        A gateway product makes a gateway. Raises ValueError naming the bad field.
        """
        with self.lock:
            dev = self._new_device(fields)
            self._store(dev)
            return _copy(dev)

    def _new_device(self, f: dict[str, Any]) -> dict[str, Any]:
        name = f.get("device_name")
        if not isinstance(name, str) or not 2 <= len(name) <= 64:
            raise ValueError(f"device_name must be a string of 2..64 characters, got {name!r}")
        pid = f.get("product_id")
        if isinstance(pid, str) and pid.isdigit():
            pid = int(pid)
        if isinstance(pid, bool) or not isinstance(pid, int) or pid not in self._products:
            raise ValueError(f"product_id {pid!r} does not exist")
        node_id = f.get("node_id")
        if not isinstance(node_id, str) or not 2 <= len(node_id) <= 64:
            raise ValueError(f"node_id must be a string of 2..64 characters, got {node_id!r}")
        if node_id in self._node_ids:
            raise ValueError(f"node_id {node_id!r} already exists")
        parent = None
        parent_id = f.get("parent_device_id")
        if parent_id is not None:
            if isinstance(parent_id, float):
                parent_id = int(parent_id)
            parent = self._devices.get(parent_id) if isinstance(parent_id, int) else None
            if parent is None or parent["node_type"] != 1:
                raise ValueError(f"parent_device_id {parent_id!r} is not an existing gateway")
        app_id = f.get("app_id")
        apps = dict(self._apps)
        if app_id is None:
            app_id = self._apps[0][0]
        elif app_id not in apps:
            raise ValueError(f"app_id {app_id!r} does not exist")
        tags = f.get("tags") or []
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            raise ValueError(f"tags must be a list of strings, got {tags!r}")
        desc = f.get("description") or ""
        if not isinstance(desc, str) or len(desc) > 200:
            raise ValueError("description must be a string of at most 200 characters")
        status = f.get("status", 0)
        if status not in (0, 1) or isinstance(status, bool):
            raise ValueError(f"status must be 0 or 1, got {status!r}")
        cid = f.get("client_id")
        if cid is not None and (not isinstance(cid, str) or not _CID_RE.match(cid) or cid in self._by_cid):
            raise ValueError(f"client_id {cid!r} is malformed or already taken")
        product = self._products[pid]
        role = 1 if product["product_type"] == 1 else (2 if parent is not None else 0)
        self._next_id += 1 + (self._next_id % 7)
        did = self._next_id
        now = self.now_ms()
        dev: dict[str, Any] = {
            "id": did, "device_id": did, "device_name": name, "client_id": cid or "",
            "node_id": node_id, "parent_device_id": None, "parent_device_name": None,
            "product": product, "status": status, "online_status": 0,
            "node_type": role, "device_type": role,
            "app_id": app_id, "app_name": apps[app_id], "tags": list(tags),
            "description": desc, "created_datetime": now, "last_updated_datetime": now,
            "last_login_datetime": None, "last_active_time": None, "client_ip": "",
            "keep_alive": "120", "version": "1.0.0",
        }
        if role == 1:
            if not cid:
                while True:
                    dev["client_id"] = self._new_gw_cid()
                    if dev["client_id"] not in self._by_cid:
                        break
            self._children[did] = {}
            self._child_seq[did] = 0
            self._version[did] = 1
        elif parent is not None:
            self._attach(dev, parent)
            self._version[parent["id"]] += 1
        elif not cid:
            dev["client_id"] = self._new_dev_cid()
        return dev

    # -- MQTT-side changes (IoTDA $sub_device_manager) -------------------------------
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
            gw = self._by_cid.get(gateway_cid)
            if gw is None or gw["node_type"] != 1:
                return [], [(str(c), ERR_NOT_CHILD, f"gateway {gateway_cid} not found") for c in child_cids]
            for cid in child_cids:
                dev = self._by_cid.get(cid) if isinstance(cid, str) else None
                if dev is None or dev["parent_device_id"] != gw["id"] or dev["node_type"] != 2:
                    failed.append((str(cid), ERR_NOT_CHILD, f"device {cid} not found or not a child of {gateway_cid}"))
                    continue
                self._unstore(dev["id"])
                ok.append(cid)
        return ok, failed

    def add_children(
        self, gateway_cid: str, specs: list[dict[str, Any]]
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Add children under a gateway from IoTDA ``add_sub_device_request`` specs.

        A spec has ``node_id`` and ``product_id`` (required) and optional ``device_id``
        (the wanted client_id), ``name``, ``description``. Success items are
        ``{device_id, node_id, parent_device_id, name, product_id, status}`` (status
        "INACTIVE": never connected); failed items ``{node_id, product_id, error_code, error_msg}``.
        """
        ok: list[dict[str, Any]] = []
        failed: list[dict[str, Any]] = []
        with self.lock:
            gw = self._by_cid.get(gateway_cid)
            for spec in specs:
                spec = spec if isinstance(spec, dict) else {}
                node_id, pid = spec.get("node_id"), spec.get("product_id")

                def fail(code: str, msg: str, node_id: Any = node_id, pid: Any = pid) -> None:
                    failed.append({"node_id": node_id, "product_id": pid, "error_code": code, "error_msg": msg})

                if gw is None or gw["node_type"] != 1:
                    fail(ERR_NOT_CHILD, f"gateway {gateway_cid} not found")
                    continue
                if not isinstance(node_id, str) or not node_id:
                    fail(ERR_BAD_INPUT, f"node_id {node_id!r} is missing or not a string")
                    continue
                if node_id in self._node_ids:
                    fail(ERR_DUPLICATE, f"node_id {node_id} already exists")
                    continue
                ipid = int(pid) if isinstance(pid, str) and pid.isdigit() else pid
                prod = self._products.get(ipid) if isinstance(ipid, int) and not isinstance(ipid, bool) else None
                if prod is None or prod["product_type"] != 0:
                    fail(ERR_BAD_PRODUCT, f"product {pid} not found or not a child product")
                    continue
                name = spec.get("name") or f"{self._prefix[ipid]}-{node_id.replace(':', '').lower()[-12:]}"
                try:
                    dev = self._new_device({
                        "device_name": str(name)[:64], "product_id": ipid, "node_id": node_id,
                        "parent_device_id": gw["id"], "description": spec.get("description") or "",
                        "client_id": spec.get("device_id") or None, "app_id": gw["app_id"],
                    })
                except ValueError as e:
                    code = ERR_DUPLICATE if "taken" in str(e) else ERR_BAD_INPUT
                    fail(code, str(e)[:200])
                    continue
                self._store(dev)
                ok.append({"device_id": dev["client_id"], "node_id": node_id,
                           "parent_device_id": gateway_cid, "name": dev["device_name"],
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
            gw = self._by_cid.get(gateway_cid)
            now = self.now_ms()
            for item in statuses:
                item = item if isinstance(item, dict) else {}
                cid, st = item.get("device_id"), item.get("status")
                dev = self._by_cid.get(cid) if isinstance(cid, str) else None
                if gw is None or dev is None or dev["parent_device_id"] != gw["id"]:
                    failed.append({"device_id": cid, "error_code": ERR_NOT_CHILD,
                                   "error_msg": f"device {cid} not found or not a child of {gateway_cid}"})
                    continue
                if st not in ("ONLINE", "OFFLINE"):
                    failed.append({"device_id": cid, "error_code": ERR_BAD_STATUS,
                                   "error_msg": f"status {st!r} is not ONLINE or OFFLINE"})
                    continue
                dev["online_status"] = 1 if st == "ONLINE" else 2
                dev["last_updated_datetime"] = now
                if st == "ONLINE":
                    dev["last_login_datetime"] = dev["last_active_time"] = now
                ok.append({"device_id": cid, "status": st})
                self._rev += 1
        return ok, failed


def _copy(dev: dict[str, Any]) -> dict[str, Any]:
    out = dict(dev)
    out["product"] = dict(dev["product"])
    out["tags"] = list(dev["tags"])
    return out


def _cum(weights: list[float]) -> list[float]:
    out, s = [], 0.0
    for w in weights:
        s += w
        out.append(s)
    return [x / s for x in out]

