"""A fixed set of a fleet's devices in a fixed order, read column-wise."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import numpy as np

from romakit.sim.columns import DeviceColumns


class FleetView:
    """Devices of a fleet in a fixed order: a sequence of device dicts (``view[i]``,
    ``view[a:b]``, iteration) formatted only for what is read, and masks over its
    columns (``view.column("online_status") == 1``) to narrow it (``view.where(mask)``)
    without formatting anything. Reads take ``lock``, the fleet's."""

    def __init__(self, columns: DeviceColumns, lock: threading.RLock, rows: np.ndarray) -> None:
        self._columns = columns
        self._lock = lock
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, key: int | slice) -> Any:
        with self._lock:
            if isinstance(key, slice):
                return self._columns.dicts(self.rows[key])
            return self._columns.dicts(self.rows[key:key + 1] if key >= 0 else self.rows[key:][:1])[0]

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for at in range(0, len(self.rows), 1000):
            yield from self[at:at + 1000]

    def json(self, start: int, stop: int, extra: dict[str, Any] | None = None) -> bytes:
        """``view[start:stop]`` as the bytes of a JSON array (what encoding it would
        give, each device updated with ``extra``), formatted without building dicts,
        for pages answered as they are."""
        with self._lock:
            return self._columns.json(self.rows[start:stop], extra)

    def where(self, mask: Any) -> FleetView:
        """The devices of this view where ``mask`` (one bool per device) is true."""
        return FleetView(self._columns, self._lock, self.rows[np.asarray(mask, dtype=bool)])

    def reversed(self) -> FleetView:
        """This view in the opposite order."""
        return FleetView(self._columns, self._lock, self.rows[::-1])

    def column(self, name: str) -> np.ndarray:
        """One value per device: ``id``, ``node_type``, ``online_status``, ``status``,
        ``created_datetime``, ``product_id``, ``parent_id`` (-1 for none) or ``app``
        (the index of its ``(app_id, app_name)`` in ``fleet.apps()``)."""
        with self._lock:
            return self._columns.column(name, self.rows)

    def strings(self, name: str) -> list[str]:
        """One string per device: ``device_name``, ``client_id`` or ``node_id``."""
        with self._lock:
            return self._columns.strings(name, self.rows)

    def has_tag(self, tag: str) -> np.ndarray:
        """One bool per device: ``tag`` is among its tags."""
        with self._lock:
            return self._columns.tag_mask(tag, self.rows)
