"""The sandbox's API Gateway in front of LINK: who may call, answered with the real
gateway's codes.

Either credential is accepted: ``X-Auth-Token`` (the sandbox's fixed token, or a token
its IAM issued and that has not expired) or an ``SDK-HMAC-SHA256`` signature (the
sandbox AK/SK, or a temporary key its IAM issued, with its signed ``X-Security-Token``,
not expired; see :mod:`romakit.sim.signature`).

Refusals, as API Gateway words them (``APIG.0301`` is 401 "Incorrect IAM
authentication information: ..."): no credentials (``x-auth-token not found``), a token
it cannot read (``decrypt token fail``) or that expired (``token expires, expires_at:
...``), an unknown AK (``Get secretKey failed``), a wrong signature (``verify aksk
signature fail``), an ``X-Sdk-Date`` more than 15 minutes from the gateway's clock, an
expired security token. ``X-Project-Id`` of another project: 403 ``APIG.0302`` (the IAM
user is not authorized to access the API).

Lock-out, as Huawei's signing guide describes it: more than five consecutive refused
signatures of one AK lock it for five minutes (``AK access failed to reach the limit,
forbidden``), counted on the gateway's clock; a good request resets the count.
"""

from __future__ import annotations

import hmac
import re
import threading
from collections.abc import Callable
from datetime import UTC, datetime

from romakit.sim import signature
from romakit.sim.iam_app import IamState

#: consecutive refused signatures before an AK is locked, and for how long (seconds)
LOCK_AFTER, LOCK_FOR_S = 5, 300.0
_ACCESS_RE = re.compile(r"Access=([^,\s]+)")


class Refused(Exception):
    """A refused request: ``status``, ``code`` and the gateway's message."""

    def __init__(self, status: int, code: str, msg: str) -> None:
        super().__init__(f"{status} {code}: {msg}")
        self.status, self.code, self.msg = status, code, msg


def _iam_refused(detail: str) -> Refused:
    return Refused(401, "APIG.0301", f"Incorrect IAM authentication information: {detail}"[:200])


class Gatekeeper:
    """Checks each LINK request's credentials (see the module docstring); thread-safe."""

    def __init__(self, credentials: object, iam: IamState, clock: Callable[[], float]) -> None:
        self.credentials = credentials
        self.iam = iam
        self.clock = clock
        self._fails: dict[str, int] = {}
        self._locked_until: dict[str, float] = {}
        self._lock = threading.Lock()

    def check(self, method: str, raw_path: bytes | str, raw_query: bytes | str, headers: dict[str, str],
              body: bytes) -> None:
        """Return when the request may pass; raise :class:`Refused` otherwise."""
        creds = self.credentials
        token = headers.get("x-auth-token")
        if token is not None:
            token = token.strip()
            if hmac.compare_digest(token.encode("utf-8", "surrogateescape"), creds.token.encode()):  # type: ignore[attr-defined]
                return self._project(headers)
            grant, why = self.iam.token(token)
            if grant is None:
                raise _iam_refused(why or "decrypt token fail")
            return self._project(headers)
        auth = headers.get("authorization")
        if auth is None:
            raise _iam_refused("x-auth-token not found")
        m = _ACCESS_RE.search(auth)
        ak = m.group(1) if m else ""
        now = self.clock()
        with self._lock:
            if self._locked_until.get(ak, 0.0) > now:
                raise _iam_refused("AK access failed to reach the limit, forbidden")
        try:
            signature.verify(method, raw_path, raw_query, headers, body, self.iam.secret_for,
                             now=datetime.fromtimestamp(now, UTC))
            why = self.iam.key_problem(ak, headers)
            if why:
                raise signature.SignatureError(why)
        except signature.SignatureError as e:
            self._failed(ak, now)
            if e.unknown_key:
                raise _iam_refused("Get secretKey failed") from None
            raise _iam_refused(f"verify aksk signature fail, {e}") from None
        with self._lock:
            self._fails.pop(ak, None)
        self._project(headers)

    def _failed(self, ak: str, now: float) -> None:
        if not ak:
            return
        with self._lock:
            n = self._fails.get(ak, 0) + 1
            self._fails[ak] = n
            if n > LOCK_AFTER:
                self._locked_until[ak] = now + LOCK_FOR_S
                self._fails[ak] = 0

    def locked(self, ak: str) -> bool:
        """True while ``ak`` is locked out."""
        with self._lock:
            return self._locked_until.get(ak, 0.0) > self.clock()

    def unlock(self) -> None:
        """Forget every failure count and lock (a trainer's reset)."""
        with self._lock:
            self._fails.clear()
            self._locked_until.clear()

    def _project(self, headers: dict[str, str]) -> None:
        project = headers.get("x-project-id")
        if project is not None and project.strip() != self.credentials.project_id:  # type: ignore[attr-defined]
            raise Refused(403, "APIG.0302", "The IAM user is not authorized to access the API: "
                                            "X-Project-Id is another project.")
