"""A seeded fleet, drawn column-wise with numpy: the same devices for the same seed.

About one device in 40 is a gateway; 60 % of the devices are children, spread over
the gateways by heavy-tailed (Pareto) weights; the rest are direct devices. Products
are drawn by weight (gateway products for gateways), every device has a site, 0 to 3
tags besides its site tag, an online status, time stamps in the year before the
fleet's epoch, an application, a description, a keep-alive and a firmware version.

Ids: ``client_id`` ``gw-0001``, ``gw-0001_c0007`` (child 7 of gateway 1),
``dev-000123``; ``device_name`` ``{product prefix}-{site}-{row:05d}``; ``node_id``
IMEI-like (``86`` and 13 digits) on cellular products, MAC-like (``A4:..``) otherwise,
distinct within the fleet.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from romakit.sim import catalog
from romakit.sim.catalog import DAY_MS

_STR = np.dtypes.StringDType()


@dataclass
class Generated:
    """A generated fleet: its fixed values and one column per device field."""

    epoch_ms: int
    secret_salt: str
    first_id: int
    products: list[dict[str, Any]]
    apps: list[tuple[str, str]]
    tag_sets: list[tuple[str, ...]]
    columns: dict[str, np.ndarray]


def generate(n: int, seed: int) -> Generated:
    """``n`` devices for ``seed``."""
    made = _draw(n, seed)
    _release_freed_memory()
    return made


def _draw(n: int, seed: int) -> Generated:
    digest = hashlib.sha256(f"romakit-fleet-{seed}".encode()).digest()
    rng = np.random.default_rng(int.from_bytes(digest[:16], "big"))
    epoch_ms = catalog.BASE_EPOCH_MS + int(rng.integers(0, 180)) * DAY_MS
    product_ids = 100_000 + int(rng.integers(0, 800_000)) + np.cumsum(rng.integers(3, 400, len(catalog.PRODUCTS)))
    products = [{"product_id": int(pid), "product_name": name, "manufacturer_id": maker, "model": model,
                 "protocol_type": proto, "product_type": ptype}
                for pid, (name, maker, model, proto, ptype, _prefix, _w) in zip(product_ids, catalog.PRODUCTS, strict=True)]
    apps = [(rng.bytes(16).hex(), name) for name in catalog.APPS[:int(rng.integers(2, 4))]]
    first_id = 7_100_000 + int(rng.integers(0, 50_000))

    n_gw = 0 if n < 2 else max(1, round(n / catalog.DEVICES_PER_GATEWAY))
    n_kid = min(round(n * catalog.CHILD_SHARE), n - n_gw) if n_gw else 0
    role = rng.permutation(np.repeat(np.array([1, 2, 0], dtype=np.int8), [n_gw, n_kid, n - n_gw - n_kid]))
    gw_rows = np.flatnonzero(role == 1)
    kid_rows = np.flatnonzero(role == 2)
    dev_rows = np.flatnonzero(role == 0)

    # children's gateways by heavy-tailed (Pareto) weights; a child's number counts up within its gateway
    weights = rng.pareto(1.1, n_gw) + 1.0
    gw_of_kid = rng.choice(n_gw, n_kid, p=weights / weights.sum()) if n_gw else np.zeros(0, dtype=np.int64)
    parent = np.full(n, -1, dtype=np.int64)
    parent[kid_rows] = gw_rows[gw_of_kid]
    order = np.argsort(gw_of_kid, kind="stable")
    counts = np.bincount(gw_of_kid, minlength=n_gw)
    kid_number = np.empty(n_kid, dtype=np.int64)
    kid_number[order] = np.arange(n_kid) - np.repeat(np.cumsum(counts) - counts, counts) + 1
    kids = np.zeros(n, dtype=np.int32)  # the last child number a gateway used
    kids[gw_rows] = counts

    product = np.empty(n, dtype=np.int8)
    for is_gw in (True, False):
        idx = [i for i, p in enumerate(catalog.PRODUCTS) if (p[4] == 1) == is_gw]
        w = np.array([catalog.PRODUCTS[i][6] for i in idx])
        mask = (role == 1) if is_gw else (role != 1)
        product[mask] = np.array(idx, dtype=np.int8)[rng.choice(len(idx), int(mask.sum()), p=w / w.sum())]

    online = rng.choice(3, n, p=catalog.ONLINE_SHARES).astype(np.int8)
    on = online != 0
    created = epoch_ms - 365 * DAY_MS + (rng.random(n) * 364 * DAY_MS).astype(np.int64)
    login = created + (rng.random(n) * (epoch_ms - created)).astype(np.int64)
    active = login + (rng.random(n) * (epoch_ms - login)).astype(np.int64)
    updated = np.where(on, active, login)

    site = rng.integers(0, len(catalog.SITES), n)
    # tags: the site's and up to three others, as a bit set; each distinct set is one code
    n_tags = (rng.random(n) * rng.random(n) * 4).astype(np.int64)
    bits = np.zeros(n, dtype=np.int64)
    for k in range(3):
        bits |= np.where(n_tags > k, 1 << rng.integers(0, len(catalog.TAGS), n), 0)
    tag_bits = site * (1 << len(catalog.TAGS)) + bits
    sets = np.flatnonzero(np.bincount(tag_bits, minlength=len(catalog.SITES) << len(catalog.TAGS)))
    tag_code = np.searchsorted(sets, tag_bits)
    tag_sets = [_tag_set(int(s)) for s in sets]

    columns = {
        "id": first_id + np.cumsum(rng.integers(1, 41, n)),
        "alive": np.ones(n, dtype=np.bool_), "role": role, "product": product,
        "status": (rng.random(n) < catalog.FROZEN_SHARE).astype(np.int8), "online": online,
        "created": created, "updated": updated, "login": np.where(on, login, -1), "active": np.where(on, active, -1),
        "app": rng.integers(0, len(apps), n).astype(np.int8), "parent": parent,
        "tags": tag_code.astype(np.int32),
        "desc": _weighted(rng, catalog.DESCRIPTIONS, n), "keep_alive": _weighted(rng, catalog.KEEP_ALIVE, n),
        "version": rng.integers(0, len(catalog.VERSIONS), n).astype(np.int16),
        "ip": np.where(on, rng.integers(0, 1 << 24, n), -1).astype(np.int32),
        "kids": kids, "kids_version": np.ones(n, dtype=np.int32),
    }
    # strings are put together as fixed-width bytes and made numpy strings once per column
    prefixes = np.array([f"{p[5]}-{s}-".encode() for p in catalog.PRODUCTS for s in catalog.SITES])
    columns["name"] = np.strings.add(prefixes[product * len(catalog.SITES) + site],
                                     _digits(np.arange(1, n + 1), 5)).astype(_STR)
    gw_cid = np.strings.add(b"gw-", _digits(np.arange(1, n_gw + 1), 4))
    cid = np.zeros(n, dtype=f"S{gw_cid.itemsize + 6 + len(str(n))}")
    cid[gw_rows] = gw_cid
    cid[dev_rows] = np.strings.add(b"dev-", _digits(np.arange(1, len(dev_rows) + 1), 6))
    cid[kid_rows] = np.strings.add(np.strings.add(gw_cid[gw_of_kid], b"_c"), _digits(kid_number, 4))
    columns["client_id"] = cid.astype(_STR)
    columns["node_id"] = _node_ids(rng, product, n)
    return Generated(epoch_ms, f"{seed}:{rng.random()}", first_id, products, apps, tag_sets, columns)


def _release_freed_memory() -> None:
    """Hand the heap pages the drawing's temporaries freed back to the system: glibc keeps
    them otherwise (about a third of a million-device fleet's resident size)."""
    name = ctypes.util.find_library("c")
    libc = ctypes.CDLL(name) if name else None
    trim = getattr(libc, "malloc_trim", None)
    if trim is not None:
        trim(0)


def _tag_set(code: int) -> tuple[str, ...]:
    site, bits = divmod(code, 1 << len(catalog.TAGS))
    drawn = {t for k, t in enumerate(catalog.TAGS) if bits >> k & 1}
    return tuple(sorted(drawn | {f"site-{catalog.SITES[site]}"}))


def _weighted(rng: np.random.Generator, values: dict[str, float], n: int) -> np.ndarray:
    """Codes (indexes into ``values``) drawn by the weights ``values`` maps to."""
    w = np.array(list(values.values()))
    return rng.choice(len(w), n, p=w / w.sum()).astype(np.int16)


def _digits(values: np.ndarray, width: int) -> np.ndarray:
    """Numbers as decimal ASCII bytes, zero-padded to ``width``: ``f"{v:0{width}d}"`` column-wise."""
    values = np.asarray(values, dtype=np.int64)
    longest = max(width, len(str(int(values.max(initial=0)))))
    text = np.empty((len(values), longest), dtype=np.uint8)
    for k in range(longest):
        text[:, longest - 1 - k] = values // 10**k % 10 + ord("0")
    size = np.maximum(width, np.floor(np.log10(np.maximum(values, 1))).astype(np.int64) + 1)
    out = np.zeros(len(values), dtype=f"S{longest}")
    for n in range(width, longest + 1):
        at = size == n
        out[at] = np.ascontiguousarray(text[at, longest - n:]).view(f"S{n}").ravel()
    return out


def _node_ids(rng: np.random.Generator, product: np.ndarray, n: int) -> np.ndarray:
    """Distinct node_ids: ``86`` + 13 digits on cellular products, else ``A4:XX:XX:XX:XX:XX``
    (a row's number stepped through an odd multiplier, so no two rows share one)."""
    rows = np.arange(n, dtype=np.int64)
    cellular = np.array([p[3] == 1 for p in catalog.PRODUCTS])[product]
    imei = (int(rng.integers(0, 10**13)) + rows * 7919) % 10**13
    mac = (int(rng.integers(0, 1 << 40)) + rows * 104_729) % (1 << 40)
    text = np.zeros((n, 17), dtype=np.uint8)
    text[:, :3] = np.frombuffer(b"A4:", dtype=np.uint8)
    hexdigits = np.frombuffer(b"0123456789ABCDEF", dtype=np.uint8)
    for k in range(5):
        byte = (mac >> (8 * (4 - k))) & 255
        text[:, 3 + 3 * k] = hexdigits[byte >> 4]
        text[:, 4 + 3 * k] = hexdigits[byte & 15]
        if k < 4:
            text[:, 5 + 3 * k] = ord(":")
    out = text.view("S17").ravel().copy()
    out[cellular] = np.strings.add(b"86", _digits(imei[cellular], 13))
    return out.astype(_STR)
