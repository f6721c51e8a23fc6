"""Fuzz the sandbox's LINK REST API from its own OpenAPI document (schemathesis).

A real :class:`~romakit.sim.http.HttpServer` serves the simulator on loopback; schemathesis
generates requests from :func:`romakit.sim.openapi.link_openapi` (positive and negative
data; examples, coverage and fuzzing phases), sends them with the sandbox token and checks
every answer: it conforms to the document (status, content type, headers, body schema),
negative data is refused, a request without credentials is refused, no 5xx at all (the
faults are off and project/instance are the sandbox's), and every error carries the
documented body (``error_code``, ``error_msg`` and the request id under the key its
status uses, equal to ``X-Request-Id``).

Bounded and reproducible: a fixed seed, derandomized generation, no example database,
``FUZZ_EXAMPLES`` fuzzing examples per operation (coverage cases come on top). Each
operation's generated test checks its own floor of cases; every operation of the
document has one; the counts of those run in this process are printed.

Hand-written malformed requests (bodies that are not JSON, wrong content types, huge and
odd ids, nested garbage, odd paths and methods) follow as explicit cases.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import GenerationMode
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import positive_data_acceptance, unsupported_method

from romakit.sim.faults import Faults
from romakit.sim.fleet import Fleet
from romakit.sim.http import HttpServer
from romakit.sim.link_app import LinkSimulator
from romakit.sim.openapi import MAX_ID, link_openapi
from romakit.sim.server import SimCredentials

SEED = 6
TIMEOUT = 10.0
#: fuzzing-phase examples per operation (and per generation mode); override with ROMAKIT_FUZZ_EXAMPLES
FUZZ_EXAMPLES = int(os.environ.get("ROMAKIT_FUZZ_EXAMPLES", "80"))
CREDS = SimCredentials.from_seed(SEED)
PREFIX = f"/v2/{CREDS.project_id}/link/instances/{CREDS.instance_id}"
RID_RE = re.compile(r"^[0-9a-f-]{36}-\d{13}-sandbox-P-romalink-service01$")
#: error codes by status: the documented ones, and nothing else
CODES = {
    400: {"SCB.00000000"},
    401: {"APIG.0301"},
    403: {"APIG.0302"},
    404: {"ROMA.00110006", "APIG.0101"},
    429: {"APIG.0308"},
    500: {"ROMA.00110002", "APIG.9999"},
}

#: schemathesis checks left out, and why:
#: - unsupported_method expects 405 for a method the document does not list; the sandbox
#:   answers 404 APIG.0101 with the error body, as Huawei's API Gateway does;
#: - positive_data_acceptance (CreateDevice only) expects a schema-valid body to be taken;
#:   the sandbox refuses a product, application or gateway that does not exist, or a
#:   node_id already taken, with 400 SCB.00000000: facts no schema can hold.
BASE_EXCLUDED = [unsupported_method]
EXCLUDED = {"POST": {"/v2/{project_id}/link/instances/{instance_id}/devices":
                     [unsupported_method, positive_data_acceptance]}}

#: generated cases run, by operation label (printed and checked at the end)
CASES: Counter[str] = Counter()


def _schema() -> Any:
    config = SchemathesisConfig(seed=SEED)
    project = config.projects.default
    project.generation.update(
        modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
        max_examples=FUZZ_EXAMPLES,
        deterministic=True,
        database="none",
    )
    # the sandbox's own project and instance: other values only ever meet ROMA.00110002
    # (covered by hand below), and the fuzzer should reach the operations
    project.update(parameters={"project_id": CREDS.project_id, "instance_id": CREDS.instance_id})
    return schemathesis.openapi.from_dict(link_openapi(), config=config)


schema = _schema()


class Sandbox:
    """A LINK simulator served on loopback, with a requests session for schemathesis."""

    def __init__(self) -> None:
        self.sim = LinkSimulator(Fleet(devices=300, seed=SEED), Faults(seed=SEED), CREDS)
        self.server = HttpServer(self.sim.app).start()
        self.url = self.server.url
        self.session = requests.Session()
        self.http = httpx.Client(base_url=self.url, timeout=TIMEOUT)

    def close(self) -> None:
        self.session.close()
        self.http.close()
        self.server.stop()


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    sb = Sandbox()
    try:
        yield sb
    finally:
        sb.close()


# -- the documented error body ------------------------------------------------------------
def error_problem(status: int, headers: Any, content: bytes) -> str | None:
    """Why an error answer is not the documented one, or None when it is."""
    if status not in CODES:
        return f"undocumented status {status}"
    try:
        body = json.loads(content)
    except ValueError:
        return f"body is not JSON: {content[:80]!r}"
    if not isinstance(body, dict):
        return f"body is not an object: {body!r}"[:200]
    key = "requestId" if status in (400, 404) else "request_id"
    if set(body) != {"error_code", "error_msg", key}:
        return f"keys {sorted(body)} != error_code, error_msg, {key}"
    if body["error_code"] not in CODES[status]:
        return f"error_code {body['error_code']!r} is not documented for {status}"
    if not isinstance(body["error_msg"], str) or not 0 < len(body["error_msg"]) <= 200:
        return f"error_msg is not a string of 1..200 characters: {body['error_msg']!r}"
    rid = headers.get("x-request-id")
    rid = rid[0] if isinstance(rid, list) else rid
    if body[key] != rid or not RID_RE.match(body[key]):
        return f"request id {body[key]!r} does not match X-Request-Id {rid!r}"
    return None


def documented_error_body(ctx: Any, response: Any, case: Any) -> bool | None:
    """schemathesis check: a 4xx/5xx answer carries the documented error body."""
    if response.status_code < 400:
        return None
    problem = error_problem(response.status_code, response.headers, response.content)
    if problem:
        raise AssertionError(f"{case.operation.label}: {response.status_code} {problem}")
    return True


def no_server_error(ctx: Any, response: Any, case: Any) -> bool | None:
    """schemathesis check: no 5xx at all (no faults are on and the instance is the sandbox's)."""
    if response.status_code >= 500:
        raise AssertionError(f"{case.operation.label}: {response.status_code} {response.content[:300]!r}")
    return True


# -- generated cases ----------------------------------------------------------------------
@pytest.fixture()
def generated() -> Iterator[Counter[str]]:
    """The cases one generated test (one operation) runs, checked against the floor once
    all its examples ran (a function-scoped fixture lives through every example)."""
    seen: Counter[str] = Counter()
    yield seen
    assert len(seen) == 1 and sum(seen.values()) >= FUZZ_EXAMPLES, seen
    CASES.update(seen)


@pytest.mark.slow
@schema.parametrize()
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_generated_requests_get_documented_answers(case: Any, sandbox: Sandbox, generated: Counter[str]) -> None:
    generated[case.operation.label] += 1
    response = case.call(base_url=sandbox.url, session=sandbox.session,
                         headers={"X-Auth-Token": CREDS.token}, timeout=TIMEOUT)
    case.validate_response(response, additional_checks=[documented_error_body, no_server_error],
                           excluded_checks=EXCLUDED.get(case.operation.method.upper(), {}).get(
                               case.operation.path, BASE_EXCLUDED),
                           headers={"X-Auth-Token": CREDS.token})


def test_every_operation_is_fuzzed(request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str]) -> None:
    """One generated test per operation of the document is collected (in this process,
    whichever worker runs it); each checks its own floor of cases. The counts of those
    that ran here are printed."""
    generated = [item for item in request.session.items
                 if getattr(item, "originalname", None) == test_generated_requests_get_documented_answers.__name__]
    if not generated:
        pytest.skip("the generated tests (marked slow) were deselected: nothing to count")
    ops = {f"{m.upper()} {p}" for p, item in link_openapi()["paths"].items() for m in item if m != "parameters"}
    assert sorted(getattr(item, "operation_label", None) for item in generated) == sorted(ops)
    if CASES:
        width = max(len(k) for k in CASES)
        lines = [f"  {label:<{width}}  {n:>5}" for label, n in sorted(CASES.items())]
        with capsys.disabled():
            print("\ngenerated cases per operation (schemathesis):\n" + "\n".join(lines)
                  + f"\n  {'total':<{width}}  {sum(CASES.values()):>5}")


# -- hand-written malformed requests ------------------------------------------------------
T = "/v2/{project_id}/link/instances/{instance_id}"  # the document's path templates
FORCE, DEVICES, ONE = f"{T}/devices/force-offline", f"{T}/devices", f"{T}/devices/{{device_id}}"


def answer(sb: Sandbox, method: str, path: str, *, template: str | None = None, auth: bool = True,
           content: bytes | None = None, headers: dict | None = None, params: Any = None,
           full_path: bool = False) -> httpx.Response:
    """Send a request (token auth unless ``auth=False``) and check the answer is documented:
    the error body for 4xx/5xx, and the schema of ``template`` (an operation of the document)."""
    hdrs = {"Content-Type": "application/json", **({"X-Auth-Token": CREDS.token} if auth else {}),
            **(headers or {})}
    r = sb.http.request(method, path if full_path else PREFIX + path, content=content, headers=hdrs,
                        params=params)
    if r.status_code >= 400:
        problem = error_problem(r.status_code, r.headers, r.content)
        assert problem is None, f"{method} {path[:80]}: {r.status_code} {problem}"
    assert r.headers.get("X-Request-Id"), r.headers
    if template is not None:
        schema[template][method].validate_response(r)
    return r


def code(r: httpx.Response) -> tuple[int, str]:
    return r.status_code, r.json()["error_code"]


def test_openapi_document_is_served_without_auth(sandbox: Sandbox) -> None:
    logged = len(sandbox.sim.requests)
    r = sandbox.http.get("/openapi.json")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    assert r.json() == link_openapi()
    assert len(sandbox.sim.requests) == logged  # not an API call
    assert code(answer(sandbox, "POST", "/openapi.json", full_path=True)) == (404, "APIG.0101")
    assert code(answer(sandbox, "GET", "/openapi.json/x", full_path=True, auth=False)) == (401, "APIG.0301")


NOT_JSON = [
    b"", b"not json", b"\xff\xfe\x00garbage", b"{", b'{"device_ids": [1,]}', b"[" * 100_000, b"{" * 100_000,
    b'{"device_ids": ' + b"[" * 5_000 + b"]" * 5_000 + b"}", b'{"device_ids": [NaN]}', b'{"device_ids": [Infinity]}',
    b"device_ids=1&device_ids=2", b"<xml><device_ids>1</device_ids></xml>", "\ud800".encode("utf-8", "surrogatepass"),
]
NOT_AN_OBJECT = [b"null", b"42", b'"device_ids"', b"[1, 2]", b"true"]
BODY_OPS = [("POST", "/devices/force-offline", FORCE), ("DELETE", "/devices", DEVICES), ("POST", "/devices", DEVICES)]


@pytest.mark.parametrize(("method", "path", "template"), BODY_OPS, ids=[f"{m} {p}" for m, p, _ in BODY_OPS])
def test_bodies_that_are_not_json_objects_are_refused(sandbox: Sandbox, method: str, path: str,
                                                       template: str) -> None:
    for body in NOT_JSON + NOT_AN_OBJECT:
        r = answer(sandbox, method, path, template=template, content=body)
        assert code(r) == (400, "SCB.00000000"), (body[:40], r.text)


NESTED = [{"device_ids": {"a": [1]}}, {"device_ids": [[1]]}, {"device_ids": [{"id": 1}]}, {"device_ids": [[[[[]]]]]},
          {"device_ids": [None]}, {"device_ids": [True]}, {"device_ids": ["1"]}, {"device_ids": "1,2"},
          {"device_ids": 1}, {"device_ids": None}, {"ids": [1]}, {}, {"device_ids": [1, {"x": [{"y": {}}]}]}]
BAD_IDS = [0, -1, -(10**30), 10**17, 10**400, 1e308, -1e308, 0.5, 99_999_999_999_999_999.0 * 10]


@pytest.mark.parametrize("key", ["device_ids", "resources"])
def test_id_lists_with_garbage_or_out_of_range_ids_are_refused(sandbox: Sandbox, key: str) -> None:
    ops = [("POST", "/devices/force-offline", FORCE)] if key == "device_ids" else []
    ops.append(("DELETE", "/devices", DEVICES))
    for method, path, template in ops:
        for body in NESTED if key == "device_ids" else [{"resources": b["device_ids"]} for b in NESTED[:10]]:
            r = answer(sandbox, method, path, template=template, content=json.dumps(body).encode())
            assert code(r) == (400, "SCB.00000000"), (body, r.text)
        for bad in BAD_IDS:
            r = answer(sandbox, method, path, template=template, content=json.dumps({key: [7, bad]}).encode())
            assert code(r) == (400, "SCB.00000000"), (bad, r.text)
        r = answer(sandbox, method, path, template=template,
                   content=b'{"%s": [' % key.encode() + b"9" * 5_000 + b"]}")  # past int()'s digit limit
        assert code(r) == (400, "SCB.00000000")


def test_ids_at_the_edges_of_the_range_are_taken(sandbox: Sandbox) -> None:
    r = answer(sandbox, "POST", "/devices/force-offline", template=FORCE,
               content=json.dumps({"device_ids": [1, MAX_ID, 1.99, 99_999_999_999_999_984.0]}).encode())
    assert r.status_code == 200  # 1.99 -> 1 (answered once); the float just below MAX_ID is taken
    assert [f["id"] for f in r.json()["failed"]] == [1, MAX_ID, 99_999_999_999_999_984]
    r = answer(sandbox, "DELETE", "/devices", template=DEVICES,
               content=json.dumps({"device_ids": [1], "resources": [MAX_ID]}).encode())
    assert r.status_code == 204


def test_wrong_content_types_are_read_as_json_or_refused(sandbox: Sandbox) -> None:
    """The sandbox reads the body as JSON whatever Content-Type says (as the SDK-facing gateway does)."""
    body = b'{"device_ids": [3]}'
    for ctype in ("text/plain", "application/xml", "multipart/form-data; boundary=x", "application/json; charset=latin-1",
                  "", "\x7f"):
        r = answer(sandbox, "POST", "/devices/force-offline", template=FORCE, content=body,
                   headers={"Content-Type": ctype})
        assert r.status_code == 200 and r.json()["failed"] == [{"id": 3, "device_name": "", "device_id": 3}]
    r = answer(sandbox, "POST", "/devices/force-offline", template=FORCE, content=b"device_ids=3",
               headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert code(r) == (400, "SCB.00000000")
    r = answer(sandbox, "POST", "/devices/force-offline", template=FORCE, content=body.decode().encode("utf-16"))
    assert r.status_code == 200  # JSON may come in UTF-16 (RFC 8259 readers detect it)


@pytest.mark.parametrize("field,value", [
    ("device_name", ["ab"]), ("device_name", "x"), ("device_name", "x" * 65), ("device_name", 12),
    ("node_id", {"a": 1}), ("node_id", ""), ("product_id", []), ("product_id", {"a": 1}), ("product_id", "1"),
    ("product_id", True), ("product_id", 1e308), ("product", [1]), ("product", {"product_id": [1]}),
    ("app_id", []), ("app_id", {}), ("app_id", 5), ("parent_device_id", 1e308), ("parent_device_id", "gw"),
    ("parent_device_id", [1]), ("parent_device_id", 0), ("status", 1.0), ("status", True), ("status", 2),
    ("status", "0"), ("tags", "t"), ("tags", [1]), ("tags", [["t"]]), ("tags", {}), ("tags", ""), ("description", []), ("description", 0),
    ("description", False), ("description", "d" * 201),
])
def test_create_refuses_every_wrong_type(sandbox: Sandbox, field: str, value: Any) -> None:
    product = next(p for p in sandbox.sim.fleet.products() if p["product_type"] == 0)
    body = {"device_name": "fuzz-create", "node_id": re.sub(r"[^A-Za-z0-9_:-]", "-", f"FUZZ:{field}:{value!r}")[:64],
            "product_id": product["product_id"], field: value}
    if field == "product":
        del body["product_id"]
    r = answer(sandbox, "POST", "/devices", template=DEVICES,
               content=json.dumps(body).replace("1e+308", "1e999").encode())
    assert code(r) == (400, "SCB.00000000"), r.text


@pytest.mark.parametrize("raw,status", [
    ("0", 404), ("-1", 404), (str(MAX_ID + 1), 404), ("9" * 5_000, 404), ("00001", 404),
    ("abc", 400), ("+5", 400), ("1_0", 400), ("%D9%A5", 400), ("%EF%BC%95", 400), ("%205", 400), ("1.5", 400),
    ("1e3", 400), ("0x10", 400), ("%00", 400), ("%FF", 400),
])
@pytest.mark.parametrize("method", ["GET", "DELETE"])
def test_odd_device_ids_in_the_path(sandbox: Sandbox, method: str, raw: str, status: int) -> None:
    r = answer(sandbox, method, f"/devices/{raw}", template=ONE)
    assert code(r) == (status, "ROMA.00110006" if status == 404 else "SCB.00000000"), r.text


@pytest.mark.parametrize("params", [
    {"limit": " 5"}, {"limit": "+5"}, {"limit": "1_0"}, {"limit": "５"}, {"limit": ""}, {"limit": "0"},
    {"limit": "1e3"}, {"limit": "5.0"}, {"offset": "-1"}, {"offset": "abc"}, {"node_type": "3"}, {"node_type": "٠"},
    {"product_id": "-1"}, {"created_date_start": "yesterday"}, {"created_date_end": "1.5"},
    {"online_status": "3"}, {"online_status": "１"}, {"online_status": "1,,2"}, {"online_status": ""},
    {"online_status": "+1"}, {"online_status": "0x1"}, {"device_name": "x"}, {"device_name": "x" * 65},
    {"node_id": "n"}, {"app_id": "a" * 257}, {"tag": "t" * 257}, [("limit", "5"), ("limit", "x")],
])
def test_bad_query_values_are_refused(sandbox: Sandbox, params: Any) -> None:
    r = answer(sandbox, "GET", "/devices", template=DEVICES, params=params)
    assert code(r) == (400, "SCB.00000000"), r.text


@pytest.mark.parametrize("params", [
    {"offset": "9" * 5_000}, {"product_id": "9" * 5_000}, {"created_date_end": "9" * 40}, {"limit": "99999"},
    {"online_status": " 0 , 1 ,2"}, {"device_name": "%FF%FE"}, {"device_name": "\x00\x00"}, {"unknown": "x"},
    {"limit": "00010"}, {"app_id": ""},
])
def test_odd_but_valid_query_values_are_answered(sandbox: Sandbox, params: dict) -> None:
    r = answer(sandbox, "GET", "/devices", template=DEVICES, params=params)
    assert r.status_code == 200, r.text
    assert r.json()["size"] <= 999


@pytest.mark.parametrize("project,instance", [
    ("x" * 8_000, CREDS.instance_id), (CREDS.project_id, "é" * 500), ("%00", "%FF"), (CREDS.project_id + "0", "i"),
    ("", CREDS.instance_id),
])
def test_another_project_or_instance_is_the_documented_500(sandbox: Sandbox, project: str, instance: str) -> None:
    r = answer(sandbox, "GET", f"/v2/{project}/link/instances/{instance}/devices", full_path=True)
    assert code(r) == (500, "ROMA.00110002")
    assert len(r.json()["error_msg"]) <= 200


@pytest.mark.parametrize("path", ["/devices", "/devices/force-offline", "/devices/1", "/devices/", "/devices//1",
                                  "/devices/1/x", "/", "/../../openapi.json", "/devices/force-offline/1"])
@pytest.mark.parametrize("method", ["PUT", "PATCH", "OPTIONS", "GET"])
def test_undocumented_methods_and_paths_are_404(sandbox: Sandbox, method: str, path: str) -> None:
    if method == "GET" and path in ("/devices", "/devices/1"):
        return  # documented operations
    r = answer(sandbox, method, path)
    assert code(r) == (404, "APIG.0101"), r.text


@pytest.mark.parametrize("headers,expected", [
    ({}, (401, "APIG.0301")),
    ({"X-Auth-Token": b"\xe9\xff"}, (401, "APIG.0301")),
    ({"X-Auth-Token": ""}, (401, "APIG.0301")),
    ({"X-Auth-Token": "x" * 20_000}, (401, "APIG.0301")),
    ({"Authorization": "garbage"}, (401, "APIG.0301")),
    ({"Authorization": b"SDK-HMAC-SHA256 Access=\xe9, SignedHeaders=host, Signature=00"}, (401, "APIG.0301")),
    ({"Authorization": "SDK-HMAC-SHA256 Access=A, SignedHeaders=host;x-sdk-date, Signature=00",
      "X-Sdk-Date": b"2025\xe9"}, (401, "APIG.0301")),
])
def test_bad_credentials_get_the_documented_401(sandbox: Sandbox, headers: dict, expected: tuple) -> None:
    for method, path, template in [("GET", "/devices", DEVICES), ("POST", "/devices/force-offline", FORCE)]:
        r = answer(sandbox, method, path, template=template, auth=False, headers=headers,
                   content=b'{"device_ids": [1]}' if method == "POST" else None)
        assert code(r) == expected, r.text


def test_a_well_formed_signature_with_an_unknown_non_utf8_key_is_401(sandbox: Sandbox) -> None:
    from datetime import UTC, datetime

    now = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    r = answer(sandbox, "GET", "/devices", template=DEVICES, auth=False, headers={
        "Authorization": b"SDK-HMAC-SHA256 Access=\xe9\xff, SignedHeaders=host;x-sdk-date, Signature=00",
        "X-Sdk-Date": now})
    assert code(r) == (401, "APIG.0301"), r.text
