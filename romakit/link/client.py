"""ROMA Connect LINK device API on httpx: :class:`AsyncLinkClient` and its sync twin.

Batch operations (force-offline, delete) go through the shared batch engine
(:mod:`romakit.engine`): chunked, a window of requests in flight, 429/5xx/transport
errors retried with back-off that honours ``Retry-After``, one outcome row per device.
Before each batch, one cheap authenticated read (:meth:`AsyncLinkClient.preflight`):
refused credentials stop it before anything of the batch is sent, and a refusal in the
middle of a run stops the run (the rest ``skipped``): a bad key is never hammered into
API Gateway's lock-out (five failures lock an AK for five minutes).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, Unpack, cast

import httpx
import msgspec

from romakit import __version__, wire
from romakit._net import unreachable_hint
from romakit._runner import constructor_signature, forward, mirror, run, twin
from romakit.batch import run_operation
from romakit.bounded import Bounds, exchange
from romakit.engine import Answer, BatchKwargs, BatchOptions, RetryPolicy, SendChunk
from romakit.engine.client import Ids
from romakit.engine.rollout import with_judge
from romakit.errors import (
    AnswerTooLarge,
    ApiError,
    AuthRefused,
    ClientClosed,
    DeadlineExceeded,
    InputError,
    MalformedResponse,
    TargetNotFound,
    TransportError,
    closed_message,
)
from romakit.ids import link_ids
from romakit.link import listing, restore
from romakit.link.answers import (
    api_error,
    check_page,
    clock_skew,
    json_body,
    public_endpoint,
    target_missing,
    verdicts,
)
from romakit.link.models import query_params
from romakit.link.target import LinkOptions, LinkSettings, lookup_project, resolve
from romakit.operations import LINK, check_chunk
from romakit.outcomes import CONNECTION_LOST, TIMEOUT
from romakit.redact import scrub
from romakit.store.journal import Journal

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from romakit.results import BatchResult

#: ListDevices' largest page
PAGE_LIMIT = wire.LINK_PAGE_LIMIT
#: batch options the LINK client sets itself (its own timeout bounds each request)
_CLIENT_SET = ("timeout", "rate", "attempt_timeout")
log = logging.getLogger("romakit.link")
_encode = msgspec.json.Encoder().encode


class AsyncLinkClient:
    """Async client for one ROMA Connect LINK instance.

    ``auth`` is :class:`romakit.AkSk` or :class:`romakit.Token` (fixed, or renewing
    itself through IAM). ``region="cn-north-4"`` gives the endpoint (and IAM's, to look
    the project id up when neither ``project_id`` nor a scoped token gives it);
    ``endpoint`` / ``iam_endpoint`` override the region's. ``X-Project-Id`` is sent with
    every request. TLS is verified against the OS trust store plus ``ca_files`` (a CA
    path given as ``verify`` is added too, never replacing the store; an
    ``ssl.SSLContext`` is used as given). ``HTTPS_PROXY`` / ``NO_PROXY`` are honoured.
    Plain HTTP is refused to anything but loopback unless ``allow_insecure=True``.
    ``preflight=False`` skips the read before each batch. Each request and its whole
    answer take at most ``deadline`` seconds and ``max_answer_bytes`` bytes, whatever the
    service sends (:mod:`romakit.bounded`). The keywords are checked once into
    :attr:`settings` (:class:`~romakit.link.target.LinkSettings`).
    """

    def __init__(self, endpoint: str | None = None, project_id: str | None = None, instance_id: str | None = None,
                 auth: httpx.Auth | None = None, **options: Unpack[LinkOptions]) -> None:
        self.settings = s = LinkSettings(**options)
        self._target = resolve(endpoint, project_id, instance_id, auth, s)
        self.endpoint = self._target.endpoint
        self.instance_id = self._target.instance_id
        self.region = self._target.region
        self._project_id = self._target.project_id
        self._project_lock = asyncio.Lock()
        self.auth: httpx.Auth = cast(httpx.Auth, auth)  # resolve() refused anything else
        self.timeout, self.chunk_size, self.concurrency = s.timeout, s.chunk_size, s.concurrency
        self.retry = s.retry or RetryPolicy()
        self.bounds = Bounds(s.deadline, s.max_answer_bytes)
        self.progress = s.progress
        #: where this client's operations are journaled (None given: ROMAKIT_JOURNAL, else the
        #: sandbox journal for a sandbox's instance, else the default file)
        self.journal = Journal().for_instance(self.instance_id) if s.journal is None else Journal.of(s.journal)
        #: the clock skew (seconds, server minus here) the last pre-flight measured
        self.clock_skew: float | None = None
        self._closed_why: str | None = None  # what closed it, said when it is used again
        pool = max(s.concurrency * 2, 10)
        self._http = httpx.AsyncClient(
            base_url=self.endpoint,
            auth=auth,
            timeout=httpx.Timeout(s.timeout),
            verify=self._target.verify,
            transport=s.transport,
            limits=httpx.Limits(max_connections=pool, max_keepalive_connections=pool),
            headers={"User-Agent": f"romakit/{__version__}", "Content-Type": "application/json;charset=UTF-8"},
        )

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(endpoint={self.endpoint!r}, project_id={self._project_id!r}, "
            f"instance_id={self.instance_id!r}, auth={self.auth!r})"
        )

    @property
    def project_id(self) -> str | None:
        """The project id (None until looked up in IAM, on the first request, when only a region was given)."""
        return self._project_id

    @property
    def prefix(self) -> str:
        """The instance's URL prefix (needs the project id)."""
        return f"/v2/{self._project_id}/link/instances/{self.instance_id}"

    async def resolve_project(self) -> str:
        """The project id: given, the token's, or looked up once in IAM (``GET /v3/projects?name=region``)."""
        if self._project_id is None:
            async with self._project_lock:
                if self._project_id is None:
                    self._project_id = await asyncio.to_thread(lookup_project, self._target, self.auth, self.timeout)
                    log.info("project id of %s looked up in IAM", self.region)
        project_id = self._project_id
        assert project_id is not None  # given, the token's, or just looked up
        if "X-Project-Id" not in self._http.headers:
            self._http.headers["X-Project-Id"] = project_id
        return project_id

    kind = LINK

    @property
    def target(self) -> str:
        """What the batch operations act on: the LINK instance id."""
        return self.instance_id

    def identity(self) -> dict[str, Any]:
        """The non-secret facts that name where this client acts (what the journal keeps):
        kind, endpoint (no user info or query), project and instance ids. Never credentials."""
        return {"kind": LINK, "endpoint": public_endpoint(self.endpoint), "project_id": self.project_id,
                "instance_id": self.instance_id, "target": self.instance_id}

    # -- one request ---------------------------------------------------------------------
    async def request(
        self, method: str, path: str, *, params: Mapping[str, str] | None = None, json: Any = None
    ) -> httpx.Response:
        """One request under the instance prefix; errors become typed exceptions.

        Raises :class:`ApiError` for an error answer and :class:`TransportError` when no
        answer was had (``sent`` tells whether the request may have reached the service).
        """
        kwargs: dict[str, Any] = {"params": params}
        if json is not None:
            kwargs["json"] = json
        return await self._call(method, path, kwargs)

    async def _send(self, method: str, path: str, body: dict[str, list]) -> httpx.Response:
        """A batch request: its body of ids encoded by msgspec (the same bytes as httpx's
        ``json=`` for ints and strings, at a fraction of the cost)."""
        return await self._call(method, path, {"content": _encode(body)})

    def _check_open(self) -> None:
        """Refuse to send on a closed client (:class:`~romakit.errors.ClientClosed`), never
        httpx's own "the client has been closed" RuntimeError."""
        if self._http.is_closed:
            raise ClientClosed(closed_message(f"LinkClient for instance {self.instance_id}", self._closed_why))

    async def _call(self, method: str, path: str, kwargs: dict[str, Any]) -> httpx.Response:
        self._check_open()
        await self.resolve_project()
        try:
            resp = await exchange(self._http, method, self.prefix + path, kwargs, self.bounds)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as e:
            raise TransportError(f"could not reach {self.endpoint}: {type(e).__name__}"
                                 f"{unreachable_hint(self.endpoint, e)}", sent=False) from e
        except httpx.TimeoutException as e:
            raise TransportError(f"no answer within {self.timeout} s", sent=True, code=TIMEOUT) from e
        except httpx.TransportError as e:  # reset, protocol error, read error: sent, answer lost
            raise TransportError(f"connection lost before the answer: {type(e).__name__}", sent=True, code=CONNECTION_LOST) from e
        if resp.status_code >= 400:
            raise api_error(resp)
        return resp

    _json = staticmethod(json_body)

    async def _read(self, path: str, params: Mapping[str, str] | None = None, check: Any = None,
                    *, raw: bool = False, on_sent: Callable[[], None] | None = None) -> Any:
        """GET with the client's retry policy (reads are always safe to repeat); ``check``
        may turn the body (its bytes with ``raw=True``) into what the caller needs,
        raising MalformedResponse (retried). ``on_sent`` is called once a try's request
        is written (httpcore's ``trace`` extension)."""
        attempt = 0
        kwargs: dict[str, Any] = {"params": params}
        if on_sent is not None:
            kwargs["extensions"] = {"trace": _on_written(on_sent)}
        while True:
            attempt += 1
            try:
                resp = await self._call("GET", path, kwargs)
                body = resp.content if raw else self._json(resp)
                return check(body) if check is not None else body
            except ApiError as e:
                if not e.retryable or attempt >= self.retry.attempts:
                    raise
                await asyncio.sleep(self.retry.delay(attempt, e.retry_after))
            except (TransportError, MalformedResponse) as e:  # an answer past the bounds: never again
                if attempt >= self.retry.attempts or isinstance(e, (DeadlineExceeded, AnswerTooLarge)):
                    raise
                await asyncio.sleep(self.retry.delay(attempt))

    # -- reads -----------------------------------------------------------------------------
    async def device_page(self, offset: int = 0, limit: int = PAGE_LIMIT, *, staff: bool = False,
                          **filters: Any) -> dict:
        """One ListDevices page (``total``, ``size``, ``items``, ...) as the service sends
        it, less the devices' secrets and, unless ``staff``, the staff names
        (:func:`romakit.redact.scrub`)."""
        params = {**query_params(filters), "offset": str(offset), "limit": str(limit)}
        return scrub(await self._read("/devices", params, check_page), staff=staff)

    async def preflight(self) -> dict[str, Any]:
        """One cheap authenticated read (ListDevices, one item): proves the credentials,
        project and instance before anything is changed. Returns ``{"total", "clock_skew_s"}``;
        refused credentials raise :class:`~romakit.errors.AuthRefused` naming a skewed clock
        when that is the likely cause (the answer's ``Date`` against this machine's), and an
        answer that the instance or project does not exist
        :class:`~romakit.errors.TargetNotFound`."""
        self._check_open()
        await self.resolve_project()
        try:
            resp = await exchange(self._http, "GET", self.prefix + "/devices",
                                  {"params": {"offset": "0", "limit": "1"}}, self.bounds)
        except ApiError as e:  # IAM refused to renew the credentials on the way
            if e.auth_refused:
                raise AuthRefused(e.status, e.error_code, e.error_msg, e.request_id, e.retry_after,
                                  e.clock_skew) from e
            raise
        except httpx.HTTPError as e:
            raise TransportError(f"pre-flight read could not reach {self.endpoint}: {type(e).__name__}"
                                 f"{unreachable_hint(self.endpoint, e)}", sent=False) from e
        self.clock_skew = clock_skew(resp)
        if resp.status_code in (401, 403):
            raise api_error(resp, AuthRefused)
        if resp.status_code >= 400:
            err = api_error(resp)
            raise api_error(resp, TargetNotFound) if target_missing(err) else err
        return {"total": check_page(self._json(resp))["total"], "clock_skew_s": self.clock_skew}

    async def devices(self, **filters: Any) -> pd.DataFrame:
        """Every device matching ``filters`` (all pages of 999) as a DataFrame.

        Filters are ListDevices' (``online_status="online"``, ``node_type="gateway"``,
        ``product_id=...``, ``tag=...``...); enums come back as readable categories.
        Offset paging over a fleet that changes while it is read can skip devices: the
        rows are checked against the ``total`` every page reported, the list is read
        again (up to 3 reads in all, :func:`romakit.link.listing.read_all`) on a mismatch, and if it
        still disagrees a warning says so and ``frame.attrs["romakit_total_mismatch"]``
        holds the counts. Pages that contradict their ``total`` in every read raise
        :class:`~romakit.errors.ListingContradiction`; a listed device whose id no LINK
        device can have is left out and named in ``frame.attrs["romakit_malformed"]``.
        """
        params = query_params(filters)

        def query(offset: int) -> dict[str, str]:
            return {**params, "offset": str(offset), "limit": str(PAGE_LIMIT)}

        async def page(offset: int) -> listing.Page:  # raw bytes -> columns (romakit.link.listing)
            return await self._read("/devices", query(offset), listing.decode_page, raw=True)

        async def body(offset: int, on_sent: Callable[[], None]) -> bytes:  # decoded later, by the lane
            return await self._read("/devices", query(offset), raw=True, on_sent=on_sent)

        return await listing.read_all(page, PAGE_LIMIT, self.concurrency, raw=body)

    async def device(self, device_id: int, *, staff: bool = False) -> dict:
        """One device's details (ShowDevice) as the service sends them, less its secrets
        (``authentication.password``...) and, unless ``staff``, the names of who created
        and last changed it (``created_user``, ``last_updated_user``)."""
        (dev,) = link_ids([device_id])
        return scrub(await self._read(f"/devices/{dev}"), staff=staff)

    # -- batch operations -----------------------------------------------------------------
    async def force_offline(self, ids: Ids, **options: Unpack[BatchKwargs]) -> BatchResult:
        """Bring devices offline in batches (BatchFreezeDevices): one row per device.

        ``options`` are the batch options (:class:`~romakit.engine.BatchOptions`:
        ``chunk_size``, ``concurrency``, ``retry``, ``rollout``, ``progress``, ``cancel``,
        ...), checked before anything is sent. The service's ``success`` list is its
        claim; ``BatchResult.verify`` checks it.
        """
        dev_ids = link_ids(ids)

        async def send(chunk: list, no: int, attempt: int) -> Answer:
            resp = await self._send("POST", "/devices/force-offline", {"device_ids": chunk})
            ok, bad, rid = verdicts(resp)
            return Answer(success=ok, failed=[(i, n, None, None) for i, n in bad], request_id=rid,
                          http_status=resp.status_code)

        return await self._batch("force_offline", dev_ids, send, options)

    async def delete_devices(
        self, ids: Ids, *, body_field: str = "device_ids", keep_snapshot: bool = True, **options: Unpack[BatchKwargs]
    ) -> BatchResult:
        """Delete devices in batches (BatchDeleteDevices; 204 per chunk = every device in it done).

        Each chunk's devices are read (ShowDevice; for a deletion big against the fleet, the
        whole listing once) just before it is sent and kept in the journal: ``rk.restore``
        re-creates them from there (``keep_snapshot=False``: no read, nothing to restore from). ``body_field`` is the documented ``device_ids``;
        the official SDK sends ``resources``.
        """
        if body_field not in ("device_ids", "resources"):
            raise InputError(f"body_field must be 'device_ids' or 'resources', got {body_field!r}")
        dev_ids = link_ids(ids)

        async def send(chunk: list, no: int, attempt: int) -> Answer:
            resp = await self._send("DELETE", "/devices", {body_field: chunk})
            return Answer(success=[(i, None) for i in chunk], request_id=resp.headers.get("X-Request-Id"),
                          http_status=resp.status_code)

        # each chunk's records read just before it is sent: what rk.restore re-creates them from
        return await self._batch("delete_devices", dev_ids, send, options,
                                 snapshot=restore.reader(self, len(dev_ids)) if keep_snapshot is not False else None)

    async def create_device(self, body: Mapping[str, Any]) -> dict:
        """One CreateDevice (``POST .../devices``, the SDK's ``CreateDeviceRequestBody``
        fields): the new device as the service answers it, less its secrets."""
        if not isinstance(body, Mapping):
            raise InputError(f"body must be a mapping of CreateDevice fields, got {type(body).__name__}")
        return scrub(self._json(await self._call("POST", "/devices", {"content": _encode(dict(body))})))

    async def restore_devices(self, ids: Ids, *, snapshot: Mapping[Any, Mapping[str, Any]],
                              **options: Unpack[BatchKwargs]) -> BatchResult:
        """Re-create deleted devices from their ``snapshot`` records (``rk.restore`` reads them
        from the deletion's journal): one CreateDevice per request, gateways first; one row
        per deleted id. A device whose node id LINK lists already is not created again
        (``success``, settled by the read). The new device has a new id, client id and
        secret: its field device needs its credentials set again."""
        check_chunk("restore_devices", options.get("chunk_size") or 1)  # LINK creates one device per request
        records = restore.checked(link_ids(ids), snapshot)
        names = {i: str(r["device_name"]) for i, r in records.items()}
        result = await self._batch("restore_devices", list(records), restore.sender(self, records),
                                   {"names": names, **options}, done=restore.present(self, records))
        result.inputs = {str(i): r for i, r in records.items()}
        return result

    async def _batch(self, operation: str, ids: list[int], send: SendChunk, options: Mapping[str, Any],
                     **extra: Any) -> BatchResult:
        """The batch pipeline (:func:`romakit.batch.run_operation`) with this client's defaults,
        after the pre-flight read (``extra``: its snapshot or reconcile readers)."""
        self._check_open()  # refused before anything is journaled or sent, never "unknown"
        opts = BatchOptions.from_kwargs(options, refuse=_CLIENT_SET, where=operation)
        if self.settings.preflight and ids:  # refused credentials: raise before anything is sent
            try:
                await self.preflight()
            except (ApiError, TransportError, MalformedResponse) as e:
                if isinstance(e, (AuthRefused, TargetNotFound)):
                    raise
                # a service in trouble is the engine's to classify, chunk by chunk
                log.info("%s: the pre-flight read failed (%s); going on", operation, e)
        await self.resolve_project()  # the journal keeps the project id
        opts = with_judge(opts, self, operation)  # a canary that must come back reads the fleet
        size = None if operation != "restore_devices" else 1  # one device per CreateDevice
        return await run_operation(self, operation, ids, send, opts, journal=self.journal,
                                   chunk_size=size or self.chunk_size, concurrency=self.concurrency, retry=self.retry,
                                   progress=self.progress, attempt_timeout=self.timeout * 2 + 5, **extra)

    # -- life -----------------------------------------------------------------------------
    @property
    def closed(self) -> bool:
        """True once the client was closed: it sends nothing any more."""
        return self._http.is_closed

    async def aclose(self, *, reason: str | None = None) -> None:
        """Close the connections; using the client afterwards raises
        :class:`~romakit.errors.ClientClosed` (naming ``reason``, e.g. "its sandbox was closed")."""
        if not self._http.is_closed:
            self._closed_why = reason
        await self._http.aclose()

    async def __aenter__(self) -> AsyncLinkClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


@mirror(AsyncLinkClient, "settings", "endpoint", "project_id", "region", "clock_skew", "instance_id", "auth",
        "timeout", "chunk_size", "concurrency", "retry", "progress", "prefix", "closed", "journal", "bounds", docs={
            "settings": "The client's settings (LinkSettings).", "endpoint": "The service's base URL.",
            "region": "The region, when given.", "clock_skew": "Server clock minus ours at the last pre-flight (s).",
            "instance_id": "The LINK instance id.", "auth": "The request signer (AkSk or Token).",
            "timeout": "Seconds to wait for each answer.", "chunk_size": "Default devices per request.",
            "concurrency": "Default requests in flight.", "retry": "Default retry policy.",
            "progress": "Default progress setting.", "journal": "Where this client's operations are journaled.",
            "bounds": "Each answer's deadline and size cap."})
class LinkClient:
    """Synchronous client for one ROMA Connect LINK instance (see :class:`AsyncLinkClient`).

    Works the same in scripts and in Jupyter: the async core runs on romakit's own
    background loop, so a notebook's running loop is never in the way; every method and
    setting shown here is the core's (read-only).
    """

    def __init__(self, endpoint: str | None = None, project_id: str | None = None, instance_id: str | None = None,
                 auth: httpx.Auth | None = None, **options: Unpack[LinkOptions]) -> None:
        self._async = AsyncLinkClient(endpoint, project_id, instance_id, auth, **options)

    def __repr__(self) -> str:
        return repr(self._async).replace("AsyncLinkClient", "LinkClient", 1)

    kind = LINK
    target = forward("target", AsyncLinkClient.target.__doc__)
    # the core's methods, run to their end on romakit's loop
    identity, request, preflight = twin(AsyncLinkClient.identity), twin(AsyncLinkClient.request), \
        twin(AsyncLinkClient.preflight)
    resolve_project, device_page = twin(AsyncLinkClient.resolve_project), twin(AsyncLinkClient.device_page)
    devices, device = twin(AsyncLinkClient.devices), twin(AsyncLinkClient.device)
    force_offline, delete_devices = twin(AsyncLinkClient.force_offline), twin(AsyncLinkClient.delete_devices)
    create_device, restore_devices = twin(AsyncLinkClient.create_device), twin(AsyncLinkClient.restore_devices)

    @property
    def aio(self) -> AsyncLinkClient:
        """The async client underneath (only usable on romakit's background loop)."""
        return self._async

    def close(self, *, reason: str | None = None) -> None:
        """Close the connections; the client sends nothing any more (using it raises
        :class:`~romakit.errors.ClientClosed`, naming ``reason`` when given)."""
        run(self._async.aclose(reason=reason))

    def __enter__(self) -> LinkClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


AsyncLinkClient.__init__.__signature__ = LinkClient.__init__.__signature__ = constructor_signature(  # type: ignore[attr-defined]
    [(n, None) for n in ("endpoint", "project_id", "instance_id", "auth")], LinkSettings)


def _on_written(callback: Callable[[], None]) -> Callable[[str, dict], Awaitable[None]]:
    """An httpcore ``trace`` callback calling ``callback`` once a try's request is written
    (its body sent, or failing to be: the answer is awaited from then on)."""

    async def trace(event: str, info: dict) -> None:
        if event.endswith(("send_request_body.complete", "send_request_body.failed")):
            callback()

    return trace
