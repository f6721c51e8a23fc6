"""Device secrets never leave the clients: the sandbox answers with every device's own
credentials (LINK ``authentication.password``, IoTDA ``auth_info.secret``) and the
names of the staff who made them; a listing, ``device(id)``, a force-offline, a deletion,
the exports and a report, all journaled, hold none of the secrets anywhere (their
files and the journal database's bytes are searched), and staff names only where asked for."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from romakit.redact import is_secret, scrub

SANDBOX = {"devices": 300, "seed": 41}
LINK = {"chunk_size": 20}


def _files(root: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_the_sandbox_answers_carry_the_secrets(sb) -> None:
    """The premise: what the service sends holds passwords and staff names."""
    import httpx

    c = sb.credentials
    dev = sb.fleet.all()[0]
    r = httpx.get(f"{sb.link_endpoint}/v2/{c.project_id}/link/instances/{c.instance_id}/devices/{dev['id']}",
                  headers={"X-Auth-Token": c.token})
    body = r.json()
    assert body["authentication"]["password"] == dev["authentication"]["password"]
    assert re.fullmatch(r"(?=.*\d)(?=.*[a-z])(?=.*[A-Z])(?=.*[^\w]).{8,32}", body["authentication"]["password"])
    assert body["created_user"]["user_name"] and body["last_updated_user"]["user_name"]
    r = httpx.get(f"{sb.iotda_endpoint}/v5/iot/{c.project_id}/devices/{dev['client_id']}",
                  headers={"X-Auth-Token": c.token})
    assert r.json()["auth_info"]["secret"] == sb.fleet.secret_of(dev["client_id"])


def test_no_secret_reaches_a_frame_a_journal_an_export_or_a_report(sb, link, tmp_path) -> None:
    fleet = sb.fleet.all()
    passwords = {d["authentication"]["password"].encode() for d in fleet}
    secrets = {sb.fleet.secret_of(d["client_id"]).encode() for d in fleet}
    staff = {d[k]["user_name"].encode() for d in fleet for k in ("created_user", "last_updated_user")}
    assert len(passwords) == len(secrets) == len(fleet) and staff

    frame = link.devices()
    assert len(frame) == len(fleet)
    shown = link.device(int(frame["id"].iloc[0]))
    assert shown["authentication"] == {"user_name": shown["client_id"]}  # the user name is no secret
    assert "created_user" not in shown and "last_updated_user" not in shown
    page = link.device_page(0, 50)
    assert all("password" not in d["authentication"] and "created_user" not in d for d in page["items"])
    asked = link.device(int(frame["id"].iloc[0]), staff=True)
    assert "password" not in asked["authentication"] and asked["created_user"]["user_name"].encode() in staff
    with sb.iotda_client() as iot:
        inventory = iot.devices()
        kid = iot.device(str(inventory["device_id"].iloc[0]))
    assert "secret" not in kid["auth_info"] and kid["auth_info"]["auth_type"] == "SECRET"

    ids = frame["id"].astype("int64").tolist()
    offline = link.force_offline(ids[:60])
    deleted = link.delete_devices(ids[60:100])
    assert offline.ids("success") == ids[:60] and deleted.ids("success") == ids[60:100]
    assert sb.fleet.get(ids[60]) is None
    out = tmp_path / "exports"
    out.mkdir()
    frame.to_csv(out / "fleet.csv")
    inventory.to_csv(out / "inventory.csv")
    (out / "shown.txt").write_text(f"{shown!r}\n{page!r}\n{kid!r}\n{frame.to_string()}")
    for name, res in (("offline", offline), ("deleted", deleted)):
        res.to_csv(out / f"{name}.csv")
        res.to_parquet(out / f"{name}.parquet")
        res.report(out / f"{name}.html", verify=frame)

    home = Path(os.environ["ROMAKIT_HOME"])
    files = {**_files(out), **_files(home)}
    assert any(p.suffix in (".db", ".sqlite", ".sqlite3") or "journal" in p.name for p in files), sorted(files)
    assert files and all(len(b) for p, b in files.items() if p.suffix in (".csv", ".html", ".parquet"))
    for path, data in files.items():
        assert not [p for p in passwords if p in data], f"a device password in {path}"
        assert not [s for s in secrets if s in data], f"a device secret in {path}"
        assert not [s for s in staff if s in data], f"a staff name in {path}"
        assert not re.search(rb"Rk#[0-9a-f]{13}a7", data), f"a password-shaped value in {path}"


@pytest.mark.parametrize(("name", "secret"), [
    ("password", True), ("secondary_secret", True), ("X-Auth-Token", True), ("accessKey", True),
    ("device_private_key", True), ("psk", True), ("refresh_token", True),
    ("user_name", False), ("fingerprint", False), ("secure_access", False), ("tag_key", False),
    ("product_key", False), ("key", False), ("keep_alive", False), ("client_id", False), ("firmware_pinned", False),
])
def test_which_field_names_are_secret(name: str, secret: bool) -> None:
    assert is_secret(name) is secret


def test_scrub_walks_nested_answers() -> None:
    answer = {"items": [{"id": 1, "authentication": {"user_name": "u", "password": "p"}, "created_user": {"user_name": "s"},
                         "auth_info": {"secret": "x", "fingerprint": "f"}, "tags": [{"tag_key": "k", "token": "t"}]}]}
    assert scrub(answer) == {"items": [{"id": 1, "authentication": {"user_name": "u"}, "auth_info": {"fingerprint": "f"},
                                        "tags": [{"tag_key": "k"}]}]}
    assert scrub(answer, staff=True)["items"][0]["created_user"] == {"user_name": "s"}
    assert answer["items"][0]["authentication"]["password"] == "p"  # a copy: the answer is left as it was
