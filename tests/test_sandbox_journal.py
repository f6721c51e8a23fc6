"""Practice never fills the real journal: a sandbox's runs go to the sandbox journal
(``<ROMAKIT_HOME>/sandbox/journal.sqlite3``), whether the client came from
``rk.sandbox()``, was built by hand, from a profile, or is the ``romakit`` command in a
shell that sourced ``romakit sim --env``; a journal the user names (``journal=``,
``ROMAKIT_JOURNAL``, ``--journal``) is used as named. Exports and reports without a
folder go to ``<ROMAKIT_HOME>/exports``, never beside the notebook."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from support.cli import link_env, romakit

import romakit as rk
from romakit.store.journal import Journal
from romakit.store.schema import path, sandbox_path
from romakit.wire import SANDBOX_INSTANCE_PREFIX, is_sandbox_instance

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def practice():
    """A sandbox as a notebook starts it: its own journal (the default)."""
    with rk.sandbox(devices=300, seed=47, mqtt=False) as s:
        yield s


def _online(sb, n: int, skip: int = 0) -> list[int]:
    with sb.link_client(progress=False, journal=False) as c:
        f = c.devices(online_status="online").sort_values("id")
    return f["id"].astype(int).tolist()[skip:skip + n]


def _ops(where: Path) -> list[str]:
    return rk.journal(url=where)["op_id"].tolist() if where.exists() else []


def test_a_sandboxs_runs_go_to_the_sandbox_journal_and_the_real_one_stays_clean(practice):
    assert is_sandbox_instance(practice.credentials.instance_id)
    assert practice.credentials.instance_id.startswith(SANDBOX_INSTANCE_PREFIX)
    link = practice.link_client(progress=False)
    assert link.journal is practice.journal and practice.journal.where == sandbox_path()
    res = link.force_offline(_online(practice, 5))
    assert _ops(sandbox_path()) == [res.op_id]
    assert rk.journal(url=practice.journal)["op_id"].tolist() == [res.op_id]
    assert not path().exists() and rk.journal().empty  # the real journal: not even created
    assert rk.resume(res.op_id, link).op_id == res.op_id  # the client's journal: nothing left to send
    # a client built by hand on a sandbox's instance knows it is one
    c = practice.credentials
    with rk.LinkClient(practice.link_endpoint, c.project_id, c.instance_id, rk.AkSk(c.ak, c.sk), progress=False) as own:
        assert own.journal.where == sandbox_path()
        again = own.force_offline(_online(practice, 2, skip=5))
    assert _ops(sandbox_path()) == [res.op_id, again.op_id] and not path().exists()
    link.close()


def test_a_journal_the_user_names_is_used_as_named(practice, tmp_path, monkeypatch):
    mine = tmp_path / "mine.sqlite3"
    with practice.link_client(progress=False, journal=str(mine)) as link:
        res = link.force_offline(_online(practice, 2, skip=10))
    assert _ops(mine) == [res.op_id]
    with rk.sandbox(devices=60, seed=5, mqtt=False, journal=str(mine)) as other:
        assert other.journal.where == mine
    env = tmp_path / "env.sqlite3"
    monkeypatch.setenv("ROMAKIT_JOURNAL", str(env))  # a team's journal, say: named, so it wins
    with practice.link_client(progress=False) as link:
        assert link.journal.where == env
        res = link.force_offline(_online(practice, 2, skip=12))
    assert _ops(env) == [res.op_id] and Journal.for_sandbox().where == env
    monkeypatch.setenv("ROMAKIT_JOURNAL", "0")
    with practice.link_client(progress=False) as link:
        assert link.force_offline(_online(practice, 1, skip=14)).ok
    assert not sandbox_path().exists()  # switched off is off


def test_a_profile_on_a_sandbox_journals_there_unless_its_journal_key_says_otherwise(practice, monkeypatch):
    for k, v in link_env(practice).items():
        monkeypatch.setenv(k, v)
    conn = rk.connect()
    try:
        assert conn.kind == "env" and conn.journal.where == sandbox_path() == conn.link.journal.where
        res = conn.link.force_offline(_online(practice, 2, skip=16), progress=False)
    finally:
        conn.close()
    assert _ops(sandbox_path()) == [res.op_id] and not path().exists()
    sandbox_conn = rk.connect("sandbox", devices=60, seed=5)
    try:  # the sandbox rk.connect() starts journals into the sandbox journal too
        assert sandbox_conn.journal.where == sandbox_path() == sandbox_conn.link.journal.where
    finally:
        sandbox_conn.close()
        sandbox_conn.sandbox.close()


@pytest.mark.slow
def test_the_command_line_on_a_sandbox_reads_and_writes_the_sandbox_journal(practice):
    # a shell that sourced `romakit sim --env`: no journal named (cli_env names the test's)
    env = {**link_env(practice), "ROMAKIT_JOURNAL": ""}
    ids = [str(i) for i in _online(practice, 3, skip=20)]
    run = romakit("offline", "--json", *ids, env=env)
    assert run.returncode == 0, run.stderr
    op = rk.journal(url=sandbox_path())["op_id"].tolist()[-1]
    assert op in run.stdout and not path().exists()
    listed = romakit("journal", "--json", env=env)
    assert listed.returncode == 0 and op in listed.stdout
    # any shell: `romakit report OP` of a sandbox run finds it, says where, and writes to the exports folder
    plain = {"ROMAKIT_JOURNAL": ""}
    report = romakit("report", op, env=plain)
    assert report.returncode == 0, report.stderr
    assert f"{op} is a sandbox run: reading the sandbox journal" in report.stderr
    written = Path(report.stdout.strip())
    assert written == Path(os.environ["ROMAKIT_HOME"]) / "exports" / f"romakit-report-{op}.html" and written.exists()
    # --journal names another: used as named
    named = romakit("--journal", str(path()), "journal", "--json", env=env)
    assert named.returncode == 0 and op not in named.stdout


def test_exports_and_reports_without_a_folder_go_to_the_exports_folder(practice, tmp_path, monkeypatch):
    from romakit.widgets import ResultsView

    here = tmp_path / "notebooks"  # the notebook's folder, say: nothing may land here
    here.mkdir()
    monkeypatch.chdir(here)
    exports = Path(os.environ["ROMAKIT_HOME"]) / "exports"
    with practice.link_client(progress=False) as link:
        res = link.force_offline(_online(practice, 2, skip=30))
        report = res.report()
        assert report == exports / f"romakit-report-{res.op_id}.html" and report.exists()
        view = ResultsView(res, target=link)
        assert view.path.value == str(exports / f"romakit-force_offline-{res.op_id}")
        assert str(exports) in view.where.value
        view.csv_button.click()
        assert view.last_export == exports / f"romakit-force_offline-{res.op_id}.csv"
        view.path.value = "case-1234"  # a bare name: the exports folder too
        view.report_button.click()
        assert view.last_export == exports / "case-1234.html" and view.last_export.exists()
        view.path.value = str(here / "typo" / "x")  # another folder must exist: a typo makes none
        view.parquet_button.click()
        assert "does not exist" in view.message
    assert list(here.iterdir()) == []
