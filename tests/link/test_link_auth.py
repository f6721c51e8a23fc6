"""romakit.link.auth against Huawei's reference signer (huaweicloudsdkcore), byte for byte.

Two generated comparisons:

* SDK-built: a request described the way the SDK's API methods describe it (path
  template + path params, query pairs, headers, body) goes through the SDK's own
  ``Client.build_future_request`` (which adds User-Agent, Content-Type, X-Project-Id,
  X-Security-Token, Host, X-Sdk-Date and signs); the same request as it goes on the wire
  is rebuilt as an ``httpx.Request`` and signed by romakit.
* httpx-built: a request made with httpx (default client headers, odd raw paths, raw or
  encoded queries, json/form/raw bodies) is signed by romakit; the ``SdkRequest`` the SDK
  would need to send that same wire request is signed by the SDK's credentials.

Both compare the ``Authorization`` header at a fixed time.
"""

from __future__ import annotations

import asyncio
import hashlib
import subprocess
import sys
import urllib.parse
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta, timezone
from unittest import mock

import httpx
import pytest
from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.client import Client, ClientBuilder
from huaweicloudsdkcore.sdk_request import SdkRequest
from huaweicloudsdkcore.signer import signer as sdk_signer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from romakit.errors import InputError
from romakit.link.auth import UNSIGNED_HEADERS, AkSk, Token

AK = "HPUAEXAMPLEAK0123456"
SK = "sK3cr3t/Example+Key=ü"  # non-ASCII on purpose: both sides use its UTF-8 bytes
SECURITY_TOKEN = "gQpjbi1ub3J0aC00SECRETTOKENbase64/+="
PROJECT_ID = "0123456789abcdef0123456789abcdef"
FIXED = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)
ENDPOINT = "http://127.0.0.1:8443"

EXAMPLES = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# Headers romakit sets or controls itself; generated "extra" headers avoid these names.
RESERVED = {
    "host",
    "content-type",
    "user-agent",
    "x-sdk-date",
    "x-project-id",
    "x-security-token",
    "x-sdk-content-sha256",
    "accept",
} | UNSIGNED_HEADERS


class _FrozenDatetime(datetime):
    """The SDK signer's ``datetime`` with ``utcnow`` stopped at FIXED."""

    @classmethod
    def utcnow(cls) -> datetime:  # type: ignore[override]
        return FIXED.replace(tzinfo=None)


@contextmanager
def sdk_clock_frozen():
    with mock.patch.object(sdk_signer, "datetime", _FrozenDatetime):
        yield


def romakit_auth(project_id: str | None, security_token: str | None) -> AkSk:
    return AkSk(AK, SK, project_id=project_id, security_token=security_token, now=lambda: FIXED)


def sdk_credentials(project_id: str | None, security_token: str | None) -> BasicCredentials:
    credentials = BasicCredentials(AK, SK, project_id)
    if security_token is not None:
        credentials.with_security_token(security_token)
    return credentials


_SDK_CLIENTS: dict[tuple[str | None, str | None], Client] = {}


def sdk_client(project_id: str | None, security_token: str | None) -> Client:
    """One SDK client per credential shape, built as the SDK's service clients are."""
    key = (project_id, security_token)
    if key not in _SDK_CLIENTS:
        _SDK_CLIENTS[key] = (
            ClientBuilder(Client)
            .with_credentials(sdk_credentials(project_id, security_token))
            .with_endpoints([ENDPOINT])
            .build()
        )
    return _SDK_CLIENTS[key]


# ---------------------------------------------------------------------------------------
# strategies

ODD = list(" ~%+;=&?#/:@!$'()*,._-\t") + ["ü", "é", "中", "😀", "\u00a0", "%2F", "%41", "%zz"]


def joined(pieces: st.SearchStrategy[str], max_size: int) -> st.SearchStrategy[str]:
    """Strings made of up to ``max_size`` pieces (pieces may be longer than one character)."""
    return st.lists(pieces, max_size=max_size).map("".join)


odd_text = joined(st.one_of(st.sampled_from(ODD), st.characters(codec="utf-8")), 8)
name_char = st.sampled_from("abcXYZ019-_")
header_names = st.text(alphabet=name_char, min_size=1, max_size=10).filter(
    lambda n: n.lower() not in RESERVED
)
# Header values: no control characters (they cannot travel in a header), but leading and
# trailing spaces, tabs, NBSP and ideographic spaces (the SDK str.strip()s values) and
# non-ASCII text (sent as UTF-8 by both).
header_values = joined(
    st.one_of(
        st.sampled_from([" ", "\t", "\u00a0", "\u3000", "ü", "中", ",", ";", "=", "_"]),
        st.characters(codec="utf-8", exclude_categories=("Cc", "Cs", "Zl", "Zp")),
    ),
    12,
)
extra_headers = st.dictionaries(header_names, header_values, max_size=4).map(
    lambda d: {k: v for k, v in {n.lower(): (n, v) for n, v in d.items()}.values()}
)
methods = st.sampled_from(["GET", "POST", "DELETE", "PUT", "PATCH"])
query_keys = st.one_of(
    st.sampled_from(["a", "b", "A", "limit", "offset", "ü", "a b", "~"]), odd_text
)
query_pairs = st.lists(st.tuples(query_keys, odd_text), max_size=6)
project_ids = st.sampled_from([None, PROJECT_ID])
security_tokens = st.sampled_from([None, SECURITY_TOKEN])
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | odd_text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(odd_text, inner, max_size=3),
    max_leaves=8,
)
content_types = st.sampled_from(
    [
        "application/json",
        "application/json;charset=UTF-8",
        "Application/JSON",  # the SDK's check is case-sensitive: this one is UNSIGNED-PAYLOAD
        "text/plain",
        "application/octet-stream",
        "application/x-www-form-urlencoded",
        "application/bson",
        " application/json",
    ]
)


# ---------------------------------------------------------------------------------------
# 1. the SDK builds the request


# Path params "." and ".." are left out: the SDK puts them in its path unencoded and signs
# them as such, while HTTP clients (httpx, and urllib3 under the SDK) remove dot segments
# before sending, so the SDK would sign a path it does not send.
path_params = st.lists(odd_text.filter(lambda s: s not in (".", "..")), max_size=4)


@st.composite
def sdk_bodies(draw):
    """(header Content-Type or None, body as the SDK's API methods take it)."""
    kind = draw(st.sampled_from(["none", "json", "json-ct", "text", "form"]))
    if kind == "none":
        return None, None
    if kind == "json":
        return None, draw(st.dictionaries(odd_text, json_values, max_size=4))
    if kind == "json-ct":
        return "application/json;charset=UTF-8", draw(json_values)
    if kind == "text":
        return draw(st.sampled_from(["text/plain", "Application/JSON"])), draw(odd_text)
    # form: a dict; the SDK hands it to requests, which url-encodes it
    return "application/x-www-form-urlencoded", draw(
        st.dictionaries(odd_text, odd_text, max_size=3)
    )


def httpx_from_sdk(sdk_request: SdkRequest) -> httpx.Request:
    """The wire request the SDK would send (requests sends these headers and this body)."""
    body = sdk_request.body
    if isinstance(body, dict):  # form: requests url-encodes the dict
        body = urllib.parse.urlencode(body).encode("ascii")
    # After signing, the SDK's header values are latin-1 text standing for UTF-8 bytes.
    headers = [
        (name, value.encode("latin-1"))
        for name, value in sdk_request.header_params.items()
        if name != "Authorization"
    ]
    return httpx.Request(sdk_request.method, sdk_request.url, headers=headers, content=body or None)


@EXAMPLES
@given(
    method=methods,
    params=path_params,
    trailing_slash=st.booleans(),
    query=query_pairs,
    headers=extra_headers,
    body=sdk_bodies(),
    project_id=project_ids,
    security_token=security_tokens,
)
def test_same_signature_as_sdk_client(
    method, params, trailing_slash, query, headers, body, project_id, security_token
):
    template = "/v2/devices" + "".join(f"/{{p{i}}}" for i in range(len(params)))
    template += "/" if trailing_slash else ""
    content_type, request_body = body
    header_params = dict(headers)
    if content_type is not None:
        header_params["Content-Type"] = content_type
    client = sdk_client(project_id, security_token)
    with sdk_clock_frozen():
        sdk_request = client.build_future_request(
            method,
            template,
            {f"p{i}": p for i, p in enumerate(params)},
            list(query),
            header_params,
            request_body,
            None,
            None,
            None,
            {},
            None,
        ).result(timeout=10)
    expected = sdk_request.header_params["Authorization"]

    request = httpx_from_sdk(sdk_request)
    romakit_auth(project_id, security_token).sign(request)

    assert request.headers["Authorization"] == expected
    sent = {name.lower(): value for name, value in request.headers.raw}
    for name, value in sdk_request.header_params.items():
        assert sent[name.lower().encode("ascii")] == value.encode("latin-1"), name


# ---------------------------------------------------------------------------------------
# 2. httpx builds the request

raw_path_chars = st.one_of(
    st.sampled_from([c for c in ODD if c not in "?#\t"] + ["/", "//", ".", ".."]),
    st.characters(codec="utf-8", exclude_characters="?#", exclude_categories=("Cc", "Cs")),
)
raw_paths = st.builds(
    lambda text, slash: "/" + text + ("/" if slash else ""),
    joined(raw_path_chars, 16),
    st.booleans(),
)
raw_query_chars = st.one_of(
    st.sampled_from(list("&&==+%;~ /?") + ["ü", "%zz", "%2B", "%20", "%FF", "a", "b"]),
    st.characters(codec="utf-8", exclude_characters="#", exclude_categories=("Cc", "Cs")),
)


@st.composite
def httpx_queries(draw):
    """("params", pairs) encoded by httpx, or ("raw", text) put in the URL as is."""
    if draw(st.booleans()):
        return "params", draw(query_pairs)
    return "raw", draw(joined(raw_query_chars, 16))


@st.composite
def httpx_bodies(draw):
    """Keyword arguments for httpx's build_request (json=, data=, content=) and a Content-Type."""
    kind = draw(st.sampled_from(["none", "json", "form", "bytes", "text", "empty"]))
    if kind == "none":
        return {}, None
    if kind == "json":
        return {"json": draw(json_values)}, None
    if kind == "form":
        return {"data": draw(st.dictionaries(odd_text, odd_text, min_size=1, max_size=3))}, None
    content_type = draw(st.none() | content_types)
    if kind == "bytes":
        return {"content": draw(st.binary(max_size=64))}, content_type
    if kind == "text":
        return {"content": draw(odd_text)}, content_type
    return {"content": b""}, content_type


def sdk_request_from_httpx(request: httpx.Request, query: tuple[str, object]) -> SdkRequest:
    """The SdkRequest that sends this same wire request, as the SDK would fill it in.

    - resource_path: the path as sent (the SDK's resource_path is already encoded);
    - query_params: the SDK takes (name, value) pairs. For pairs given to httpx they are
      those pairs; for a raw query string, the pairs a server reads from it (urllib's
      parse_qsl, as Starlette does: '+' is a space, blank values kept). This defines the
      decoding for raw strings rather than testing it;
    - header_params: the request's headers minus UNSIGNED_HEADERS, which in the SDK's own
      flow are added by requests after signing (so it never signs them either). The
      Content-Type key is spelled "Content-Type", as the SDK always spells it (its
      UNSIGNED-PAYLOAD check looks that key up case-sensitively);
    - body: the bytes sent, or None when empty.
    """
    kind, value = query
    if kind == "params":
        pairs = list(value)
    else:
        pairs = urllib.parse.parse_qsl(request.url.query.decode("ascii"), keep_blank_values=True)
    headers: dict[str, str] = {}
    for raw_name, raw_value in request.headers.raw:
        name = raw_name.decode("ascii")
        if name.lower() in UNSIGNED_HEADERS:
            continue
        if name.lower() == "content-type":
            name = "Content-Type"
        headers[name] = raw_value.decode("utf-8")
    return SdkRequest(
        method=request.method,
        schema=request.url.scheme,
        host=request.url.netloc.decode("ascii"),
        resource_path=request.url.raw_path.split(b"?", 1)[0].decode("ascii"),
        query_params=pairs,
        header_params=headers,
        body=request.content or None,
    )


@pytest.fixture(scope="module")
def httpx_client():
    """Only builds requests (httpx's default headers); it never connects."""
    with httpx.Client() as client:
        yield client


@EXAMPLES
@given(
    method=methods,
    path=raw_paths,
    query=httpx_queries(),
    headers=extra_headers,
    body=httpx_bodies(),
    project_id=project_ids,
    security_token=security_tokens,
)
def test_same_signature_as_sdk_signer_for_httpx_requests(
    httpx_client, method, path, query, headers, body, project_id, security_token
):
    kind, value = query
    url = ENDPOINT + path
    if kind == "raw" and value:
        url += "?" + value
    body_kwargs, content_type = body
    header_list = [(name, v.encode("utf-8")) for name, v in headers.items()]
    if content_type is not None:
        header_list.append(("content-type", content_type.encode("ascii")))
    # default headers: Accept, Accept-Encoding, Connection, User-Agent
    request = httpx_client.build_request(
        method,
        url,
        params=value if kind == "params" else None,
        headers=header_list,
        **body_kwargs,
    )
    sdk_request = sdk_request_from_httpx(request, query)

    romakit_auth(project_id, security_token).sign(request)
    with sdk_clock_frozen():
        sdk_credentials(project_id, security_token).sign_request(sdk_request)

    assert request.headers["Authorization"] == sdk_request.header_params["Authorization"]


# ---------------------------------------------------------------------------------------
# the auth flow inside real httpx clients


def sdk_authorization_of(request: httpx.Request) -> str:
    """What the SDK signer computes for a request as it reached the transport."""
    sdk_request = sdk_request_from_httpx(request, ("raw", request.url.query.decode()))
    for name in ("Authorization", "X-Sdk-Content-Sha256"):
        sdk_request.header_params.pop(name, None)
    sdk_signer.Signer(BasicCredentials(AK, SK)).sign(sdk_request)
    return sdk_request.header_params["Authorization"]


def test_sync_client_sends_signed_request_with_body_intact():
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"ok": True})

    body = {"devices": ["d-1", "d-ü"], "n": 2}
    transport = httpx.MockTransport(handler)
    with httpx.Client(transport=transport, auth=AkSk(AK, SK), base_url=ENDPOINT) as client:
        response = client.post("/v2/x/devices/batch-freeze", params={"q": "a b"}, json=body)
    assert response.status_code == 200
    (sent,) = seen
    assert sent.headers["Authorization"].startswith(f"SDK-HMAC-SHA256 Access={AK}, SignedHeaders=")
    assert "x-sdk-date" in sent.headers["Authorization"]
    assert httpx.Response(200, content=sent.content).json() == body
    assert sent.headers["Authorization"] == sdk_authorization_of(sent)


def test_async_client_signs_a_streamed_body():
    seen: list[httpx.Request] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        await request.aread()
        return httpx.Response(204)

    async def chunks():
        yield b'{"a": '
        yield b"1}"

    async def main() -> httpx.Response:
        transport = httpx.MockTransport(handler)
        async with httpx.AsyncClient(transport=transport, auth=AkSk(AK, SK)) as client:
            return await client.put(
                ENDPOINT + "/v2/p/devices/a b",
                content=chunks(),
                headers={"Content-Type": "application/json"},
            )

    response = asyncio.run(main())
    assert response.status_code == 204
    (sent,) = seen
    assert sent.content == b'{"a": 1}'
    assert sent.headers["Authorization"] == sdk_authorization_of(sent)


def test_token_sets_header_in_sync_and_async_clients():
    tokens = []

    def handler(request: httpx.Request) -> httpx.Response:
        tokens.append(request.headers.get("X-Auth-Token"))
        return httpx.Response(200)

    auth = Token("MIItoken-value_123")
    with httpx.Client(transport=httpx.MockTransport(handler), auth=auth) as client:
        client.get(ENDPOINT + "/v2/x")

    async def main() -> None:
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler), auth=auth) as client:
            await client.get(ENDPOINT + "/v2/x")

    asyncio.run(main())
    assert tokens == ["MIItoken-value_123", "MIItoken-value_123"]


# ---------------------------------------------------------------------------------------
# details


def test_resigning_replaces_a_stale_date_and_signature():
    moments = iter([FIXED, FIXED + timedelta(minutes=20)])
    auth = AkSk(AK, SK, now=lambda: next(moments))
    request = httpx.Request("GET", ENDPOINT + "/v2/x")
    auth.sign(request)
    first = request.headers["Authorization"]
    auth.sign(request)
    assert request.headers.get_list("X-Sdk-Date") == ["20240506T072809Z"]
    assert request.headers.get_list("Authorization") != [first]
    assert len(request.headers.get_list("Authorization")) == 1
    assert request.headers["Authorization"] == sdk_authorization_of(request)


def test_clock_naive_is_utc_and_aware_is_converted():
    naive = AkSk(AK, SK, now=lambda: datetime(2024, 1, 2, 3, 4, 5))
    aware = AkSk(
        AK, SK, now=lambda: datetime(2024, 1, 2, 11, 4, 5, tzinfo=timezone(timedelta(hours=8)))
    )
    for auth in (naive, aware):
        request = httpx.Request("GET", ENDPOINT + "/")
        auth.sign(request)
        assert request.headers["X-Sdk-Date"] == "20240102T030405Z"


def test_default_clock_is_now():
    request = httpx.Request("GET", ENDPOINT + "/")
    before = datetime.now(UTC).replace(microsecond=0)
    AkSk(AK, SK).sign(request)
    after = datetime.now(UTC)
    stamped = datetime.strptime(request.headers["X-Sdk-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    assert before <= stamped <= after


def test_scope_headers_and_unsigned_payload():
    request = httpx.Request(
        "POST", ENDPOINT + "/v2/x", content=b"raw", headers={"Content-Type": "text/plain"}
    )
    romakit_auth(PROJECT_ID, SECURITY_TOKEN).sign(request)
    assert request.headers["X-Project-Id"] == PROJECT_ID
    assert request.headers["X-Security-Token"] == SECURITY_TOKEN
    assert request.headers["X-Sdk-Content-Sha256"] == "UNSIGNED-PAYLOAD"
    signed = request.headers["Authorization"].split("SignedHeaders=")[1].split(",")[0].split(";")
    assert signed == sorted(signed)
    assert {
        "host",
        "x-sdk-date",
        "x-project-id",
        "x-security-token",
        "x-sdk-content-sha256",
    } <= set(signed)
    assert "content-length" not in signed


def test_underscore_and_transport_headers_are_sent_but_not_signed():
    with httpx.Client() as client:
        request = client.build_request("GET", ENDPOINT + "/", headers={"X_Under": "1"})
    AkSk(AK, SK, now=lambda: FIXED).sign(request)
    signed = request.headers["Authorization"].split("SignedHeaders=")[1].split(",")[0]
    assert signed == "accept;host;user-agent;x-sdk-date"
    assert request.headers["X_Under"] == "1"


def test_repeated_header_is_refused_without_its_value():
    request = httpx.Request("GET", ENDPOINT + "/", headers=[("X-A", "v-one"), ("x-a", "v-two")])
    with pytest.raises(InputError) as info:
        AkSk(AK, SK).sign(request)
    assert "x-a" in str(info.value)
    assert "v-one" not in str(info.value) and "v-two" not in str(info.value)


def test_empty_body_hashes_as_empty():
    assert sdk_signer.Signer._EMPTY_HASH == hashlib.sha256(b"").hexdigest()
    for method in ("GET", "POST", "DELETE"):
        request = httpx.Request(method, ENDPOINT + "/v2", content=b"")
        AkSk(AK, SK, now=lambda: FIXED).sign(request)
        assert request.headers["Authorization"] == sdk_authorization_of(request)


# ---------------------------------------------------------------------------------------
# secrets and validation


def test_repr_and_str_hide_secrets():
    auth = AkSk(AK, SK, project_id=PROJECT_ID, security_token=SECURITY_TOKEN)
    token = Token(SECURITY_TOKEN)
    for text in (repr(auth), str(auth), repr(token), str(token), repr([auth, token])):
        assert SK not in text and SECURITY_TOKEN not in text
        assert AK not in text  # only a prefix of the access key is shown
    assert repr(AkSk("ABCDEFGH", SK)) == "AkSk(ak='ABCD…', sk='***')"
    assert repr(token) == "Token(token='***')"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"ak": "", "sk": SK},
        {"ak": "AK WITH SPACE", "sk": SK},
        {"ak": "AKü", "sk": SK},
        {"ak": "AK\n", "sk": SK},
        {"ak": AK, "sk": ""},
        {"ak": AK, "sk": SK, "project_id": ""},
        {"ak": AK, "sk": SK, "security_token": ""},
        {"ak": AK, "sk": SK, "security_token": "secret token\r\nX: y"},
    ],
)
def test_aksk_refuses_bad_input_without_echoing_secrets(kwargs):
    with pytest.raises(InputError) as info:
        AkSk(**kwargs)
    message = str(info.value)
    for secret in ("secret token", SK):
        assert secret not in message


@pytest.mark.parametrize("token", ["", "tok en", "tokü", "tok\r\n"])
def test_token_refuses_bad_input_without_echoing_it(token):
    with pytest.raises(InputError) as info:
        Token(token)
    if token:
        assert token not in str(info.value)


def test_module_is_light():
    code = "import sys, romakit.link.auth; assert 'pandas' not in sys.modules, 'pandas imported'"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
