"""One seeded device fleet shared by the LINK HTTP simulator and the IoTDA platform simulator.

(Longer than romakit's other modules on purpose: the fleet is one lock, one set of
indexes and the operations that change them; split, every change would cross modules
while holding the lock. The generation itself lives in :mod:`romakit.sim.fleetgen`.)

``Fleet(devices=2000, seed=7)`` builds the same fleet for the same seed: gateways
(about 1 in 40), their children (about 60 %, spread unevenly) and direct devices,
over a handful of realistic products. Devices are handed out as plain dicts in ROMA
Connect LINK's wire shape (the ``Device`` object of the API reference), so the LINK
side serialises them as they are; the MQTT side addresses them by ``client_id``
(the IoTDA device id: ``gw-0001``, ``gw-0001_c0007``, ``dev-000123``).

Storage is columnar (numpy arrays, one row per device in id order; what that costs
against one dict per device: ``benchmarks/bench_sandbox.py``, in the README), and a
device is formatted only when read. Devices created at run time keep their own dict for the fields they
were given; the fields that change (online status and its time stamps, liveness)
live in the columns for every device.

Time stamps (epoch ms) are spread over the year before a fixed epoch derived
from the seed, never the wall clock, so a fleet is reproducible. Changes made at
run time are stamped with the fleet clock: that epoch plus the monotonic time
elapsed since the fleet was built.

A device that never connected (online_status 0) has ``last_login_datetime``,
``last_active_time`` None and ``client_ip`` "". ``keep_alive`` and ``version`` are
strings, as the official SDK's ``Device`` model types them.

Thread safety: every method takes ``fleet.lock`` (a re-entrant lock). Every reader
hands out fresh dicts, so a caller cannot change the fleet by accident; only the
mutating methods change it. ``snapshot()`` is the read path for hot loops: a
:class:`FleetView` of the devices in id order whose columns filter without
building dicts; ``revision`` rises on every change, for readers' caches.

The IoTDA error codes in ``failed`` lists are the sandbox's own: the real ones are
not publicly documented (see the IoTDA reference).
"""

from __future__ import annotations

import hashlib
import random
import re
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any

import msgspec
import numpy as np

from romakit.sim import fleetgen
from romakit.sim.fleetgen import DAY_MS

#: IoTDA-side error codes the sandbox uses in ``failed_devices`` (the real ones are undocumented)
ERR_NOT_CHILD = "IOTDA.014000"
ERR_DUPLICATE = "IOTDA.014001"
ERR_BAD_PRODUCT = "IOTDA.014002"
ERR_BAD_INPUT = "IOTDA.014003"
ERR_BAD_STATUS = "IOTDA.014004"

MAX_ID = 99_999_999_999_999_999
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
_N_TAGCODES = len(_SITES) * 1728
_encode = msgspec.json.Encoder().encode
#: a device's keys, in the order of the wire (and of every dict the fleet hands out)
_KEYS = ("id", "device_id", "device_name", "client_id", "node_id", "parent_device_id", "parent_device_name",
         "product", "status", "online_status", "node_type", "device_type", "app_id", "app_name", "tags",
         "description", "created_datetime", "last_updated_datetime", "last_login_datetime", "last_active_time",
         "client_ip", "keep_alive", "version")
#: a device for encoding only: made from the column values, no dict built
_Device = msgspec.defstruct("_Device", _KEYS)


class Fleet:
    """A reproducible fleet of LINK devices, with gateways, children and direct devices."""

    def __init__(self, devices: int = 2000, seed: int = 7) -> None:
        if not isinstance(devices, int) or devices < 0:
            raise ValueError(f"devices must be a non-negative int, got {devices!r}")
        self.seed = seed
        self.lock = threading.RLock()
        rnd = random.Random(f"romakit-fleet-{seed}")
        #: the fixed epoch (ms) the fleet's time stamps are relative to
        self.epoch_ms: int = _BASE_EPOCH_MS + rnd.randrange(0, 180) * DAY_MS
        self._t0 = time.monotonic()
        self._secret_salt = f"{seed}:{rnd.random()}"
        self._products: list[dict[str, Any]] = []
        self._product_index: dict[int, int] = {}
        pid = 100_000 + rnd.randrange(0, 800_000)
        for name, maker, model, proto, ptype, _prefix, _w in _PRODUCTS:
            pid += rnd.randrange(3, 400)
            self._product_index[pid] = len(self._products)
            self._products.append({
                "product_id": pid, "product_name": name, "manufacturer_id": maker,
                "model": model, "protocol_type": proto, "product_type": ptype,
            })
        self._product_ids = np.array([p["product_id"] for p in self._products], dtype=np.int64)
        self._cellular = np.array([p["protocol_type"] == 1 for p in self._products])  # IMEI-like node_ids
        napps = 2 + int(rnd.random() * 2)
        self._apps = [(f"{rnd.getrandbits(128):032x}", name) for name, _ in _APPS[:napps]]
        self._app_index = {a: i for i, (a, _) in enumerate(self._apps)}
        self._next_id = 7_100_000 + rnd.randrange(0, 50_000)
        # run-time state: created devices' own dicts and indexes, per-gateway counters
        self._made: dict[int, dict[str, Any]] = {}  # row -> dict of a device created at run time
        self._cid_made: dict[str, int] = {}  # client_id -> row, created devices
        self._node_made: dict[str, int] = {}  # node_id -> row, created devices (alive)
        self._kids_made: dict[int, list[int]] = {}  # gateway row -> rows of children created
        self._child_seq: dict[int, int] = {}  # gateway row -> last child number used (if changed)
        self._version: dict[int, int] = {}  # gateway row -> child list version (if not 1)
        self._order: FleetView | None = None
        self._rev = 0
        self._build(devices, rnd)

    # -- generation ------------------------------------------------------------------
    def _build(self, n: int, rnd: random.Random) -> None:
        n_gw = 0 if n < 2 else max(1, round(n / 40))
        n_child = round(n * 0.6) if n_gw else 0
        n_child = min(n_child, n - n_gw)
        roles_list = [1] * n_gw + [2] * n_child + [0] * (n - n_gw - n_child)
        rnd.shuffle(roles_list)
        role = np.array(roles_list, dtype=np.int8)
        stream = fleetgen.Stream(rnd)
        d = stream.doubles(2 * n)
        ids = self._next_id + np.cumsum(1 + (d[0::2] * d[1::2] * 40).astype(np.int64))
        if n:
            self._next_id = int(ids[-1])
        self._mac_base = stream.getrandbits(40)
        self._imei_base = stream.randbelow(10**12)
        cols = fleetgen.device_draws(stream, n, self.epoch_ms, len(self._apps))

        weight = {name: w for name, *_rest, w in _PRODUCTS}
        product = np.empty(n, dtype=np.int8)
        for kind in (1, 0):
            idx = [i for i, p in enumerate(self._products) if (p["product_type"] == 1) == (kind == 1)]
            cum = fleetgen.cumulative([weight[self._products[i]["product_name"]] for i in idx])
            mask = (role == 1) if kind == 1 else (role != 1)
            product[mask] = np.array(idx, dtype=np.int8)[np.searchsorted(cum, cols["product_u"][mask], "left")]

        gw_rows = np.flatnonzero(role == 1)
        dev_rows = np.flatnonzero(role == 0)
        kid_rows = np.flatnonzero(role == 2)
        number = np.zeros(n, dtype=np.int32)  # gateway / direct device number, child's number under its gateway
        number[gw_rows] = np.arange(1, len(gw_rows) + 1)
        number[dev_rows] = np.arange(1, len(dev_rows) + 1)
        parent = np.full(n, -1, dtype=np.int64)
        kid_start = np.zeros(len(gw_rows), dtype=np.int64)
        kid_count = np.zeros(len(gw_rows), dtype=np.int64)
        if len(gw_rows):
            # children spread unevenly: heavy-tailed (Pareto) weights per gateway (paretovariate(1.1))
            cum = np.array(fleetgen.cumulative([(1.0 - u) ** (-1.0 / 1.1) for u in stream.doubles(len(gw_rows)).tolist()]))
            g = np.minimum(np.searchsorted(cum, stream.doubles(len(kid_rows)), "left"), len(gw_rows) - 1)
            rank, order, kid_start = fleetgen.child_ranks(g, len(gw_rows))
            number[kid_rows] = rank
            parent[kid_rows] = gw_rows[g]
            kid_rows = kid_rows[order]
            kid_count = np.bincount(g, minlength=len(gw_rows))
        self._n_gen = n
        self._gw_rows, self._dev_rows, self._kid_rows = gw_rows, dev_rows, kid_rows
        self._kid_start, self._kid_count = kid_start, kid_count
        self._next_gw, self._next_dev = len(gw_rows) + 1, len(dev_rows) + 1
        self._gen = {"number": number, "site": cols["site"], "tagcode": cols["tagcode"], "ip": cols["ip"],
                     "desc": cols["desc"], "keep_alive": cols["keep_alive"], "version": cols["version"]}
        self._n = n
        self._alive_count = n
        self._c: dict[str, np.ndarray] = {
            "id": ids, "alive": np.ones(n, dtype=np.bool_), "role": role, "product": product,
            "status": cols["status"], "online": cols["online"], "created": cols["created"],
            "updated": cols["updated"], "login": cols["login"], "active": cols["active"],
            "app": cols["app"], "parent": parent,
        }
        self._tags_cache: dict[int, tuple[str, ...]] = {}
        self._lookup: dict[str, np.ndarray] | None = None

    # -- rows ------------------------------------------------------------------------
    def _col(self, name: str) -> np.ndarray:
        return self._c[name][:self._n]

    def _append(self, values: dict[str, Any]) -> int:
        """A new row (a device created at run time); returns its index."""
        row = self._n
        if row == len(self._c["id"]):
            grow = max(1024, row // 4)
            self._c = {k: np.concatenate([a, np.zeros(grow, dtype=a.dtype)]) for k, a in self._c.items()}
        for k, v in values.items():
            self._c[k][row] = v
        self._n += 1
        self._alive_count += 1
        return row

    def _row_of_id(self, did: Any) -> int | None:
        if isinstance(did, bool) or not isinstance(did, int) or not 0 < did <= MAX_ID:
            return None
        ids = self._col("id")
        row = int(np.searchsorted(ids, did))
        return row if row < self._n and ids[row] == did and self._c["alive"][row] else None

    def _rows_of_ids(self, ids: list[int]) -> list[int]:
        """Rows of ``ids`` (-1 for those not in the fleet), vectorised for long lists."""
        if not ids:
            return []
        ok = [isinstance(i, int) and not isinstance(i, bool) and 0 < i <= MAX_ID for i in ids]
        arr = np.array([i if good else 0 for i, good in zip(ids, ok, strict=True)], dtype=np.int64)
        col = self._col("id")
        rows = np.minimum(np.searchsorted(col, arr), max(self._n - 1, 0))
        if not self._n:
            return [-1] * len(ids)
        hit = (col[rows] == arr) & self._c["alive"][rows] & np.array(ok)
        return np.where(hit, rows, -1).tolist()

    def _gen_row_of_cid(self, cid: str) -> int | None:
        """The generated row a client_id names (``gw-0001``, ``gw-0001_c0007``, ``dev-000123``)."""
        if cid.startswith("dev-"):
            num = cid[4:]
            if num.isascii() and num.isdigit() and len(num) < 12 and f"{int(num):06d}" == num:
                k = int(num) - 1
                return int(self._dev_rows[k]) if 0 <= k < len(self._dev_rows) else None
            return None
        if not cid.startswith("gw-"):
            return None
        head, sep, tail = cid[3:].partition("_c")
        if not (head.isascii() and head.isdigit() and len(head) < 12 and f"{int(head):04d}" == head):
            return None
        g = int(head) - 1
        if not 0 <= g < len(self._gw_rows):
            return None
        if not sep:
            return int(self._gw_rows[g])
        if not (tail.isascii() and tail.isdigit() and len(tail) < 12 and f"{int(tail):04d}" == tail):
            return None
        k = int(tail) - 1
        return int(self._kid_rows[self._kid_start[g] + k]) if 0 <= k < self._kid_count[g] else None

    def _row_of_cid(self, cid: Any) -> int | None:
        if not isinstance(cid, str):
            return None
        row = self._cid_made.get(cid)
        if row is not None:
            return row
        row = self._gen_row_of_cid(cid)
        return row if row is not None and self._c["alive"][row] else None

    def _row_of_node(self, node_id: Any) -> int | None:
        if not isinstance(node_id, str):
            return None
        if node_id in self._node_made:
            return self._node_made[node_id]
        found = fleetgen.node_id_index(node_id, self._imei_base, self._mac_base)
        if found is None or found[0] >= self._n_gen or not self._c["alive"][found[0]]:
            return None
        i, cellular = found
        if bool(self._cellular[self._c["product"][i]]) != cellular:
            return None
        # exact text only (a4:.., lower-case hex digits or other separators name no device)
        return i if fleetgen.node_id_text(i, cellular, self._imei_base, self._mac_base) == node_id else None

    # -- formatting rows as device dicts ---------------------------------------------
    def _names(self, rows: np.ndarray) -> list[str]:
        """device_name of generated rows: ``{product prefix}-{site}-{row + 1:05d}``."""
        prefix = self._tables()["name_prefix"][self._c["product"][rows] * len(_SITES) + self._gen["site"][rows]]
        return [f"{a}-{b:05d}" for a, b in zip(prefix.tolist(), (rows + 1).tolist(), strict=True)]

    def _tags(self, code: int) -> tuple[str, ...]:
        tags = self._tags_cache.get(code)
        if tags is None:
            tags = self._tags_cache[code] = fleetgen.tags_of(code, _SITES, _TAGS)
        return tags

    def _dicts(self, rows: np.ndarray) -> list[dict[str, Any]]:
        """Device dicts of ``rows`` (any order): generated rows formatted from the columns,
        created rows from their own dict; the changing fields from the columns for both."""
        rows = np.asarray(rows, dtype=np.int64)
        made = rows >= self._n_gen
        if made.any():
            out: list[Any] = [None] * len(rows)
            at_gen = np.flatnonzero(~made)
            for k, d in zip(at_gen.tolist(), self._gen_dicts(rows[at_gen]), strict=True):
                out[k] = d
            for k in np.flatnonzero(made).tolist():
                out[k] = self._made_dict(int(rows[k]))
            return out
        return self._gen_dicts(rows)

    def _made_dict(self, row: int) -> dict[str, Any]:
        c = self._c
        out = dict(self._made[row])
        out["product"] = dict(out["product"])
        out["tags"] = list(out["tags"])
        out["online_status"] = int(c["online"][row])
        out["last_updated_datetime"] = int(c["updated"][row])
        login, active = int(c["login"][row]), int(c["active"][row])
        out["last_login_datetime"] = None if login < 0 else login
        out["last_active_time"] = None if active < 0 else active
        return out

    def _gen_dicts(self, rows: np.ndarray) -> list[dict[str, Any]]:
        out = [dict(zip(_KEYS, values, strict=True)) for values in zip(*self._gen_values(rows), strict=True)]
        for d in out:  # their own copies of the nested values
            d["product"] = d["product"].copy()
            d["tags"] = list(d["tags"])
        return out

    def _gen_values(self, rows: np.ndarray) -> list[list[Any]]:
        """The fields of generated ``rows``, one list per key of ``_KEYS`` (in that
        order), computed column-wise: only the strings are formatted one by one.
        ``product`` and ``tags`` are the shared (never changed) ones."""
        c, g = self._c, self._gen
        product = c["product"][rows]
        role = c["role"][rows]
        number = g["number"][rows]
        prow = c["parent"][rows]
        has_parent = prow >= 0
        pr = np.where(has_parent, prow, 0)
        ids = c["id"][rows].tolist()
        t = self._tables()
        names = self._names(rows)
        kids = np.flatnonzero(has_parent)
        pnames = np.full(len(rows), None, dtype=object)
        pnames[kids] = self._names(pr[kids])
        # client_id: gw-NNNN, dev-NNNNNN or gw-NNNN_cNNNN (the parent's number first)
        cids = np.empty(len(rows), dtype=object)
        at = np.flatnonzero(role == 1)
        cids[at] = t["gw_cid"][number[at] - 1]
        cids[kids] = t["gw_cid"][g["number"][pr[kids]] - 1] + t["kid_suffix"][number[kids]]
        at = np.flatnonzero(role == 0)
        cids[at] = [f"dev-{n:06d}" for n in number[at].tolist()]
        # node_id: 86 + 13 digits on cellular products, else A4:XX:XX:XX:XX:XX
        node_ids = np.empty(len(rows), dtype=object)
        cell = self._cellular[product]
        at = np.flatnonzero(cell)
        node_ids[at] = [f"86{v:013d}" for v in ((self._imei_base + rows[at] * 7919) % 10**13).tolist()]
        at = np.flatnonzero(~cell)
        v = (self._mac_base + rows[at] * 104_729) % (1 << 40)
        node_ids[at] = "A4:" + t["hex1"][v >> 32] + ":" + t["hex2"][(v >> 16) & 0xFFFF] + ":" + t["hex2"][v & 0xFFFF]
        ip = g["ip"][rows]
        ips = [f"10.{a}.{b}.{d}" if a >= 0 else "" for a, b, d in
               zip(np.where(ip >= 0, ip >> 16, -1).tolist(), ((ip >> 8) & 255).tolist(),
                   (1 + (ip & 255) % 254).tolist(), strict=True)]
        roles = role.tolist()
        return [
            ids, ids, names, cids.tolist(), node_ids.tolist(),
            np.where(has_parent, c["id"][pr].astype(object), None).tolist(), pnames.tolist(),
            t["product"][product].tolist(), c["status"][rows].tolist(), c["online"][rows].tolist(), roles, roles,
            t["app_id"][c["app"][rows]].tolist(), t["app_name"][c["app"][rows]].tolist(),
            t["tags"][g["tagcode"][rows]].tolist(), t["desc"][g["desc"][rows]].tolist(),
            c["created"][rows].tolist(), c["updated"][rows].tolist(),
            _none_below_zero(c["login"][rows]), _none_below_zero(c["active"][rows]),
            ips, t["keep_alive"][g["keep_alive"][rows]].tolist(), t["version"][g["version"][rows]].tolist(),
        ]

    def _tables(self) -> dict[str, np.ndarray]:
        """Lookup tables (object arrays) from the small codes in the columns to values."""
        if self._lookup is None:
            def table(values: list) -> np.ndarray:
                out = np.empty(len(values), dtype=object)
                out[:] = values
                return out

            self._lookup = {"product": table(self._products), "app_id": table([a for a, _ in self._apps]),
                            "app_name": table([n for _, n in self._apps]),
                            "tags": table([self._tags(code) for code in range(_N_TAGCODES)]),
                            "desc": table(_DESCRIPTIONS), "keep_alive": table(list(_KEEP_ALIVE)),
                            "version": table(_VERSIONS),
                            "name_prefix": table([f"{p[5]}-{site}" for p in _PRODUCTS for site in _SITES]),
                            "gw_cid": table([f"gw-{k:04d}" for k in range(1, len(self._gw_rows) + 1)]),
                            "kid_suffix": table([f"_c{k:04d}" for k in range(int(self._kid_count.max(initial=0)) + 1)]),
                            "hex1": table([f"{k:02X}" for k in range(256)]),
                            "hex2": table([f"{k >> 8:02X}:{k & 255:02X}" for k in range(65536)])}
        return self._lookup

    def _json(self, rows: np.ndarray) -> bytes:
        """The JSON array of the devices of ``rows``: the bytes encoding ``_dicts(rows)``
        gives, without building dicts (msgspec structs made from the column values:
        the listing's hot path)."""
        made = rows >= self._n_gen
        if not made.any():
            return _encode([_Device(*v) for v in zip(*self._gen_values(rows), strict=True)])
        out = np.empty(len(rows), dtype=object)
        at_gen = np.flatnonzero(~made)
        out[at_gen] = [_Device(*v) for v in zip(*self._gen_values(rows[at_gen]), strict=True)]
        for k in np.flatnonzero(made).tolist():
            out[k] = _Device(**self._made_dict(int(rows[k])))
        return _encode(out.tolist())

    def _one(self, row: int | None) -> dict[str, Any] | None:
        return None if row is None else self._dicts(np.array([row]))[0]

    @property
    def revision(self) -> int:
        """A counter that rises on every change to the fleet (for readers' caches)."""
        return self._rev

    def now_ms(self) -> int:
        """The fleet clock: the fixed epoch plus the monotonic time since the fleet was built."""
        return self.epoch_ms + int((time.monotonic() - self._t0) * 1000)

    # -- reading ---------------------------------------------------------------------
    def __len__(self) -> int:
        return self._alive_count

    def get(self, id: int) -> dict[str, Any] | None:  # noqa: A002 - the wire name
        """The device with LINK id ``id`` (a fresh dict), or None."""
        with self.lock:
            return self._one(self._row_of_id(id))

    def by_client_id(self, cid: str) -> dict[str, Any] | None:
        """The device whose IoTDA-side id (``client_id``) is ``cid`` (a fresh dict), or None."""
        with self.lock:
            return self._one(self._row_of_cid(cid))

    def by_node_id(self, node_id: str) -> dict[str, Any] | None:
        """The device whose ``node_id`` is ``node_id`` (a fresh dict), or None."""
        with self.lock:
            return self._one(self._row_of_node(node_id))

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
                self._order = FleetView(self, np.flatnonzero(self._col("alive")))
            return self._order

    def names_and_products(self, ids: list[int]) -> list[tuple[str, int] | None]:
        """``(device_name, product_id)`` of each of ``ids`` (None when not in the fleet),
        without formatting whole devices: what a force-offline answer needs."""
        with self.lock:
            rows = self._rows_of_ids(ids)
            found = [r for r in rows if r >= 0]
            named = iter(FleetView(self, np.array(found, dtype=np.int64)).strings("device_name"))
            pids = iter(self._product_ids[self._c["product"][found]].tolist())
            return [(next(named), next(pids)) if r >= 0 else None for r in rows]

    def products(self) -> list[dict[str, Any]]:
        """Copies of the products, sorted by product_id."""
        with self.lock:
            return [dict(p) for p in sorted(self._products, key=lambda p: p["product_id"])]

    def apps(self) -> list[tuple[str, str]]:
        """The ``(app_id, app_name)`` pairs devices belong to."""
        return list(self._apps)

    def gateways(self) -> list[dict[str, Any]]:
        """The gateways (node_type 1, fresh dicts), sorted by id."""
        with self.lock:
            return self._dicts(np.flatnonzero(self._col("alive") & (self._col("role") == 1)))

    def _kid_rows_of(self, row: int) -> list[int]:
        kids: list[int] = []
        if row < self._n_gen:
            g = self._gen["number"][row] - 1
            kids = self._kid_rows[self._kid_start[g]:self._kid_start[g] + self._kid_count[g]].tolist()
        kids += self._kids_made.get(row, [])
        alive = self._c["alive"]
        return [k for k in kids if alive[k]]

    def children_of(self, gateway_id: int) -> list[dict[str, Any]]:
        """The children of gateway ``gateway_id`` (LINK id; fresh dicts), sorted by id."""
        with self.lock:
            row = self._row_of_id(gateway_id)
            if row is None or self._c["role"][row] != 1:
                return []
            return self._dicts(np.array(sorted(self._kid_rows_of(row)), dtype=np.int64))

    def secret_of(self, client_id: str) -> str:
        """The device's MQTT secret (16 hex chars), deterministic from seed and client_id.

        Raises KeyError for a client_id not in the fleet.
        """
        with self.lock:
            if self._row_of_cid(client_id) is None:
                raise KeyError(client_id)
        return hashlib.sha256(f"{self._secret_salt}:{client_id}".encode()).hexdigest()[:16]

    def version_of(self, gateway_cid: str) -> int:
        """The gateway's child-list version: rises on every child add or delete; 0 if unknown."""
        with self.lock:
            row = self._row_of_cid(gateway_cid)
            if row is None or self._c["role"][row] != 1:
                return 0
            return self._version.get(row, 1)

    # -- storing and removing --------------------------------------------------------
    def _store(self, dev: dict[str, Any], parent_row: int | None) -> None:
        row = self._append({
            "id": dev["id"], "alive": True, "role": dev["node_type"],
            "product": self._product_index[dev["product"]["product_id"]], "status": dev["status"],
            "online": dev["online_status"], "created": dev["created_datetime"],
            "updated": dev["last_updated_datetime"], "login": -1, "active": -1,
            "app": self._app_index[dev["app_id"]], "parent": -1 if parent_row is None else parent_row,
        })
        self._made[row] = dev
        self._cid_made[dev["client_id"]] = row
        self._node_made[dev["node_id"]] = row
        if parent_row is not None:
            self._kids_made.setdefault(parent_row, []).append(row)
        self._order = None
        self._rev += 1

    def _unstore(self, row: int) -> None:
        """Remove a live row. A deleted gateway's children keep their parent fields."""
        c = self._c
        c["alive"][row] = False
        self._alive_count -= 1
        dev = self._made.get(row)
        if dev is not None:
            self._cid_made.pop(dev["client_id"], None)
            self._node_made.pop(dev["node_id"], None)
        parent = int(c["parent"][row])
        if parent >= 0 and c["alive"][parent]:
            self._version[parent] = self._version.get(parent, 1) + 1
        self._order = None
        self._rev += 1

    # -- LINK-side changes -----------------------------------------------------------
    def force_offline(self, ids: Iterable[int]) -> list[int]:
        """Set online_status 2 on the existing ones of ``ids``; returns those ids."""
        ids = list(ids)
        with self.lock:
            rows = self._rows_of_ids(ids)
            hit = [r for r in rows if r >= 0]
            self._c["online"][hit] = 2
            self._c["updated"][hit] = self.now_ms()
            self._rev += 1
        return [did for did, r in zip(ids, rows, strict=True) if r >= 0]

    def delete(self, ids: Iterable[int]) -> list[int]:
        """Remove the existing ones of ``ids``; returns the removed ids.

        Deleting a gateway removes only the gateway: its children stay, with their
        parent fields unchanged (orphans), as the LINK side does not cascade.
        """
        ids = list(ids)
        removed = []
        with self.lock:
            alive = self._c["alive"]
            for did, row in zip(ids, self._rows_of_ids(ids), strict=True):
                if row >= 0 and alive[row]:  # a repeated id is removed once
                    self._unstore(row)
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
            return self._made_dict(self._create(fields))

    def _create(self, f: dict[str, Any]) -> int:
        """Check ``f``, store the device; returns its row."""
        name = f.get("device_name")
        if not isinstance(name, str) or not 2 <= len(name) <= 64:
            raise ValueError(f"device_name must be a string of 2..64 characters, got {name!r}")
        pid = f.get("product_id")
        if isinstance(pid, str) and pid.isdigit():
            pid = int(pid)
        if isinstance(pid, bool) or not isinstance(pid, int) or pid not in self._product_index:
            raise ValueError(f"product_id {pid!r} does not exist")
        node_id = f.get("node_id")
        if not isinstance(node_id, str) or not 2 <= len(node_id) <= 64:
            raise ValueError(f"node_id must be a string of 2..64 characters, got {node_id!r}")
        if self._row_of_node(node_id) is not None:
            raise ValueError(f"node_id {node_id!r} already exists")
        parent_row = None
        parent_id = f.get("parent_device_id")
        if parent_id is not None:
            if isinstance(parent_id, float):
                parent_id = int(parent_id)
            parent_row = self._row_of_id(parent_id) if isinstance(parent_id, int) else None
            if parent_row is None or self._c["role"][parent_row] != 1:
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
        if cid is not None and (not isinstance(cid, str) or not _CID_RE.match(cid) or self._row_of_cid(cid) is not None):
            raise ValueError(f"client_id {cid!r} is malformed or already taken")
        product = self._products[self._product_index[pid]]
        role = 1 if product["product_type"] == 1 else (2 if parent_row is not None else 0)
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
            parent_row = None  # a gateway product makes a gateway, never a child
            while not dev["client_id"]:
                dev["client_id"] = f"gw-{self._next_gw:04d}"
                self._next_gw += 1
                if self._row_of_cid(dev["client_id"]) is not None:
                    dev["client_id"] = ""
        elif parent_row is not None:
            gw = self._one(parent_row)
            assert gw is not None
            seq = self._child_seq_get(parent_row)
            while not dev["client_id"]:
                seq += 1
                cand = f"{gw['client_id']}_c{seq:04d}"
                if self._row_of_cid(cand) is None:
                    dev["client_id"] = cand
            self._child_seq[parent_row] = seq
            dev["parent_device_id"], dev["parent_device_name"] = gw["id"], gw["device_name"]
            self._version[parent_row] = self._version.get(parent_row, 1) + 1
        else:
            while not dev["client_id"]:
                cand = f"dev-{self._next_dev:06d}"
                self._next_dev += 1
                if self._row_of_cid(cand) is None:
                    dev["client_id"] = cand
        self._store(dev, parent_row)
        row = self._n - 1
        if role == 1:
            self._child_seq[row] = 0
        return row

    def _child_seq_get(self, row: int) -> int:
        if row in self._child_seq:
            return self._child_seq[row]
        return int(self._kid_count[self._gen["number"][row] - 1]) if row < self._n_gen else 0

    # -- MQTT-side changes (IoTDA $sub_device_manager) -------------------------------
    def _gateway_row(self, gateway_cid: str) -> int | None:
        row = self._row_of_cid(gateway_cid)
        return row if row is not None and self._c["role"][row] == 1 else None

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
            c = self._c
            for cid in child_cids:
                row = self._row_of_cid(cid)
                if row is None or c["parent"][row] != gw or c["role"][row] != 2:
                    failed.append((str(cid), ERR_NOT_CHILD, f"device {cid} not found or not a child of {gateway_cid}"))
                    continue
                self._unstore(row)
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
                if self._row_of_node(node_id) is not None:
                    fail(ERR_DUPLICATE, f"node_id {node_id} already exists")
                    continue
                ipid = int(pid) if isinstance(pid, str) and pid.isdigit() else pid
                k = self._product_index.get(ipid) if isinstance(ipid, int) and not isinstance(ipid, bool) else None
                if k is None or self._products[k]["product_type"] != 0:
                    fail(ERR_BAD_PRODUCT, f"product {pid} not found or not a child product")
                    continue
                name = spec.get("name") or f"{_PRODUCTS[k][5]}-{node_id.replace(':', '').lower()[-12:]}"
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
                dev = self._made[row]
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
            gw = self._row_of_cid(gateway_cid)
            now = self.now_ms()
            c = self._c
            for item in statuses:
                item = item if isinstance(item, dict) else {}
                cid, st = item.get("device_id"), item.get("status")
                row = self._row_of_cid(cid)
                if gw is None or row is None or c["parent"][row] != gw:
                    failed.append({"device_id": cid, "error_code": ERR_NOT_CHILD,
                                   "error_msg": f"device {cid} not found or not a child of {gateway_cid}"})
                    continue
                if st not in ("ONLINE", "OFFLINE"):
                    failed.append({"device_id": cid, "error_code": ERR_BAD_STATUS,
                                   "error_msg": f"status {st!r} is not ONLINE or OFFLINE"})
                    continue
                c["online"][row] = 1 if st == "ONLINE" else 2
                c["updated"][row] = now
                if st == "ONLINE":
                    c["login"][row] = c["active"][row] = now
                ok.append({"device_id": cid, "status": st})
                self._rev += 1
        return ok, failed


class FleetView:
    """Devices of a fleet in a fixed order, read column-wise: a sequence of device dicts
    (``view[i]``, ``view[a:b]``, iteration) formatted only for what is read, and
    masks over its columns (``view.column("online_status") == 1``) to narrow it
    (``view.where(mask)``) without formatting anything."""

    _COLUMNS = {"id": "id", "node_type": "role", "online_status": "online", "status": "status",
                "created_datetime": "created", "app": "app"}

    def __init__(self, fleet: Fleet, rows: np.ndarray) -> None:
        self._fleet = fleet
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, key: int | slice) -> Any:
        with self._fleet.lock:
            if isinstance(key, slice):
                return self._fleet._dicts(self.rows[key])
            return self._fleet._dicts(self.rows[key:key + 1] if key >= 0 else self.rows[key:][:1])[0]

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for at in range(0, len(self.rows), 1000):
            yield from self[at:at + 1000]

    def json(self, start: int, stop: int) -> bytes:
        """``view[start:stop]`` as the bytes of a JSON array (what encoding it would
        give), formatted without building dicts, for pages answered as they are."""
        with self._fleet.lock:
            return self._fleet._json(self.rows[start:stop])

    def where(self, mask: np.ndarray) -> FleetView:
        """The devices of this view where ``mask`` (one bool per device) is true."""
        return FleetView(self._fleet, self.rows[mask])

    def reversed(self) -> FleetView:
        """This view in the opposite order."""
        return FleetView(self._fleet, self.rows[::-1])

    def column(self, name: str) -> np.ndarray:
        """One value per device: ``id``, ``node_type``, ``online_status``, ``status``,
        ``created_datetime``, ``product_id``, ``parent_id`` (-1 for none) or ``app``
        (the index of its ``(app_id, app_name)`` in ``fleet.apps()``)."""
        f = self._fleet
        with f.lock:
            if name == "product_id":
                return f._product_ids[f._c["product"][self.rows]]
            if name == "parent_id":
                parent = f._c["parent"][self.rows]
                return np.where(parent >= 0, f._c["id"][np.maximum(parent, 0)], -1)
            return f._c[self._COLUMNS[name]][self.rows]

    def strings(self, name: str) -> list[str]:
        """One string per device: ``device_name``, ``client_id`` or ``node_id``."""
        f = self._fleet
        with f.lock:
            if name != "device_name":
                return [d[name] for d in self[:]]
            gen = self.rows < f._n_gen
            if gen.all():
                return f._names(self.rows)
            out: list[str] = [""] * len(self.rows)  # created devices from their own dict, the rest from the columns
            for k, name_ in zip(np.flatnonzero(gen).tolist(), f._names(self.rows[gen]), strict=True):
                out[k] = name_
            for k in np.flatnonzero(~gen).tolist():
                out[k] = f._made[int(self.rows[k])]["device_name"]
            return out

    def has_tag(self, tag: str) -> np.ndarray:
        """One bool per device: ``tag`` is among its tags."""
        f = self._fleet
        with f.lock:
            table = np.array([tag in f._tags(code) for code in range(_N_TAGCODES)])
            gen = self.rows < f._n_gen
            out = np.zeros(len(self.rows), dtype=np.bool_)
            out[gen] = table[f._gen["tagcode"][self.rows[gen]]]
            for k in np.flatnonzero(~gen).tolist():
                out[k] = tag in f._made[int(self.rows[k])]["tags"]
            return out


def _none_below_zero(values: np.ndarray) -> list[int | None]:
    """A time stamp column as values: -1 (never) is None."""
    return np.where(values < 0, None, values.astype(object)).tolist()
