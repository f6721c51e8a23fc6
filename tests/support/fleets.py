"""Generated fleet frames shaped like ``link.devices()`` (the columns the picker uses), for
tests and benchmarks that need far more devices than a sandbox is worth starting for."""

from __future__ import annotations

import numpy as np
import pandas as pd

PRODUCTS = ["SmartMeter EM300", "AquaGuard Leak Sensor", "ClimaCore HVAC Controller", "ThermoSense T/H Sensor"]
SITES = np.array(["sz", "bj", "sh", "gz", "hz"])  # every 5th device's name carries each site


def big_fleet(n: int, seed: int = 3, *, devices_per_gateway: int = 40) -> pd.DataFrame:
    """``n`` devices, the same for the same seed; 60% have a parent gateway."""
    rng = np.random.default_rng(seed)
    i = np.arange(n)
    digits = np.char.zfill(i.astype(str), max(6, len(str(n - 1))))
    gw = rng.integers(0, max(n // devices_per_gateway, 1), n)
    has_parent = rng.random(n) < 0.6
    return pd.DataFrame({
        "id": pd.array(7_000_000 + i * 3, dtype="Int64"),
        "device_name": pd.array(np.char.add(np.char.add("dev-", SITES[i % 5]), digits), dtype="string"),
        "client_id": pd.array(np.char.add("dev-", digits), dtype="string"),
        "node_id": pd.array(np.char.add("A4:00:", np.char.zfill(i.astype(str), 8)), dtype="string"),
        "product_name": pd.Categorical(rng.choice(PRODUCTS, n)),
        "online_status": pd.Categorical(rng.choice(["online", "offline", "never_connected"], n, p=[0.7, 0.25, 0.05]),
                                        categories=["never_connected", "online", "offline"]),
        "parent_device_name": pd.array(np.where(has_parent, np.char.add("edgegw-", gw.astype(str)), None), dtype="string"),
    })
