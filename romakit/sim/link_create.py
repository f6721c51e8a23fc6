"""The sandbox's CreateDevice (``POST .../devices``): one device per request, its body
read as the official SDK's ``CreateDeviceRequestBody`` writes it, checked by the public
reference's rules before the fleet is touched.

The body's fields (huaweicloudsdkroma v2): ``device_name`` (2..64: letters, digits,
CJK, the CJK punctuation ``（）。；，：“”、？《》`` and ``()_,#.?'-@%&!``), ``node_id``
(2..64: letters, digits, ``_`` and ``-``; the sandbox also takes ``:``, as its own
fleet's node ids are MAC addresses written with colons), ``product`` (``{product_id}``:
the SDK's ``ProductReferer``; a top-level ``product_id`` is taken too), ``app_id``,
``parent_device_id`` (a gateway: the device becomes its child; a fraction is rounded
down), ``status`` (0 enabled, 1 disabled), ``description`` (<= 200), ``tags`` (strings),
``user_name`` (10..50: letters, digits, ``-``) and ``password`` (8..32, at least one
digit, upper- and lower-case letter and sign). A given password is checked, never kept
or shown (a sandbox device's secret is derived from its client id); the answer is the
new Device, ``online_status`` 0 (never connected) and no login time.

The answers (see :data:`CODES`): 400 ``SCB.00000000`` naming the parameter (a type, a
length or a character rule); 404 ``ROMA.00110006`` for a product, parent gateway or
application that does not exist, in LINK's "resource does not exist" words; 400
:data:`DUPLICATE_NODE` for a node id the instance already has and 400 :data:`QUOTA` past
the instance's device quota (the fault switch ``device_quota``). The public reference
names no code for the last two: these are the sandbox's own.
"""

from __future__ import annotations

import re
from typing import Any

from romakit.sim.columns import MAX_ID
from romakit.sim.faults import Faults
from romakit.sim.fleet import Fleet
from romakit.sim.link_request import Answer, LinkRequest, bad, not_found, whole

#: the sandbox's code for a node id the instance already has (the public reference names none)
DUPLICATE_NODE = "ROMA.00110007"
#: the sandbox's code for a create past the instance's device quota (the public reference names none)
QUOTA = "ROMA.00110014"
#: every code CreateDevice answers, and when
CODES = {
    "SCB.00000000": "400: a bad parameter (type, length, characters), named in the message",
    "ROMA.00110006": "404: the product, the parent gateway or the application does not exist",
    DUPLICATE_NODE: "400: the node_id is already taken in this instance (the sandbox's code)",
    QUOTA: "400: the instance holds its device quota already (the sandbox's code)",
}
NAME_RE = re.compile(r"^[A-Za-z0-9\u4e00-\u9fff（）。；，：“”、？《》()_,#.?'\-@%&!]{2,64}$")
NODE_RE = re.compile(r"^[A-Za-z0-9_\-:]{2,64}$")
USER_RE = re.compile(r"^[A-Za-z0-9\-]{10,50}$")
_SIGNS = set("~!@#$%^&*()-_=+|[{}];:<>/?")
#: the body's fields (anything else is ignored, as the service ignores unknown fields)
FIELDS = ("device_name", "node_id", "product", "product_id", "app_id", "parent_device_id", "status", "description",
          "tags", "user_name", "password")


def _password_ok(pw: str) -> bool:
    return (8 <= len(pw) <= 32 and any(c.isdigit() for c in pw) and any(c.isupper() for c in pw)
            and any(c.islower() for c in pw) and any(c in _SIGNS for c in pw))


def _texts(data: dict[str, Any]) -> None:
    """The text fields' types, lengths and characters (400 naming the first bad one)."""
    for name in ("device_name", "node_id", "app_id", "description", "user_name", "password"):
        v = data.get(name)
        if v is not None and not isinstance(v, str):
            raise bad("create", name, "body", f"{name} must be a string.")
    name, node = data.get("device_name"), data.get("node_id")
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise bad("create", "device_name", "body", "device_name must be 2..64 letters, digits, CJK characters or "
                                                   "()_,#.?'-@%&! signs.")
    if not isinstance(node, str) or not NODE_RE.match(node):
        raise bad("create", "node_id", "body", "node_id must be 2..64 letters, digits, '_' or '-'.")
    if len(data.get("description") or "") > 200:
        raise bad("create", "description", "body", "description must be at most 200 characters.")
    if data.get("user_name") is not None and not USER_RE.match(data["user_name"]):
        raise bad("create", "user_name", "body", "user_name must be 10..50 letters, digits or '-'.")
    if data.get("password") is not None and not _password_ok(data["password"]):
        raise bad("create", "password", "body", "password must be 8..32 characters with a digit, an upper- and a "
                                                "lower-case letter and a sign.")
    tags = data.get("tags")
    if tags is not None and (not isinstance(tags, list) or not all(isinstance(t, str) for t in tags)):
        raise bad("create", "tags", "body", "tags must be a list of strings.")
    status = data.get("status")
    if status is not None and (type(status) is not int or status not in (0, 1)):
        raise bad("create", "status", "body", f"status must be 0 or 1, got {str(status)[:20]}.")


def create(fleet: Fleet, faults: Faults, ctx: LinkRequest) -> tuple[int, dict[str, Any]]:
    """CreateDevice: ``(201, the new device)``, or an :class:`Answer` raised (see the module)."""
    data = ctx.json_object("create", "deviceCreateRequest")
    _texts(data)
    pid = data.get("product_id")
    if pid is None and isinstance(data.get("product"), dict):
        pid = data["product"].get("product_id")
    if pid is None:
        raise bad("create", "product", "body", "product.product_id is required.")
    pid = whole(pid, "create", "product_id")
    parent = whole(data.get("parent_device_id"), "create", "parent_device_id")
    for name, value in (("product_id", pid), ("parent_device_id", parent)):
        if value is not None and not 1 <= value <= MAX_ID:
            raise bad("create", name, "body", f"{name} must lie in 1..{MAX_ID}.")
    fields = {k: data[k] for k in ("device_name", "node_id", "app_id", "description", "tags", "status")
              if data.get(k) is not None}
    with fleet.lock:
        if pid not in {p["product_id"] for p in fleet.products()}:
            raise not_found(pid)
        if parent is not None:
            gw = fleet.get(parent)
            if gw is None:
                raise not_found(parent)
            if gw["node_type"] != 1:
                raise bad("create", "parent_device_id", "body", f"device {parent} is not a gateway.")
            fields["parent_device_id"] = parent
        if "app_id" in fields and fields["app_id"] not in {a for a, _ in fleet.apps()}:
            raise not_found(fields["app_id"])
        if fleet.by_node_id(data["node_id"]) is not None:
            raise Answer(400, DUPLICATE_NODE, f"The device node_id {data['node_id']} already exists in this instance.")
        quota = faults.device_quota
        if quota is not None and len(fleet) >= quota:
            raise Answer(400, QUOTA, f"The number of devices has reached the quota of the instance ({quota}).")
        try:
            dev = fleet.create(product_id=pid, **fields)
        except ValueError as e:  # what the fleet refuses besides (a text it cannot store)
            raise bad("create", str(e).split(" ", 1)[0], "body", str(e)) from None
    return 201, dev


__all__ = ["CODES", "DUPLICATE_NODE", "FIELDS", "QUOTA", "create"]
