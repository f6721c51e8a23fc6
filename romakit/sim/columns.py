"""The fleet's devices as columns: one numpy array per field, one row per device in id
order, generated and created devices alike.

Numbers live in the columns as they are; strings that repeat (tags, description,
keep-alive, version, product, application) as codes into tables that grow when a
created device brings a new value; names and ids as numpy strings. A device is
formatted only when read: as dicts, or straight to JSON bytes for a page of a listing.
Rows are never removed: a deleted device's ``alive`` is False.

Fields that follow from others are computed when a device is read, never stored:
``authentication`` (the client id as user name, a password hashed from the fleet's
salt and the id), ``created_user`` / ``last_updated_user`` (one of the
catalogue's staff, picked by the id) and ``permissions`` (the same for every device).
"""

from __future__ import annotations

import bisect
import functools
import hashlib
from collections.abc import Hashable, Iterable, Mapping
from typing import Any

import msgspec
import numpy as np

from romakit.sim import catalog

#: a device's keys, in the order of the wire (and of every dict the fleet hands out)
KEYS = ("id", "device_id", "device_name", "client_id", "node_id", "parent_device_id", "parent_device_name",
        "product", "status", "online_status", "node_type", "device_type", "app_id", "app_name", "tags",
        "description", "created_datetime", "last_updated_datetime", "last_login_datetime", "last_active_time",
        "client_ip", "keep_alive", "version", "permissions", "authentication", "created_user", "last_updated_user")
#: the keys whose values are dicts or lists (``tags``: tuples): each dict handed out gets its own copy
_NESTED = ("product", "permissions", "authentication", "created_user", "last_updated_user")
#: a device for encoding only: made from the column values, no dict built
_Device = msgspec.defstruct("_Device", KEYS)
_encode = msgspec.json.Encoder().encode
_STAFF = [{"user_id": uid, "user_name": name} for uid, name in catalog.STAFF]
_STAFF_JSON = [msgspec.Raw(_encode(s)) for s in _STAFF]
_PERMISSIONS_JSON = msgspec.Raw(_encode(list(catalog.PERMISSIONS)))


class _Auth(msgspec.Struct, gc=False):
    """A device's ``authentication``, for encoding."""

    user_name: str
    password: str


#: the columns a view reads by their wire name
_WIRE_COLUMNS = {"id": "id", "node_type": "role", "online_status": "online", "status": "status",
                 "created_datetime": "created", "app": "app"}
_TEXT_COLUMNS = {"device_name": "name", "client_id": "client_id", "node_id": "node_id"}
MAX_ID = 99_999_999_999_999_999


class Table:
    """The values a code column stands for; a new value gets the next code."""

    def __init__(self, values: Iterable[Hashable]) -> None:
        self.values = list(values)
        self._codes = {v: i for i, v in enumerate(self.values)}
        self._array: np.ndarray | None = None

    def code(self, value: Hashable) -> int:
        if value not in self._codes:
            self._codes[value] = len(self.values)
            self.values.append(value)
            self._array = None
        return self._codes[value]

    def array(self) -> np.ndarray:
        """The values as an object array, to look codes up column-wise."""
        if self._array is None:
            self._array = np.empty(len(self.values), dtype=object)
            self._array[:] = self.values
        return self._array


class TextIndex:
    """Rows by the exact text of a string column: the rows there when it was built,
    sorted and bisected, and a dict of the rows added since."""

    _REBUILD_AFTER = 4096

    def __init__(self) -> None:
        self._order: np.ndarray | None = None
        self._recent: dict[str, list[int]] = {}

    def add(self, text: str, row: int) -> None:
        if self._order is not None:
            self._recent.setdefault(text, []).append(row)
            if len(self._recent) > self._REBUILD_AFTER:
                self._order = None

    def rows(self, column: np.ndarray, text: str) -> list[int]:
        """Every row whose text is ``text`` (deleted ones included)."""
        if self._order is None:
            self._order = np.argsort(column, kind="stable")
            self._recent = {}
        order = self._order
        at = bisect.bisect_left(order, text, key=column.__getitem__)
        out = []
        while at < len(order) and column[order[at]] == text:
            out.append(int(order[at]))
            at += 1
        return out + self._recent.get(text, [])


class DeviceColumns:
    """One row per device; see the module docstring. Not thread-safe: the fleet's lock guards it."""

    def __init__(self, columns: dict[str, np.ndarray], products: list[dict[str, Any]],
                 apps: list[tuple[str, str]], tables: dict[str, Table], *, salt: str = "") -> None:
        self._c = columns
        self._salt_bits = np.uint64(int(hashlib.sha256(salt.encode()).hexdigest()[:16], 16))
        self.n = len(columns["id"])
        self.products = products
        self.apps = apps
        self.tables = tables
        self._index = {"client_id": TextIndex(), "node_id": TextIndex()}
        self._lookup: dict[str, np.ndarray] = {
            "product": _objects(products), "app_id": _objects([a for a, _ in apps]),
            "app_name": _objects([name for _, name in apps]),
            "staff": _objects(_STAFF), "staff_json": _objects(_STAFF_JSON),
        }

    def col(self, name: str) -> np.ndarray:
        """Column ``name``, one value per row (a view: writes change the fleet)."""
        return self._c[name][:self.n]

    def append(self, values: dict[str, Any]) -> int:
        """A new row (columns not given are 0 or ""); returns its index."""
        row = self.n
        if row == len(self._c["id"]):
            grow = max(1024, row // 4)
            self._c = {k: np.concatenate([a, np.zeros(grow, dtype=a.dtype)]) for k, a in self._c.items()}
        for k, v in values.items():
            self._c[k][row] = v
        self.n += 1
        for name, index in self._index.items():
            index.add(values[name], row)
        return row

    # -- finding rows ----------------------------------------------------------------
    def row_of_id(self, did: Any) -> int | None:
        """The live row of LINK id ``did``, or None."""
        rows = self.rows_of_ids([did])
        return rows[0] if rows[0] >= 0 else None

    def rows_of_ids(self, ids: list[Any]) -> list[int]:
        """Live rows of ``ids`` (-1 for those not in the fleet), vectorised for long lists."""
        if not ids or not self.n:
            return [-1] * len(ids)
        ok = np.array([isinstance(i, int) and not isinstance(i, bool) and 0 < i <= MAX_ID for i in ids])
        arr = np.array([i if good else 0 for i, good in zip(ids, ok.tolist(), strict=True)], dtype=np.int64)
        col = self.col("id")
        rows = np.minimum(np.searchsorted(col, arr), self.n - 1)
        hit = (col[rows] == arr) & self._c["alive"][rows] & ok
        return np.where(hit, rows, -1).tolist()

    def row_of(self, name: str, text: Any) -> int | None:
        """The live row whose ``client_id`` or ``node_id`` (``name``) is ``text``, or None."""
        if not isinstance(text, str):
            return None
        alive = self._c["alive"]
        live = [r for r in self._index[name].rows(self.col(name), text) if alive[r]]
        return live[-1] if live else None

    # -- reading rows ----------------------------------------------------------------
    def dicts(self, rows: np.ndarray) -> list[dict[str, Any]]:
        """Device dicts of ``rows`` (any order), each with its own copies of the nested values."""
        out = [dict(zip(KEYS, values, strict=True)) for values in zip(*self._values(rows), strict=True)]
        for d in out:
            for key in _NESTED:
                d[key] = d[key].copy()
            d["tags"] = list(d["tags"])
        return out

    def json(self, rows: np.ndarray, extra: Mapping[str, Any] | None = None) -> bytes:
        """The JSON array of the devices of ``rows``: what encoding ``dicts(rows)``, each
        updated with ``extra`` (the same fields for every device), gives, without
        building dicts (the listing's hot path)."""
        if not extra:
            return _encode([_Device(*v) for v in zip(*self._values(rows, True), strict=True)])
        kind, tail = _with_fields(tuple(extra)), tuple(extra.values())
        return _encode([kind(*v, *tail) for v in zip(*self._values(rows, True), strict=True)])

    def column(self, name: str, rows: np.ndarray) -> np.ndarray:
        """One value per row: ``id``, ``node_type``, ``online_status``, ``status``,
        ``created_datetime``, ``product_id``, ``parent_id`` (-1 for none) or ``app``
        (the index of its ``(app_id, app_name)`` in ``apps``)."""
        c = self._c
        if name == "product_id":
            return np.array([p["product_id"] for p in self.products], dtype=np.int64)[c["product"][rows]]
        if name == "parent_id":
            parent = c["parent"][rows]
            return np.where(parent >= 0, c["id"][np.maximum(parent, 0)], -1)
        return c[_WIRE_COLUMNS[name]][rows]

    def strings(self, name: str, rows: np.ndarray) -> list[str]:
        """One string per row: ``device_name``, ``client_id`` or ``node_id``."""
        return self._c[_TEXT_COLUMNS[name]][rows].tolist()

    def tag_mask(self, tag: str, rows: np.ndarray) -> np.ndarray:
        """One bool per row: ``tag`` is among its tags."""
        has = np.array([tag in tags for tags in self.tables["tags"].values], dtype=np.bool_)
        return has[self._c["tags"][rows]]

    def _values(self, rows: np.ndarray, encoding: bool = False) -> list[list[Any]]:
        """The fields of ``rows``, one list per key of ``KEYS`` (in that order),
        computed column-wise. ``product``, ``tags``, ``permissions`` and the staff are
        the shared ones; ``encoding`` gives values only fit for encoding (faster)."""
        rows = np.asarray(rows, dtype=np.int64)
        c, t, lookup = self._c, self.tables, self._lookup
        parent = c["parent"][rows]
        has_parent = parent >= 0
        p = parent[has_parent]
        parent_ids = np.full(len(rows), None, dtype=object)
        parent_ids[has_parent] = c["id"][p].tolist()
        parent_names = np.full(len(rows), None, dtype=object)
        parent_names[has_parent] = c["name"][p].tolist()
        ip = c["ip"][rows]
        ips = [f"10.{a}.{b}.{1 + d % 254}" if a >= 0 else "" for a, b, d in
               zip(np.where(ip >= 0, ip >> 16, -1).tolist(), ((ip >> 8) & 255).tolist(), (ip & 255).tolist(),
                   strict=True)]
        id_column = c["id"][rows]
        ids = id_column.tolist()
        roles = c["role"][rows].tolist()
        app = c["app"][rows]
        client_ids = c["client_id"][rows].tolist()
        passwords = _passwords(self._salt_bits, id_column)
        if encoding:  # what encodes fastest: structs, and the shared values encoded once
            staff, permissions = lookup["staff_json"], _PERMISSIONS_JSON
            auth = [_Auth(cid, pw) for cid, pw in zip(client_ids, passwords, strict=True)]
        else:
            staff, permissions = lookup["staff"], list(catalog.PERMISSIONS)
            auth = [{"user_name": cid, "password": pw} for cid, pw in zip(client_ids, passwords, strict=True)]
        return [
            ids, ids, c["name"][rows].tolist(), client_ids, c["node_id"][rows].tolist(),
            parent_ids.tolist(), parent_names.tolist(), lookup["product"][c["product"][rows]].tolist(),
            c["status"][rows].tolist(), c["online"][rows].tolist(), roles, roles,
            lookup["app_id"][app].tolist(), lookup["app_name"][app].tolist(),
            t["tags"].array()[c["tags"][rows]].tolist(), t["desc"].array()[c["desc"][rows]].tolist(),
            c["created"][rows].tolist(), c["updated"][rows].tolist(),
            _none_below_zero(c["login"][rows]), _none_below_zero(c["active"][rows]), ips,
            t["keep_alive"].array()[c["keep_alive"][rows]].tolist(), t["version"].array()[c["version"][rows]].tolist(),
            [permissions] * len(ids), auth,
            staff[id_column % len(staff)].tolist(), staff[(id_column >> 2) % len(staff)].tolist(),
        ]


def _passwords(salt_bits: np.uint64, ids: np.ndarray) -> list[str]:
    """The devices' LINK passwords, mixed from the fleet's salt and their ids (SplitMix64,
    column-wise): 18 characters with an upper- and a lower-case letter, a digit and a
    sign, as LINK's password rule asks."""
    z = ids.astype(np.uint64) ^ salt_bits
    with np.errstate(over="ignore"):
        z = z + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = (z ^ (z >> np.uint64(31))) >> np.uint64(12)
    return [f"Rk#{v:013x}a7" for v in z.tolist()]


@functools.cache
def _with_fields(extra: tuple[str, ...]) -> type:
    """The encoding struct of a device with the fields ``extra`` after its own."""
    return msgspec.defstruct("_Device", KEYS + extra)


def _objects(values: list) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


def _none_below_zero(values: np.ndarray) -> list[int | None]:
    """A time stamp column as values: -1 (never) is None."""
    return np.where(values < 0, None, values.astype(object)).tolist()
