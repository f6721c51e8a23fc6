"""A force-offline a watch sees: the watch started and through one cycle first, the
devices forced, two more cycles so it has recorded the drop, then stopped."""

from __future__ import annotations

from typing import Any


def forced_while_watched(client: Any, ids: list[int], name: str, *, every: float = 0.1, timeout: float = 30) -> Any:
    """Force ``ids`` offline through ``client`` while a watch named ``name`` records the
    fleet; returns the BatchResult (the watch's events are in the client's journal)."""
    import romakit as rk

    w = rk.watch(client, every=every, name=name)
    try:
        assert w.wait(1, timeout), w
        res = client.force_offline(ids)
        assert w.wait(w.cycles + 2, timeout), w
    finally:
        w.stop()
    return res
