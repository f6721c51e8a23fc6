"""``romakit console`` on a terminal, short of a browser (``tests/widgets/test_console_page.py``
drives the page in Chromium): its help; a Python without Voilà told what to install; a
refused key said in the terminal before any page exists; against an account (a profile
with the secrets in the environment) the page Voilà serves names the instance and holds
no secret; and ``ROMAKIT_PROFILE`` honoured by every command, as the README says.

Every command is a real subprocess on a pseudo-terminal (``support.cli.Terminal``);
waits are on its output, never a sleep."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from support.cli import ROOT, Terminal, link_env, romakit

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

SANDBOX = {"devices": 400, "seed": 19}  # the module's sandbox (conftest's sb fixture)


def _jupyter_dirs(tmp: Path) -> dict[str, str]:
    return {"JUPYTER_CONFIG_DIR": str(tmp / "jupyter-config"), "JUPYTER_RUNTIME_DIR": str(tmp / "jupyter-runtime"),
            "JUPYTER_DATA_DIR": str(tmp / "jupyter-data"), "IPYTHONDIR": str(tmp / "ipython")}


def _profile(tmp: Path, sb) -> dict[str, str]:
    """A profiles file naming the sandbox's LINK address as profile [acme] (no secret in it)."""
    c = sb.credentials
    path = tmp / "profiles.toml"
    path.write_text(f'[acme]\nendpoint = "{sb.link_endpoint}"\nproject_id = "{c.project_id}"\n'
                    f'instance_id = "{c.instance_id}"\n')
    return {"ROMAKIT_CONFIG": str(path), "ROMAKIT_AK": c.ak, "ROMAKIT_SK": c.sk}


def test_help_on_a_terminal():
    term = Terminal(["console", "--help"], {})
    assert term.wait() == 0, term.text
    text = term.text.replace("\r", "")
    for said in ("usage: romakit console", "--sandbox", "--profile NAME", "romakit console --profile acme",
                 "--secrets-file", "--page-port"):
        assert said in text, said


def test_without_voila_it_says_what_to_install(tmp_path):
    # a Python in which voila cannot be imported: a finder ahead of all others refuses it
    (tmp_path / "sitecustomize.py").write_text(
        "import sys\n"
        "class _NoVoila:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'voila' or name.startswith('voila.'):\n"
        "            raise ModuleNotFoundError(\"No module named 'voila'\", name='voila')\n"
        "sys.meta_path.insert(0, _NoVoila())\n")
    term = Terminal(["console"], {"PYTHONPATH": f"{tmp_path}:{ROOT}"})
    assert term.wait() == 2, term.text
    assert re.search(r"romakit: the console page needs Voila, which is not installed in this Python \(.+\): "
                     r"pip install voila \(it is in romakit's lab extra", term.text.replace("\r\n", " ")), term.text


def test_a_refused_key_is_said_before_any_page_exists(sb, tmp_path):
    env = {**link_env(sb), "ROMAKIT_SK": "0" * 40, **_jupyter_dirs(tmp_path)}
    term = Terminal(["console", "--chain"], env)
    assert term.wait() == 3, term.text
    assert "romakit: nothing was done: the pre-flight read was refused: HTTP 401 APIG.0301" in term.text
    assert "open http" not in term.text


def test_sandbox_with_connection_flags_is_refused(tmp_path):
    term = Terminal(["console", "--sandbox", "--region", "cn-north-4"], _jupyter_dirs(tmp_path))
    assert term.wait() == 2, term.text
    assert "--sandbox takes no connection settings (--region)" in term.text


def test_a_profile_page_names_the_instance_and_holds_no_secret(sb, tmp_path):
    c = sb.credentials
    term = Terminal(["console", "--profile", "acme"], {**_profile(tmp_path, sb), **_jupyter_dirs(tmp_path)})
    try:
        m = term.expect(re.compile(rb"open (http://127\.0\.0\.1:\d+/\?token=[A-Za-z0-9_-]+)"), timeout=120)
        assert "your account (the credential chain)" in term.text
        url = m.group(1).decode()
        anonymous = httpx.get(url.split("?")[0], timeout=60)  # no token: the login form, no page
        assert anonymous.status_code == 302 and "/login" in anonymous.headers["location"], anonymous
        page = httpx.get(url, timeout=180).text  # Voila runs the cell, then sends the page
    finally:
        term.ctrl_c()
        status = term.wait(60)
    assert status == 0 and "romakit console: stopped" in term.text, term.text
    assert f"romakit console: instance <code>{c.instance_id}</code>" in page.replace("\\u003c", "<").replace(
        "\\u003e", ">"), page[-3000:]
    assert "This is a real fleet." in page
    assert "endpoint from endpoint in profile" in page  # where each setting came from
    for secret in (c.sk, c.password, c.token):
        assert secret not in page


def test_every_command_honours_romakit_profile(sb, tmp_path):
    env = {**_profile(tmp_path, sb), "ROMAKIT_PROFILE": "acme"}
    done = romakit("check", env=env)
    assert done.returncode == 0, done.stderr
    assert re.search(r"instance_id\s+from instance_id in profile 'acme'", done.stdout), done.stdout
    assert "sk               from ROMAKIT_SK" in done.stdout
    refused = romakit("check", env={**env, "ROMAKIT_PROFILE": "sandbox"})
    assert refused.returncode == 2 and "the profile 'sandbox' is the in-process sandbox" in refused.stderr
