"""Shared fixtures: an isolated ROMAKIT_HOME per test, and sandboxes on loopback."""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import tempfile

import pytest

# Module- and session-scoped fixtures run before the per-test ones: give the whole run
# its own home at once, so nothing ever touches the real user data directory.
_HOME = tempfile.mkdtemp(prefix="romakit-test-home-")
os.environ["ROMAKIT_HOME"] = _HOME
atexit.register(shutil.rmtree, _HOME, ignore_errors=True)


@pytest.fixture(scope="module", autouse=True)
def _module_home(tmp_path_factory):
    """Each test module journals into its own home (module-scoped fixtures included)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ROMAKIT_HOME", str(tmp_path_factory.mktemp("romakit-home")))
        yield


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path, monkeypatch):
    """No test writes to the real user data directory (journal, config)."""
    monkeypatch.setenv("ROMAKIT_HOME", str(tmp_path / "romakit-home"))
    monkeypatch.setenv("ROMAKIT_CONFIG", str(tmp_path / "romakit-config.toml"))
    # the credential chain reads the official SDK's variables and file: none of the machine's
    for name in [n for n in os.environ if n.startswith("HUAWEICLOUD_SDK_")]:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HUAWEICLOUD_SDK_CREDENTIALS_FILE", str(tmp_path / "no-huaweicloud-credentials"))


def mosquitto_reason(host: str = "127.0.0.1", port: int = 1883) -> str | None:
    """None when Mosquitto answers on host:port, else why it is skipped."""
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return None
    except OSError as e:
        return f"Mosquitto does not answer on {host}:{port} ({e.strerror or e})"


#: the sandbox ``sb`` starts unless a module says otherwise with ``SANDBOX = {...}``
SANDBOX = {"devices": 2000, "seed": 11}


@pytest.fixture(scope="module")
def sb(request):
    """A sandbox shared by a module's tests, closed afterwards: ``rk.sandbox(**SANDBOX)``,
    where a module sets its own fleet size and seed (its assertions depend on them) as
    ``SANDBOX = {"devices": 1200, "seed": 31}``."""
    import romakit as rk

    with rk.sandbox(**getattr(request.module, "SANDBOX", SANDBOX)) as s:
        yield s


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """Print the tables tests leave as ``record_property("table: TITLE", row_dict)``
    (the fault campaign's faults x operations), one table per title, after the run.
    Properties travel with the test reports, so this works under pytest-xdist too."""
    tables: dict[str, list[dict]] = {}
    for reports in terminalreporter.stats.values():
        for rep in reports:
            if getattr(rep, "when", None) != "call":
                continue
            for name, value in getattr(rep, "user_properties", ()):
                if isinstance(name, str) and name.startswith("table: ") and isinstance(value, dict):
                    tables.setdefault(name[len("table: "):], []).append(value)
    for title, rows in tables.items():
        rows.sort(key=lambda r: str(next(iter(r.values()), "")))  # stable: grouped by first column
        cols = list(dict.fromkeys(k for r in rows for k in r))
        width = {c: max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in cols}
        terminalreporter.write_sep("=", title)
        terminalreporter.write_line("  ".join(c.ljust(width[c]) for c in cols))
        terminalreporter.write_line("  ".join("-" * width[c] for c in cols))
        for r in rows:
            terminalreporter.write_line("  ".join(
                str(r.get(c, "")).rjust(width[c]) if isinstance(r.get(c), int) else str(r.get(c, "")).ljust(width[c])
                for c in cols))
