"""The generated part of a :class:`~romakit.sim.fleet.Fleet`, as columns (numpy arrays).

Columns instead of a dict per device (what that saves: ``benchmarks/bench_sandbox.py``,
in the README), and a device is formatted only when it is read. The columns hold the same values the dict-per-device
generator (commit 20d913e and before) drew, draw for draw: its ``random.Random`` stream
is taken over by numpy's MT19937 (the same generator, state copied) and every draw
of the per-device loop is found by position, so a seed gives the same fleet as
before, to the last time stamp (``tests/sim/test_fleet_columns.py`` pins it).

Per device the old loop drew 13 doubles (15 when the device had ever connected)
plus one per tag; where device ``i`` starts is a chain (start of ``i + 1`` = start
of ``i`` + its draw count), the only sequential step, a plain loop over ints.
"""

from __future__ import annotations

import random

import numpy as np

DAY_MS = 86_400_000
_BLOCK = 1 << 16  # devices per block of draws (bounds the temporary arrays)
_MAX_DRAWS = 18  # doubles one device can take: 15 + 3 tags


class Stream:
    """``random.Random``'s stream continued by numpy: the same 32-bit words, in bulk.

    ``doubles(k)`` equals ``[rnd.random() for _ in range(k)]``; the ``peek_`` methods
    read ahead without consuming, the ``skip_`` ones consume. (``rnd.shuffle`` stays
    Python's: its draws depend on each other, and a loop over pre-drawn words is no faster.)
    """

    def __init__(self, rnd: random.Random) -> None:
        state = rnd.getstate()[1]
        bg = np.random.MT19937()
        bg.state = {"bit_generator": "MT19937",
                    "state": {"key": np.array(state[:624], dtype=np.uint32), "pos": state[624]}}
        # full-range uint32 draws are the generator's raw outputs, in order
        self._gen = np.random.Generator(bg)
        self._buf = np.empty(0, dtype=np.uint32)
        self._pos = 0

    def peek_words(self, k: int) -> np.ndarray:
        """The next ``k`` 32-bit outputs, not consumed."""
        have = len(self._buf) - self._pos
        if have < k:
            more = self._gen.integers(0, 1 << 32, max(k - have, 1 << 20), dtype=np.uint32)
            self._buf = np.concatenate([self._buf[self._pos:], more])
            self._pos = 0
        return self._buf[self._pos:self._pos + k]

    def skip_words(self, k: int) -> None:
        self.peek_words(k)
        self._pos += k

    def words(self, k: int) -> np.ndarray:
        out = self.peek_words(k)
        self._pos += k
        return out

    def peek_doubles(self, k: int) -> np.ndarray:
        """The next ``k`` doubles ``random()`` would return, not consumed."""
        w = self.peek_words(2 * k)
        return ((w[0::2] >> 5).astype(np.float64) * 67108864.0 + (w[1::2] >> 6)) * (1.0 / 9007199254740992.0)

    def skip_doubles(self, k: int) -> None:
        self.skip_words(2 * k)

    def doubles(self, k: int) -> np.ndarray:
        out = self.peek_doubles(k)
        self._pos += 2 * k
        return out

    def getrandbits(self, k: int) -> int:
        """``random.getrandbits(k)`` (little-endian 32-bit words, as CPython fills them)."""
        value, shift = 0, 0
        for w in self.words((k - 1) // 32 + 1).tolist():
            if k < 32:
                w >>= 32 - k
            value |= w << shift
            shift, k = shift + 32, k - 32
        return value

    def randbelow(self, n: int) -> int:
        """``random.randrange(n)`` (rejection sampling on ``n.bit_length()`` bits)."""
        k = n.bit_length()
        r = self.getrandbits(k)
        while r >= n:
            r = self.getrandbits(k)
        return r


def cumulative(weights: list[float]) -> list[float]:
    """Running sums scaled to end at 1.0 (bisected with a uniform draw to pick by weight)."""
    out, s = [], 0.0
    for w in weights:
        s += w
        out.append(s)
    return [x / s for x in out]


def device_draws(stream: Stream, n: int, epoch: int, n_apps: int) -> dict[str, np.ndarray]:
    """The per-device draws of ``n`` devices, column-wise, consuming exactly what the
    dict-per-device loop consumed. ``product_u`` is the uniform the product was picked by."""
    parts: list[dict[str, np.ndarray]] = []
    done = 0
    while done < n:
        b = min(_BLOCK, n - done)
        d = stream.peek_doubles(_MAX_DRAWS * (b + 1))
        s = np.arange(_MAX_DRAWS * b)
        online = d[s + 2] >= 0.05
        t = np.where(online, s + 8, s + 6)
        step = (np.where(online, 15, 13) + (d[t] * d[t + 1] * 4).astype(np.int64)).tolist()
        starts = [0] * b
        pos = 0
        for j in range(b):
            starts[j] = pos
            pos += step[pos]
        parts.append(_gather(d, np.array(starts, dtype=np.int64), epoch, n_apps))
        stream.skip_doubles(pos)
        done += b
    if not parts:
        return _gather(np.zeros(_MAX_DRAWS), np.zeros(0, dtype=np.int64), epoch, n_apps)
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def _gather(d: np.ndarray, s: np.ndarray, epoch: int, n_apps: int) -> dict[str, np.ndarray]:
    """Every field of devices whose draws start at ``s`` in ``d`` (the old loop's order)."""
    u = d[s + 2]
    online = np.where(u < 0.05, 0, np.where(u < 0.75, 1, 2)).astype(np.int8)
    on = online != 0
    created = epoch - 365 * DAY_MS + (d[s + 3] * 364 * DAY_MS).astype(np.int64)
    span_c = (epoch - created).astype(np.float64)
    login = created + (d[s + 4] * span_c).astype(np.int64)
    span_l = (epoch - login).astype(np.float64)
    active = login + (d[s + 5] * span_l).astype(np.int64)
    updated = np.where(on, login + (d[s + 6] * span_l).astype(np.int64), created + (d[s + 4] * span_c).astype(np.int64))
    a = np.where(on, s + 7, s + 5)
    ntags = (d[a + 1] * d[a + 2] * 4).astype(np.int64)
    picks = [np.where(ntags > k, (d[a + 3 + k] * 11).astype(np.int64), -1) for k in range(3)]
    t = a + 3 + ntags
    site = (d[s] * 10).astype(np.int64)
    return {
        "site": site.astype(np.int8), "product_u": d[s + 1], "online": online, "created": created,
        "updated": updated, "login": np.where(on, login, -1), "active": np.where(on, active, -1),
        "app": (d[a] * n_apps).astype(np.int8),
        # one code for the tag set: site and up to three picks (each -1..10)
        "tagcode": (site * 1728 + (picks[0] + 1) * 144 + (picks[1] + 1) * 12 + picks[2] + 1).astype(np.int32),
        "ip": np.where(on, (d[t] * 16_777_216).astype(np.int64), -1).astype(np.int32),
        "status": (d[t + 1] < 0.02).astype(np.int8),
        "desc": (d[t + 2] * 8).astype(np.int8),
        "keep_alive": (d[t + 3] * 4).astype(np.int8),
        "version": (d[t + 4] * 60).astype(np.int8),
    }


def tags_of(code: int, sites: list[str], tags: list[str]) -> tuple[str, ...]:
    """The tag list a ``tagcode`` stands for (sorted when the device drew tags)."""
    site, rest = divmod(code, 1728)
    picks = [(rest // 144) - 1, (rest // 12) % 12 - 1, rest % 12 - 1]
    site_tag = f"site-{sites[site]}"
    drawn = {tags[p] for p in picks if p >= 0}
    return tuple(sorted(drawn | {site_tag})) if drawn else (site_tag,)


def child_ranks(groups: np.ndarray, n_groups: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For items in order assigned to ``groups``: each item's 1-based rank in its group,
    the items grouped (stable, CSR order) and each group's start in that order."""
    order = np.argsort(groups, kind="stable")
    counts = np.bincount(groups, minlength=n_groups)
    starts = np.cumsum(counts) - counts
    rank = np.empty(len(groups), dtype=np.int64)
    rank[order] = np.arange(len(groups)) - np.repeat(starts, counts)
    return rank + 1, order, starts


def node_id_text(i: int, cellular: bool, imei_base: int, mac_base: int) -> str:
    """The node_id of generated device ``i``: IMEI-like on cellular products, else MAC-like."""
    if cellular:
        return f"86{(imei_base + i * 7919) % 10**13:013d}"
    return "A4:" + ((mac_base + i * 104_729) % (1 << 40)).to_bytes(5, "big").hex(":").upper()


def node_id_index(node_id: str, imei_base: int, mac_base: int) -> tuple[int, bool] | None:
    """``(i, cellular)`` of the generated device whose node_id this would be, or None
    (the inverse of :func:`node_id_text`; the caller checks ``i`` is in range)."""
    if len(node_id) == 15 and node_id.startswith("86") and node_id.isascii() and node_id.isdigit():
        i = ((int(node_id[2:]) - imei_base) * pow(7919, -1, 10**13)) % 10**13
        return i, True
    if len(node_id) == 17 and node_id.startswith("A4:"):
        try:
            v = int.from_bytes(bytes.fromhex(node_id[3:].replace(":", " ")), "big")
        except ValueError:
            return None
        return ((v - mac_base) * pow(104_729, -1, 1 << 40)) % (1 << 40), False
    return None


