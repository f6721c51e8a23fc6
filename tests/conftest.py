"""Shared fixtures: an isolated ROMAKIT_HOME per test, and sandboxes on loopback."""

from __future__ import annotations

import socket

import pytest


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path, monkeypatch):
    """No test writes to the real user data directory (journal, config)."""
    monkeypatch.setenv("ROMAKIT_HOME", str(tmp_path / "romakit-home"))
    monkeypatch.setenv("ROMAKIT_CONFIG", str(tmp_path / "romakit-config.toml"))


def mosquitto_reason(host: str = "127.0.0.1", port: int = 1883) -> str | None:
    """None when Mosquitto answers on host:port, else why it is skipped."""
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return None
    except OSError as e:
        return f"Mosquitto does not answer on {host}:{port} ({e.strerror or e})"


@pytest.fixture(scope="module")
def sb():
    """A sandbox shared by a module's tests (LINK + MQTT), closed afterwards."""
    import romakit as rk

    with rk.sandbox(devices=2000, seed=11) as s:
        yield s
