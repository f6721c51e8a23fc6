"""The sandbox's IAM: tokens, temporary AK/SK and project listing, and the record of
what it issued, which the LINK simulator checks (expiry included) on every request.

``IamSimulator(credentials, faults).app`` answers (bodies as ``huaweicloudsdkiam`` sends
and reads them):

======  =====================================  ==============================================
POST    ``/v3/auth/tokens``                    ``password`` (domain, user, password) or
                                               ``assume_role`` (domain_name/domain_id,
                                               agency_name or xrole_name; asked with the
                                               engineer's token or AK/SK) -> 201, the token
                                               in ``X-Subject-Token``, ``{"token": {...}}``
POST    ``/v3.0/OS-CREDENTIAL/securitytokens`` ``token`` (its id in the body) or
                                               ``assume_role`` -> 201 ``{"credential": ...}``
GET     ``/v3/projects?name=``                 the sandbox's project under its region name
======  =====================================  ==============================================

Who exists: the engineer (``credentials.user`` / ``password`` in account
``credentials.domain``, with the sandbox AK/SK) and one agency,
``credentials.agency`` in the customer's account ``credentials.agency_domain``, that the
engineer may assume. Tokens last ``token_ttl_s`` (24 h), temporary keys the
``duration_seconds`` asked (900..86,400). :meth:`IamState.expire_all` makes everything
issued so far expire at once (a trainer's switch; tests use it mid-batch). Errors are
Keystone's ``{"error": {"code", "message", "title"}}``. The clock is the sandbox's
(``faults.clock_offset_s``), also in each answer's ``Date``.
"""

from __future__ import annotations

import email.utils
import hmac
import json
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from romakit.sim import signature

#: the region the sandbox's project is named after
REGION = "cn-north-4"
TOKEN_TTL_S = 24 * 3600
MIN_DURATION, MAX_DURATION = 900, 86_400


@dataclass
class _Grant:
    expires_at: float
    project_id: str | None
    #: "user" (a password token), "agency" (assumed), "temporary" (a key)
    kind: str
    sk: str | None = None
    security_token: str | None = None


class IamState:
    """What IAM issued (tokens, temporary keys) and until when; thread-safe."""

    def __init__(self, credentials: Any, clock: Callable[[], float]) -> None:
        self.credentials = credentials
        self.clock = clock
        self.token_ttl_s = TOKEN_TTL_S
        self._tokens: dict[str, _Grant] = {}
        self._keys: dict[str, _Grant] = {}
        self._lock = threading.Lock()
        #: (kind, what) per credential issued: ("token", "password"), ("key", "agency"), ...
        self.issued: list[tuple[str, str]] = []

    def expire_all(self) -> int:
        """Make every token and temporary key issued so far expire now; returns how many."""
        now = self.clock()
        with self._lock:
            for g in [*self._tokens.values(), *self._keys.values()]:
                g.expires_at = min(g.expires_at, now - 1)
            return len(self._tokens) + len(self._keys)

    def issue_token(self, kind: str, project_id: str | None) -> tuple[str, _Grant]:
        token = "MIIiam" + secrets.token_urlsafe(48)
        grant = _Grant(self.clock() + self.token_ttl_s, project_id, kind)
        with self._lock:
            self._tokens[token] = grant
            self.issued.append(("token", kind))
        return token, grant

    def issue_key(self, what: str, duration: int) -> tuple[str, _Grant]:
        ak = "TMP" + secrets.token_hex(10).upper()
        grant = _Grant(self.clock() + duration, None, "temporary", sk=secrets.token_hex(20),
                       security_token="sts-" + secrets.token_urlsafe(64))
        with self._lock:
            self._keys[ak] = grant
            self.issued.append(("key", what))
        return ak, grant

    def token(self, token: str) -> tuple[_Grant | None, str | None]:
        """(grant, None) for a valid token; (None, why) otherwise. The sandbox's fixed
        token is the engineer's, and never expires."""
        if hmac.compare_digest(token.encode("utf-8", "surrogateescape"), self.credentials.token.encode()):
            return _Grant(float("inf"), self.credentials.project_id, "user"), None
        with self._lock:
            g = self._tokens.get(token)
        if g is None:
            return None, "decrypt token fail"
        if g.expires_at <= self.clock():
            return None, f"token expires, expires_at: {iso(g.expires_at)}"
        return g, None

    def key(self, ak: str) -> _Grant | None:
        with self._lock:
            return self._keys.get(ak)

    def key_problem(self, ak: str, headers: dict[str, str]) -> str | None:
        """Why a correctly signed request with ``ak`` is still refused (a temporary key
        without its signed, matching security token, or expired); None when it is fine."""
        g = self.key(ak)
        if g is None:
            return None  # the permanent key
        sent = headers.get("x-security-token")
        signed = headers.get("authorization", "").split("SignedHeaders=", 1)[-1].split(",", 1)[0].split(";")
        if sent is None or "x-security-token" not in signed:
            return "a temporary access key needs its signed X-Security-Token"
        if not hmac.compare_digest(sent.strip().encode("utf-8", "surrogateescape"), (g.security_token or "").encode()):
            return "the security token does not belong to this access key"
        if g.expires_at <= self.clock():
            return f"the security token expired, expires_at: {iso(g.expires_at)}"
        return None

    def secret_for(self, ak: str) -> str | None:
        """The SK of a permanent or temporary AK the sandbox knows."""
        c = self.credentials
        if hmac.compare_digest(ak.encode("utf-8", "surrogateescape"), c.ak.encode()):
            return c.sk
        g = self.key(ak)
        return g.sk if g is not None else None


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "Z"


class _Refusal(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


_TITLES = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found"}


class IamSimulator:
    """The IAM REST side of the sandbox (see the module docstring)."""

    def __init__(self, credentials: Any, faults: Any, state: IamState) -> None:
        self.credentials = credentials
        self.faults = faults
        self.state = state
        #: (method, path, status) per request, in order
        self.requests: list[tuple[str, str, int]] = []
        self.app = Starlette(routes=[
            Route("/v3/auth/tokens", self._endpoint(self._tokens), methods=["POST"]),
            Route("/v3.0/OS-CREDENTIAL/securitytokens", self._endpoint(self._security_tokens), methods=["POST"]),
            Route("/v3/projects", self._endpoint(self._projects), methods=["GET"]),
        ])

    def _endpoint(self, handler: Callable[[Request, bytes], Any]) -> Callable:
        async def endpoint(request: Request) -> Response:
            body = await request.body()
            headers: dict[str, str] = {}
            try:
                status, payload, headers = handler(request, body)
            except _Refusal as r:
                status = r.status
                payload = {"error": {"code": r.status, "message": r.message, "title": _TITLES.get(r.status, "")}}
            headers["Date"] = email.utils.formatdate(self.state.clock(), usegmt=True)
            headers["X-IAM-Trace-Id"] = "sandbox-" + secrets.token_hex(8)
            self.requests.append((request.method, request.url.path, status))
            return Response(json.dumps(payload), status_code=status, headers=headers,
                            media_type="application/json;charset=UTF-8")
        return endpoint

    # -- who is asking ---------------------------------------------------------------------
    def _caller(self, request: Request, body: bytes) -> str:
        """The engineer's own token or AK/SK signature, else 401."""
        headers = signature.header_map(request.scope.get("headers") or [])
        token = headers.get("x-auth-token")
        if token:
            grant, why = self.state.token(token.strip())
            if grant is None or grant.kind != "user":
                raise _Refusal(401, f"The request you have made requires authentication ({why or 'not a user token'}).")
            return "token"
        if "authorization" in headers:
            try:
                signature.verify(request.method, request.scope.get("raw_path") or request.url.path.encode(),
                                 request.scope.get("query_string", b""), headers, body, self.state.secret_for,
                                 now=datetime.fromtimestamp(self.state.clock(), UTC))
            except signature.SignatureError as e:
                raise _Refusal(401, f"The request you have made requires authentication ({e}).") from None
            ak = headers["authorization"].split("Access=", 1)[-1].split(",", 1)[0].strip()
            why = self.state.key_problem(ak, headers)
            if why:
                raise _Refusal(401, f"The request you have made requires authentication ({why}).")
            return "aksk"
        raise _Refusal(401, "The request you have made requires authentication.")

    @staticmethod
    def _identity(body: bytes) -> tuple[dict, dict]:
        try:
            data = json.loads(body or b"null")
        except ValueError:
            raise _Refusal(400, "The request body is not valid JSON.") from None
        auth = data.get("auth") if isinstance(data, dict) else None
        identity = auth.get("identity") if isinstance(auth, dict) else None
        if not isinstance(identity, dict) or not isinstance(identity.get("methods"), list):
            raise _Refusal(400, "auth.identity.methods is required.")
        return identity, auth

    def _assume(self, identity: dict) -> None:
        c = self.credentials
        role = identity.get("assume_role")
        if not isinstance(role, dict):
            raise _Refusal(400, "auth.identity.assume_role is required.")
        domain_ok = role.get("domain_name") == c.agency_domain or role.get("domain_id") == c.agency_domain_id
        agency = role.get("agency_name") or role.get("xrole_name")
        if not domain_ok or agency != c.agency:
            raise _Refusal(403, "You have no permission to assume this agency (unknown account or agency).")

    def _project(self, auth: dict) -> str | None:
        scope = auth.get("scope")
        project = scope.get("project") if isinstance(scope, dict) else None
        if not isinstance(project, dict):
            return None
        if project.get("id") == self.credentials.project_id or project.get("name") == REGION:
            return self.credentials.project_id
        raise _Refusal(401, "The project in the scope does not exist or is not available to you.")

    # -- the three calls ---------------------------------------------------------------------
    def _tokens(self, request: Request, body: bytes) -> tuple[int, Any, dict]:
        identity, auth = self._identity(body)
        c = self.credentials
        methods = identity["methods"]
        if methods == ["password"]:
            user = (identity.get("password") or {}).get("user") or {}
            domain = (user.get("domain") or {}).get("name")
            ok = (domain == c.domain and user.get("name") == c.user
                  and hmac.compare_digest(str(user.get("password", "")).encode(), c.password.encode()))
            if not ok:
                raise _Refusal(401, "The username or password is wrong.")
            kind = "user"
        elif methods == ["assume_role"]:
            self._caller(request, body)
            self._assume(identity)
            kind = "agency"
        else:
            raise _Refusal(400, f"unsupported identity methods {methods!r}")
        project_id = self._project(auth)
        token, grant = self.state.issue_token(kind, project_id)
        out: dict[str, Any] = {"expires_at": iso(grant.expires_at), "issued_at": iso(self.state.clock()),
                               "methods": methods, "catalog": [], "roles": [],
                               "user": {"name": c.user if kind == "user" else f"{c.agency_domain}/{c.agency}",
                                        "id": "u" + c.project_id[:31],
                                        "domain": {"name": c.domain, "id": c.domain_id}}}
        if project_id:
            out["project"] = {"id": project_id, "name": REGION, "domain": {"name": c.domain, "id": c.domain_id}}
        return 201, {"token": out}, {"X-Subject-Token": token}

    def _security_tokens(self, request: Request, body: bytes) -> tuple[int, Any, dict]:
        identity, _ = self._identity(body)
        methods = identity["methods"]
        spec = identity.get("assume_role") if methods == ["assume_role"] else identity.get("token")
        duration = (spec or {}).get("duration_seconds", 900) if isinstance(spec, dict) else 900
        if isinstance(duration, bool) or not isinstance(duration, int) or not MIN_DURATION <= duration <= MAX_DURATION:
            raise _Refusal(400, f"duration_seconds must be {MIN_DURATION}..{MAX_DURATION}.")
        if methods == ["assume_role"]:
            self._caller(request, body)
            self._assume(identity)
            what = "agency"
        elif methods == ["token"]:
            token = (identity.get("token") or {}).get("id") or request.headers.get("x-auth-token")
            grant, why = self.state.token(str(token or ""))
            if grant is None:
                raise _Refusal(401, f"The token is not valid ({why}).")
            what = "token"
        else:
            raise _Refusal(400, f"unsupported identity methods {methods!r}")
        ak, grant = self.state.issue_key(what, duration)
        return 201, {"credential": {"access": ak, "secret": grant.sk, "securitytoken": grant.security_token,
                                    "expires_at": iso(grant.expires_at)}}, {}

    def _projects(self, request: Request, body: bytes) -> tuple[int, Any, dict]:
        self._caller(request, body)
        c = self.credentials
        name = request.query_params.get("name")
        projects = [] if name not in (None, REGION) else [
            {"id": c.project_id, "name": REGION, "domain_id": c.domain_id, "enabled": True, "is_domain": False,
             "parent_id": c.domain_id, "description": "", "links": {"self": f"/v3/projects/{c.project_id}"}}]
        return 200, {"projects": projects, "links": {"self": str(request.url), "next": None, "previous": None}}, {}
