"""Huawei Cloud IAM, the three calls romakit needs (sync, on httpx):

- ``POST /v3/auth/tokens``: a token from a password, or from an agency (``assume_role``);
  it comes back in the ``X-Subject-Token`` header, with ``token.expires_at`` in the body;
- ``POST /v3.0/OS-CREDENTIAL/securitytokens``: temporary AK/SK + security token, from a
  token or an agency (``credential: {access, secret, securitytoken, expires_at}``);
- ``GET /v3/projects?name={region}``: the project id of a region.

Bodies as ``huaweicloudsdkiam`` sends them. :class:`Issued` holds what came back; its
repr hides every secret. Errors become :class:`~romakit.ApiError` (IAM's own bodies,
``{"error": {"code", "message"}}`` or ``{"error_code", "error_msg"}``, both read).
"""

from __future__ import annotations

import logging
import re
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx

from romakit import __version__, jsondepth
from romakit._net import unreachable_hint
from romakit.bounded import DEFAULT_DEADLINE, DEFAULT_MAX_BYTES, Bounds, exchange_sync
from romakit.errors import ApiError, InputError, MalformedResponse, TransportError
from romakit.link.answers import check_endpoint, clock_skew, request_id_of

#: what IAM allows for temporary credentials (seconds)
MIN_DURATION, MAX_DURATION = 900, 86_400
#: header values httpcore's DEBUG trace would log verbatim (IAM answers a token in X-Subject-Token)
_SECRET_HEADER = re.compile(r"(\(b'(?:x-subject-token|x-auth-token|x-security-token|authorization)', )b'[^']*'\)",
                            re.IGNORECASE)


class _Redact(logging.Filter):
    """Masks secret header values in httpcore's DEBUG records (the response headers it traces)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str) and "b'" in record.msg:
            record.msg = _SECRET_HEADER.sub(r"\1b'***')", record.msg)
        return True


def _redact_httpcore() -> None:
    for name in ("httpcore.http11", "httpcore.http2"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _Redact) for f in logger.filters):
            logger.addFilter(_Redact())


@dataclass(frozen=True, repr=False)
class Issued:
    """One credential IAM issued: a token (``secret``) or a temporary key
    (``access`` + ``secret`` + ``security_token``), valid until ``expires_at`` (epoch s)."""

    secret: str
    expires_at: float | None = None
    access: str | None = None
    security_token: str | None = None
    project_id: str | None = None
    #: when romakit received it (epoch s; set by the Lease), for the renewal margin
    received_at: float | None = None

    def __repr__(self) -> str:
        until = datetime.fromtimestamp(self.expires_at).isoformat(timespec="seconds") if self.expires_at else None
        return f"Issued(access={(self.access or '')[:4] + '…' if self.access else None!r}, secret='***', expires={until!r})"


def parse_time(value: Any, what: str) -> float:
    """IAM's ``expires_at`` (``2024-01-04T09:05:22.701000Z``) as epoch seconds."""
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise MalformedResponse(f"IAM answer has no usable {what} (got {str(value)[:40]!r})") from None


def check_duration(duration: int) -> int:
    if isinstance(duration, bool) or not isinstance(duration, int) or not MIN_DURATION <= duration <= MAX_DURATION:
        raise InputError(f"duration must be whole seconds {MIN_DURATION}..{MAX_DURATION} (15 min to 24 h), got {duration!r}")
    return duration


def _scope(region: str | None, project_id: str | None) -> dict:
    if project_id:
        return {"project": {"id": project_id}}
    if region:
        return {"project": {"name": region}}
    raise InputError("an IAM token needs a region (or a project_id) to be scoped to")


class IamClient:
    """IAM at ``endpoint`` (``https://iam.{region}.myhuaweicloud.com``). ``verify`` is an
    ``ssl.SSLContext`` (romakit's OS store + extra CAs); ``HTTPS_PROXY`` is honoured."""

    def __init__(self, endpoint: str, *, verify: ssl.SSLContext | bool = True, timeout: float = 30.0,
                 allow_insecure: bool = False, transport: httpx.BaseTransport | None = None,
                 deadline: float = DEFAULT_DEADLINE, max_answer_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.endpoint = check_endpoint(endpoint, allow_insecure)
        self._bounds = Bounds(deadline, max_answer_bytes)
        _redact_httpcore()
        self._http = httpx.Client(base_url=self.endpoint, verify=verify, timeout=timeout, transport=transport,
                                  headers={"User-Agent": f"romakit/{__version__}"})

    def __repr__(self) -> str:
        return f"IamClient(endpoint={self.endpoint!r})"

    def close(self) -> None:
        self._http.close()

    def _call(self, method: str, path: str, *, json: Any = None, params: Mapping[str, str] | None = None,
              auth: httpx.Auth | None = None, headers: Mapping[str, str] | None = None) -> httpx.Response:
        try:
            resp = exchange_sync(self._http, method, path, {
                "json": json, "params": params, "auth": auth or httpx.USE_CLIENT_DEFAULT,
                "headers": {"Content-Type": "application/json;charset=UTF-8", **(headers or {})}}, self._bounds)
        except httpx.TimeoutException as e:
            raise TransportError(f"IAM at {self.endpoint}: no answer in time", sent=True) from e
        except httpx.TransportError as e:
            raise TransportError(f"could not reach IAM at {self.endpoint}: {type(e).__name__}"
                                 f"{unreachable_hint(self.endpoint, e)}", sent=False) from e
        if resp.status_code >= 400:
            raise _iam_error(resp)
        return resp

    @staticmethod
    def _json(resp: httpx.Response) -> dict:
        try:
            body = jsondepth.loads(resp.content)
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise MalformedResponse(f"IAM answer (HTTP {resp.status_code}) is not a JSON object")
        return body

    def _token(self, identity: dict, scope: dict, auth: httpx.Auth | None = None,
               headers: Mapping[str, str] | None = None) -> Issued:
        resp = self._call("POST", "/v3/auth/tokens", json={"auth": {"identity": identity, "scope": scope}},
                          auth=auth, headers=headers, params={"nocatalog": "true"})
        token = resp.headers.get("X-Subject-Token")
        body = self._json(resp).get("token")
        if not token or not isinstance(body, dict):
            raise MalformedResponse("IAM answer has no X-Subject-Token header or no 'token' object")
        given = body.get("project")
        project = given if isinstance(given, dict) else {}
        return Issued(token, parse_time(body.get("expires_at"), "token.expires_at"),
                      project_id=project.get("id") and str(project["id"]))

    # -- tokens ------------------------------------------------------------------------
    def password_token(self, domain: str, user: str, password: str, *, region: str | None = None,
                       project_id: str | None = None) -> Issued:
        """A token for IAM user ``user`` of account ``domain``, scoped to a region's project."""
        identity = {"methods": ["password"],
                    "password": {"user": {"domain": {"name": domain}, "name": user, "password": password}}}
        return self._token(identity, _scope(region, project_id))

    def agency_token(self, domain: str, agency: str, *, auth: httpx.Auth, region: str | None = None,
                     project_id: str | None = None) -> Issued:
        """A token of agency ``agency`` in account ``domain`` (assume role), asked with ``auth``
        (the delegated party's own credentials)."""
        identity = {"methods": ["assume_role"], "assume_role": {"domain_name": domain, "agency_name": agency}}
        return self._token(identity, _scope(region, project_id), auth=auth)

    # -- temporary AK/SK -----------------------------------------------------------------
    def security_token(self, *, token: str | None = None, domain: str | None = None, agency: str | None = None,
                       auth: httpx.Auth | None = None, duration: int = 3600) -> Issued:
        """Temporary AK/SK + security token: from ``token``, or by assuming ``agency`` of
        ``domain`` with ``auth``."""
        duration = check_duration(duration)
        if agency:
            if not domain or auth is None:
                raise InputError("temporary keys from an agency need the account (domain) and your own auth")
            identity = {"methods": ["assume_role"], "assume_role": {
                "domain_name": domain, "agency_name": agency, "duration_seconds": duration}}
        elif token:
            identity = {"methods": ["token"], "token": {"id": token, "duration_seconds": duration}}
        else:
            raise InputError("temporary keys need a token or an agency")
        resp = self._call("POST", "/v3.0/OS-CREDENTIAL/securitytokens", json={"auth": {"identity": identity}},
                          auth=auth, headers={"X-Auth-Token": token} if token and not agency else None)
        cred = self._json(resp).get("credential")
        if not isinstance(cred, dict) or not all(cred.get(k) for k in ("access", "secret", "securitytoken")):
            raise MalformedResponse("IAM answer has no 'credential' with access, secret and securitytoken")
        return Issued(str(cred["secret"]), parse_time(cred.get("expires_at"), "credential.expires_at"),
                      access=str(cred["access"]), security_token=str(cred["securitytoken"]))

    # -- projects ------------------------------------------------------------------------
    def project_id(self, region: str, *, auth: httpx.Auth) -> str:
        """The id of the project named ``region`` (``GET /v3/projects?name=``), as the SDK looks it up."""
        projects = self._json(self._call("GET", "/v3/projects", params={"name": region}, auth=auth)).get("projects")
        if not isinstance(projects, list) or not projects:
            raise InputError(f"IAM at {self.endpoint} lists no project named {region!r} for these credentials; "
                             "check the region, or give project_id")
        if len(projects) > 1:
            ids = ", ".join(str(p.get("id")) for p in projects if isinstance(p, dict))
            raise InputError(f"several projects are named {region!r} ({ids}); give project_id")
        pid = projects[0].get("id") if isinstance(projects[0], dict) else None
        if not pid:
            raise MalformedResponse("IAM's project listing has a project without an id")
        return str(pid)


def _iam_error(resp: httpx.Response) -> ApiError:
    try:
        body = jsondepth.loads(resp.content)
    except ValueError:
        body = None
    code = msg = None
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict):
            code, msg = err.get("code") and f"IAM.{err.get('code')}", err.get("message")
        code = body.get("error_code") or code
        msg = body.get("error_msg") or msg
    return ApiError(resp.status_code, code and str(code), f"IAM: {msg or resp.reason_phrase}"[:200],
                    request_id_of(resp, body) or resp.headers.get("X-IAM-Trace-Id"),
                    clock_skew=clock_skew(resp) if resp.status_code in (401, 403) else None)
