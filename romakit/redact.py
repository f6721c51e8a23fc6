"""What the clients keep of a device record read from a service: no secret, and no
staff name unless asked for.

A device record can carry the device's own credentials (LINK's ``authentication``
``{user_name, password}``, IoTDA's ``auth_info.secret``) and the names of the
customer's staff who created or last changed it (``created_user``,
``last_updated_user``). :func:`scrub` drops them from a decoded answer before any
caller sees it (``link.device(id)``, ``link.device_page()``, ``IotdaClient.device(id)``;
``staff=True`` keeps the staff names), so no frame, journal row, export, report or
notebook output can hold them. The listings (``link.devices()``,
``IotdaClient.devices()``) decode only the columns of their frames, which hold neither.

Which field names are secret (:func:`is_secret`): the name is cut into words (``_``,
``-``, ``.`` and camelCase boundaries); it is secret when a word is one of
:data:`SECRET_WORDS` (``password``, ``secret``, ``token``, ``credential``, ...), or it
names a key that is itself a credential (``access_key``, ``private_key``, ``api_key``,
``sk``, ``psk``, ...: :data:`SECRET_KEYS`). A plain ``key`` or a ``<thing>_key`` that
identifies something (``tag_key``, ``product_key``) is an id, not a secret, and is
kept; so are ``fingerprint`` (a public certificate hash) and ``user_name``.
"""

from __future__ import annotations

import functools
import re
from typing import Any

#: a word that makes a field name secret wherever it stands
SECRET_WORDS = frozenset({"password", "passwd", "pwd", "passphrase", "passcode", "secret", "secrets", "token",
                          "credential", "credentials", "pin", "otp"})
#: names (as their words joined by ``_``) of keys that are credentials themselves
SECRET_KEYS = frozenset({"sk", "psk", "ak_sk", "access_key", "secret_key", "private_key", "api_key", "apikey",
                         "signing_key", "session_key", "auth_key", "encryption_key", "master_key", "shared_key",
                         "pre_shared_key", "device_key", "accesskey", "secretkey", "privatekey"})
#: fields that name the customer's staff: kept only when asked for (``staff=True``)
STAFF_FIELDS = frozenset({"created_user", "last_updated_user"})
_WORDS = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")


@functools.lru_cache(maxsize=4096)
def is_secret(name: str) -> bool:
    """True when a field called ``name`` holds a secret (see the module docstring)."""
    words = [w.lower() for w in _WORDS.findall(name)]
    if not words:
        return False
    if SECRET_WORDS.intersection(words):
        return True
    joined = "_".join(words)
    return joined in SECRET_KEYS or any(joined.endswith("_" + k) for k in SECRET_KEYS if "_" in k)


def scrub(value: Any, *, staff: bool = False) -> Any:
    """A copy of a decoded answer (dicts, lists, scalars) without the secret fields at
    any depth, and without :data:`STAFF_FIELDS` unless ``staff``."""
    if isinstance(value, dict):
        return {k: scrub(v, staff=staff) for k, v in value.items()
                if not (isinstance(k, str) and is_secret(k)) and (staff or k not in STAFF_FIELDS)}
    if isinstance(value, list):
        return [scrub(v, staff=staff) for v in value]
    return value


__all__ = ["SECRET_KEYS", "SECRET_WORDS", "STAFF_FIELDS", "is_secret", "scrub"]
