"""Shared fixtures: an isolated ROMAKIT_HOME per test; the module's sandbox on loopback
(``sb``), a LINK client on it (``link``), the devices each test takes (``claim``); the
local Mosquitto, probed once (``mosquitto``)."""

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


#: the local Mosquitto the ``mosquitto`` marker's tests also run against
MOSQUITTO = ("127.0.0.1", 1883)


@pytest.fixture(scope="session")
def mosquitto() -> tuple[str, int]:
    """Mosquitto's address, probed once a session; a test that needs it skips, saying why,
    when nothing answers there."""
    try:
        with socket.create_connection(MOSQUITTO, timeout=1.0):
            pass
    except OSError as e:
        pytest.skip(f"Mosquitto does not answer on {MOSQUITTO[0]}:{MOSQUITTO[1]} ({e.strerror or e})")
    return MOSQUITTO


#: the sandbox ``sb`` starts unless a module says otherwise with ``SANDBOX = {...}``
SANDBOX = {"devices": 2000, "seed": 11}


@pytest.fixture(scope="module")
def sb(request):
    """A sandbox shared by a module's tests, closed afterwards: ``rk.sandbox(**SANDBOX)``,
    where a module sets its own fleet size and seed (its assertions depend on them) as
    ``SANDBOX = {"devices": 1200, "seed": 31}``. Its clients journal into the journal in
    effect (``journal=True``: the test's ``ROMAKIT_HOME`` file, or the ``ROMAKIT_JOURNAL``
    a backend test sets), which the tests read with ``rk.journal()``; a sandbox's own
    journal, its default, is tested in ``tests/test_sandbox_journal.py``."""
    import romakit as rk

    with rk.sandbox(**{"journal": True, **getattr(request.module, "SANDBOX", SANDBOX)}) as s:
        yield s


@pytest.fixture
def link(sb, request):
    """A :class:`~romakit.LinkClient` on the module's sandbox for one test, with no fault on
    and an empty request log at its start and no fault left on after it. Its options are
    ``progress=False`` and the module's ``LINK = {...}`` (e.g. ``{"chunk_size": 25}``)."""
    sb.clear_faults()
    sb.link.clear_log()
    with sb.link_client(**{"progress": False, **getattr(request.module, "LINK", {})}) as c:
        yield c
    sb.clear_faults()


class Claims:
    """Devices and gateways of one sandbox, each handed to one test only: a test acts on
    its own, whichever tests ran before it on the same fleet."""

    def __init__(self, sb) -> None:
        self.sb = sb
        self.taken: set = set()

    def online(self, n: int) -> list[int]:
        """``n`` online devices (by LINK id, in id order) that no other test took."""
        with self.sb.link_client(progress=False) as c:
            f = c.devices(online_status="online")
        ids = [i for i in f["id"].astype(int).tolist() if i not in self.taken][:n]
        assert len(ids) == n, f"the sandbox has {len(ids)} untaken online devices, {n} asked"
        self.taken.update(ids)
        return ids

    def gateway(self, children: int = 1) -> str:
        """A gateway (IoTDA id) with at least ``children`` children that no other test took."""
        gw = next(g for g in self.sb.gateways() if g not in self.taken and len(self.sb.children(g)) >= children)
        self.taken.add(gw)
        return gw


@pytest.fixture(scope="module")
def claim(sb) -> Claims:
    """Hands out the module sandbox's devices and gateways, each to one test (see :class:`Claims`)."""
    return Claims(sb)


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


@pytest.fixture
def pg_schema():
    """A fresh PostgreSQL schema (``.url`` journals into it), dropped afterwards; skips,
    saying why, when PostgreSQL does not answer."""
    from support.postgres import PgSchema, postgres_reason

    reason = postgres_reason()
    if reason:
        pytest.skip(reason)
    schema = PgSchema()
    yield schema
    schema.drop()
