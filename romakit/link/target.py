"""Where a LINK client connects and how: its settings (:class:`LinkSettings`), the
endpoint (given, or the region's), the project id (given, the token's, or looked up in
IAM as the SDK does), and TLS (the OS trust store plus extra CA files). Checked before
anything is sent."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypedDict

import httpx

from romakit.bounded import DEFAULT_DEADLINE, DEFAULT_MAX_BYTES
from romakit.engine import RetryPolicy
from romakit.errors import InputError
from romakit.ids import check_path_param
from romakit.link.answers import check_endpoint
from romakit.operations import OPERATIONS

if TYPE_CHECKING:  # pragma: no cover
    from romakit.store.journal import Journal
from romakit.regions import check_region, endpoints
from romakit.tls import ca_paths, client_context


@dataclass(frozen=True)
class Target:
    """A checked LINK address: endpoint, region, IAM endpoint (for the project lookup),
    instance id and project id (None until looked up), and the TLS context."""

    endpoint: str
    instance_id: str
    project_id: str | None
    region: str | None
    iam_endpoint: str | None
    verify: ssl.SSLContext | bool
    allow_insecure: bool


def tls_verify(verify: Any, ca_files: Any) -> ssl.SSLContext | bool:
    """``verify`` as httpx takes it: an SSLContext as given; True/None -> the OS store plus
    ``ca_files``; a CA path -> added on top of the OS store too (never replacing it)."""
    if isinstance(verify, ssl.SSLContext):
        if ca_files:
            raise InputError("give either verify=<an SSLContext> or ca_files, not both")
        return verify
    if verify is False:
        return False
    extra = ca_paths(ca_files, "ca_files")
    if isinstance(verify, str):
        extra = [*extra, *ca_paths(verify, "verify")]
    elif verify not in (True, None):
        raise InputError(f"verify must be True, False, an ssl.SSLContext or a CA file path, got {type(verify).__name__}")
    return client_context(extra)


class LinkOptions(TypedDict, total=False):
    """The keywords of ``rk.LinkClient(endpoint, project_id, instance_id, auth, ...)`` (:class:`LinkSettings`)."""

    region: str | None
    iam_endpoint: str | None
    ca_files: Any
    timeout: float
    verify: Any
    chunk_size: int
    concurrency: int
    retry: RetryPolicy | None
    progress: bool | None
    deadline: float
    max_answer_bytes: int
    allow_insecure: bool
    preflight: bool
    transport: httpx.AsyncBaseTransport | None
    journal: Journal | str | bool | None


@dataclass(frozen=True)
class LinkSettings:
    """How a LINK client connects and batches, checked on construction.

    - ``region`` gives the endpoint and IAM's (``iam_endpoint`` overrides IAM's).
    - ``verify``, ``ca_files``, ``allow_insecure``: TLS (:func:`tls_verify`; plain HTTP off
      loopback refused unless allowed); ``transport``: an httpx transport of your own.
    - ``timeout``: seconds to wait for each answer.
    - ``chunk_size``, ``concurrency``, ``retry``, ``progress``: the batch defaults.
    - ``deadline``, ``max_answer_bytes``: each request and its whole answer at most that
      long and that large (:mod:`romakit.bounded`).
    - ``preflight``: one cheap authenticated read before each batch.
    - ``journal``: where its operations are journaled (a Journal, URL or file; None:
      ``ROMAKIT_JOURNAL``, else the sandbox journal for a sandbox's instance, else the
      default file; True: ``ROMAKIT_JOURNAL``, else the default file; False: none).
    """

    region: str | None = None
    iam_endpoint: str | None = None
    ca_files: Any = None
    timeout: float = 30.0
    verify: Any = True
    chunk_size: int = OPERATIONS["force_offline"].default_chunk
    concurrency: int = 8
    retry: RetryPolicy | None = None
    progress: bool | None = None
    deadline: float = DEFAULT_DEADLINE
    max_answer_bytes: int = DEFAULT_MAX_BYTES
    allow_insecure: bool = False
    preflight: bool = True
    transport: httpx.AsyncBaseTransport | None = None
    journal: Journal | str | bool | None = None

    def __post_init__(self) -> None:
        if isinstance(self.chunk_size, bool) or not isinstance(self.chunk_size, int) or self.chunk_size < 1:
            raise InputError(f"chunk_size must be >= 1, got {self.chunk_size!r}")


def resolve(endpoint: str | None, project_id: str | None, instance_id: str | None, auth: httpx.Auth | None,
            settings: LinkSettings) -> Target:
    """Check the address and fill in what the region gives (see the module docstring)."""
    region, iam_endpoint, allow_insecure = settings.region, settings.iam_endpoint, settings.allow_insecure
    if region is not None:
        region = check_region(region)
    if endpoint is None:
        if region is None:
            raise InputError("give endpoint= (e.g. https://roma.cn-north-4.myhuaweicloud.com) or region= (e.g. 'cn-north-4')")
        endpoint = endpoints(region).roma
    endpoint = check_endpoint(endpoint, allow_insecure)
    if iam_endpoint is None and region is not None:
        iam_endpoint = endpoints(region).iam
    if iam_endpoint is not None:
        iam_endpoint = check_endpoint(iam_endpoint, allow_insecure)
    if instance_id is None:
        raise InputError("instance_id is required (the ROMA Connect instance, shown in the console)")
    instance_id = check_path_param("instance_id", instance_id, 36)
    if not isinstance(auth, httpx.Auth):
        raise InputError("auth must be romakit.AkSk(ak, sk) or romakit.Token(token)")
    own = getattr(auth, "project_id", None)
    if project_id is not None:
        project_id = check_path_param("project_id", project_id, 32)
        if own is not None and own != project_id:
            raise InputError(f"auth is scoped to project {own!r}, the client to {project_id!r}: give one project")
    else:
        project_id = own
    if project_id is None and region is None:
        raise InputError("give project_id, or region= so that romakit can look it up in IAM (GET /v3/projects)")
    verify = tls_verify(settings.verify, settings.ca_files)
    return Target(endpoint, instance_id, project_id, region, iam_endpoint, verify, allow_insecure)


def lookup_project(target: Target, auth: httpx.Auth, timeout: float) -> str:
    """The project id of the target's region, from IAM (sync; one call)."""
    from romakit.link.iam import IamClient

    assert target.region is not None and target.iam_endpoint is not None
    iam = IamClient(target.iam_endpoint, verify=target.verify, timeout=timeout, allow_insecure=target.allow_insecure)
    try:
        return check_path_param("project_id", iam.project_id(target.region, auth=auth), 32)
    finally:
        iam.close()
