"""Fault scenario "bad input": whatever a caller sends, the API answers with its documented
contract. Never a 5xx, never a hang, never a hold or a job for a refused request.

Two angles, both on the served app over real HTTP (uvicorn in front of PostgreSQL, the Temporal
dev server, a worker and S3 on moto; the real body limit, auth and rate limit in the path):

* Schemathesis generates requests for every operation of ``/openapi.json`` (its examples,
  coverage and fuzzing phases: boundary values, schema-violating bodies, undeclared methods,
  forged credentials), once with a real API key and once without. It runs as its CLI in a
  subprocess: the server lives on this test's event loop, which schemathesis' synchronous
  in-process runner would block, and the CLI is its supported interface. The checks are its
  own (no 5xx; documented status codes, content types, headers and response schemas;
  schema-violating data refused; auth enforced; 405 with ``Allow``) plus two of ours that it
  loads from this module as its hooks: every error is exactly ``{"error": {code, message,
  param?}}`` with a code documented for its status, and every call without the valid key to
  an authenticated operation is a 401 ``auth_error``. The run is seeded, single-worker and
  keeps no example database, so CI replays the same requests.
* Hostile bodies schemathesis does not send, each on purpose (over a raw socket where httpx
  would not send it or would not read the answer before the upload ends): sizes at and over the
  limit, invalid UTF-8, deep nesting, huge and non-finite numbers, wrong content types, empty
  bodies, duplicate keys, NUL and control characters. ``tests/api/test_errors.py`` covers the
  ordinary error table and is not repeated here.

Each scenario ends, once its jobs have settled, with :func:`assert_nothing_lost`.
"""

import asyncio
import json
import os
import sys
from collections import defaultdict
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import schemathesis
from sqlalchemy import text
from temporalio.testing import WorkflowEnvironment

from api.errors import STATUS_BY_CODE
from api.routes.videos import GENMEDIA_MODELS
from kyma_video.errors import ErrorCode, JobStatus
from kyma_video.jobs import MAX_PARAMS_DEPTH
from providers.catalog import CATALOG
from tests.api.conftest import Stack
from tests.faults.invariants import Findings, assert_nothing_lost

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

pytestmark = pytest.mark.postgres

GENERATIONS = "/v1/videos/generations"
GENMEDIA = "/v1/genmedia/jobs"
VALID: dict[str, Any] = {
    "model": "kling-2.5-pro",
    "prompt": "an hourglass",
    "duration": 5,
    "simulate_seconds": 1,
}
BALANCE = "10"

# -- the fuzzing run ------------------------------------------------------------------------

REPO_ROOT = Path(__file__).resolve().parents[2]
#: Fixed, so CI replays the same requests; change it to explore, then keep what was found.
SEED = 20260421
#: Per operation and phase: ~600 generated requests (~140 of them admitted as jobs), under a
#: minute on a loaded 2-core machine.
MAX_EXAMPLES = 100
#: The Authorization header the authenticated run sends; any other call must be refused.
VALID_AUTHORIZATION_ENV = "KYMA_BAD_INPUT_VALID_AUTHORIZATION"
HOOKS_ENV = "SCHEMATHESIS_HOOKS"
SCHEMATHESIS_TIMEOUT_SECONDS = 240

#: The error codes the product documents for each status (``api.errors.STATUS_BY_CODE``),
#: plus 413 for a body over the limit and 405 for an undeclared method.
DOCUMENTED_CODES: dict[int, set[str]] = defaultdict(set)
for _code, _status in STATUS_BY_CODE.items():
    DOCUMENTED_CODES[_status].add(_code.value)
DOCUMENTED_CODES[413].add(ErrorCode.INVALID_REQUEST.value)
DOCUMENTED_CODES[405].add(ErrorCode.INVALID_REQUEST.value)


def error_has_documented_shape(
    ctx: schemathesis.CheckContext, response: schemathesis.Response, case: "schemathesis.Case[Any]"
) -> bool | None:
    """Every error is ``{"error": {"code", "message", "param"?}}`` and nothing else, with a
    code the product documents for that status."""
    if response.status_code < 400:
        return None
    try:
        body = json.loads(response.content)
    except ValueError:
        raise AssertionError(f"error body is not JSON: {response.content[:200]!r}") from None
    assert isinstance(body, dict) and set(body) == {"error"}, f"not the error shape: {body!r}"
    error = body["error"]
    assert isinstance(error, dict), f"not the error shape: {body!r}"
    assert {"code", "message"} <= set(error) <= {"code", "message", "param"}, error
    documented = DOCUMENTED_CODES.get(response.status_code, set())
    assert error["code"] in documented, (
        f"{response.status_code} with code {error['code']!r}; documented: {sorted(documented)}"
    )
    assert isinstance(error["message"], str) and error["message"], error
    assert isinstance(error.get("param", ""), str), error
    return True


def calls_without_the_key_are_refused(
    ctx: schemathesis.CheckContext, response: schemathesis.Response, case: "schemathesis.Case[Any]"
) -> bool | None:
    """An authenticated operation called without the valid key is a 401 ``auth_error``.
    (An undeclared method on its path is a 405 first: routing precedes authentication.)"""
    if not case.operation.definition.raw.get("security"):
        return None
    if case.method.lower() != case.operation.method.lower():
        return None
    sent = response.request.headers.get("Authorization")
    if sent is not None and sent == os.environ.get(VALID_AUTHORIZATION_ENV):
        return None
    assert response.status_code == 401, (
        f"{response.status_code} for a call without the valid key (Authorization: {sent!r})"
    )
    assert response.json()["error"]["code"] == ErrorCode.AUTH_ERROR.value
    return True


def before_load_schema(ctx: schemathesis.HookContext, raw_schema: dict[str, Any]) -> None:
    """Tell the fuzzer the catalog's model ids (``GET /v1/models``; the document says only
    "a string"), so that generated bodies get past the model check to admission, the ledger
    and Temporal instead of stopping at ``invalid_model``. Negative cases still send others."""
    for path, models in ((GENERATIONS, sorted(CATALOG)), (GENMEDIA, sorted(GENMEDIA_MODELS))):
        content = raw_schema["paths"][path]["post"]["requestBody"]["content"]
        content["application/json"]["schema"]["properties"]["model"]["enum"] = models


if os.environ.get(HOOKS_ENV) == __name__:
    # Loaded by the schemathesis CLI as its hooks module: register there only, so importing
    # this module anywhere else (pytest) changes no global registry.
    schemathesis.check(error_has_documented_shape)
    schemathesis.check(calls_without_the_key_are_refused)
    schemathesis.hook(before_load_schema)


async def run_schemathesis(
    stack: Stack, report_path: Path, *, authorization: str | None, max_examples: int
) -> dict[str, Any]:
    """Run the schemathesis CLI against the served app; return its JSON report."""
    args = [
        *(sys.executable, "-m", "schemathesis.cli", "run", f"{stack.url}/openapi.json"),
        # All checks but positive_data_acceptance: the schema documents the body's shape, while
        # the catalog's rules (a model's input modes, the genmedia route's models) and the
        # balance are checked by the server and refused with their documented 400/402.
        *("--checks", "all", "--exclude-checks", "positive_data_acceptance"),
        *("--phases", "examples,coverage,fuzzing"),
        *("--max-examples", str(max_examples), "--seed", str(SEED), "--workers", "1"),
        *("--generation-database", "none"),
        # Generation speed depends on the machine's load, not on the API.
        *("--suppress-health-check", "too_slow"),
        # A hang becomes a reported error instead of a stuck test.
        *("--request-timeout", "30"),
        *("--no-color", "--report", "json", "--report-json-path", str(report_path)),
    ]
    # Run from the report's directory, where schemathesis and hypothesis leave their caches;
    # the hooks module (this one) is imported from the repository.
    env = {**os.environ, HOOKS_ENV: __name__, "PYTHONPATH": str(REPO_ROOT)}
    env.pop(VALID_AUTHORIZATION_ENV, None)
    if authorization is not None:
        args += ["--header", f"Authorization: {authorization}"]
        env[VALID_AUTHORIZATION_ENV] = authorization
    process = await asyncio.create_subprocess_exec(
        *args,
        cwd=report_path.parent,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        async with asyncio.timeout(SCHEMATHESIS_TIMEOUT_SECONDS):
            output, _ = await process.communicate()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    printed = output.decode(errors="replace")
    assert process.returncode == 0, f"schemathesis found problems:\n{printed[-20000:]}"
    report: dict[str, Any] = json.loads(await asyncio.to_thread(report_path.read_text))
    return report


async def operations_in(stack: Stack) -> int:
    spec = (await stack.http.get("/openapi.json")).json()
    return sum(len(operations) for operations in spec["paths"].values())


def assert_every_operation_was_exercised(report: dict[str, Any], operations: int) -> None:
    assert report["operations"]["tested"] == report["operations"]["total"] == operations
    assert report["errors"] == [] and report["failures"] == []
    for phase in ("examples", "coverage", "fuzzing"):
        assert report["phases"][phase]["status"] == "success", report["phases"]


async def test_fuzzed_calls_with_a_valid_key_get_only_documented_answers(
    stack: Stack, dev_env: WorkflowEnvironment, s3_client: "S3Client", tmp_path: Path
):
    account, auth = await stack.account(balance="1000")
    report = await run_schemathesis(
        stack,
        tmp_path / "authenticated.json",
        authorization=auth["Authorization"],
        max_examples=MAX_EXAMPLES,
    )
    assert_every_operation_was_exercised(report, await operations_in(stack))
    findings = await settle_and_assert_nothing_lost(stack, dev_env, s3_client, [account])
    # Fuzzed requests got through admission and the whole pipeline, not only the refusals.
    assert findings.statuses()[JobStatus.SUCCEEDED] > 0, findings.statuses()


async def test_fuzzed_calls_without_a_valid_key_are_all_refused(
    stack: Stack, dev_env: WorkflowEnvironment, s3_client: "S3Client", tmp_path: Path
):
    account, _ = await stack.account()
    report = await run_schemathesis(
        stack, tmp_path / "anonymous.json", authorization=None, max_examples=MAX_EXAMPLES // 2
    )
    assert_every_operation_was_exercised(report, await operations_in(stack))
    async with stack.ledger.engine.connect() as connection:
        jobs = (await connection.execute(text("SELECT count(*) FROM jobs"))).scalar_one()
    assert jobs == 0, "an unauthenticated call created a job"
    assert await stack.ledger.balance(account) == Decimal(BALANCE)
    await settle_and_assert_nothing_lost(stack, dev_env, s3_client, [account])


# -- hostile bodies -------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes


def refused(answer: Answer | httpx.Response, status: int, code: str, case: str) -> dict[str, Any]:
    """Assert ``answer`` is ``status`` with exactly the documented error shape and ``code``."""
    if isinstance(answer, httpx.Response):
        answer = Answer(answer.status_code, dict(answer.headers), answer.content)
    assert answer.status == status, f"{case}: {answer.status} {answer.body[:300]!r}"
    assert answer.headers.get("content-type") == "application/json", case
    body = json.loads(answer.body)
    assert set(body) == {"error"}, f"{case}: {body}"
    error = body["error"]
    assert {"code", "message"} <= set(error) <= {"code", "message", "param"}, f"{case}: {error}"
    assert error["code"] == code, f"{case}: {error}"
    assert isinstance(error["message"], str) and error["message"], case
    return dict(error)


async def post(stack: Stack, auth: dict[str, str], body: bytes, **headers: str) -> httpx.Response:
    sent = {**auth, "Content-Type": "application/json", **headers}
    return await stack.http.post(GENERATIONS, content=body, headers=sent)


def with_fields(**fields: str) -> bytes:
    """``VALID`` with some members replaced by raw JSON text (which json.dumps cannot write)."""
    members = {k: json.dumps(v) for k, v in VALID.items()} | fields
    return ("{" + ",".join(f'"{k}":{v}' for k, v in members.items()) + "}").encode()


async def read_answer(reader: asyncio.StreamReader) -> Answer:
    status_line = await reader.readline()
    assert status_line.startswith(b"HTTP/1.1 "), status_line
    headers: dict[str, str] = {}
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return Answer(int(status_line.split()[1]), headers, body)


def head(auth: dict[str, str], *headers: str) -> bytes:
    """A POST's request line and headers, for a raw socket."""
    lines = [
        f"POST {GENERATIONS} HTTP/1.1",
        "Host: test",
        f"Authorization: {auth['Authorization']}",
        *headers,
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def exchange(stack: Stack, request: bytes) -> Answer:
    reader, writer = await asyncio.open_connection("127.0.0.1", stack.settings.api_port)
    try:
        async with asyncio.timeout(20):
            writer.write(request)
            await writer.drain()
            return await read_answer(reader)
    finally:
        writer.close()


def accepted(response: httpx.Response, case: str) -> str:
    assert response.status_code == 202, f"{case}: {response.status_code} {response.text[:300]}"
    job_id: str = response.json()["job_id"]
    return job_id


async def assert_untouched(stack: Stack, account: str) -> None:
    """The refused requests left nothing behind: no job, no hold, the balance as funded."""
    assert await stack.ledger.jobs_for_account(account) == []
    assert await stack.ledger.balance(account) == Decimal(BALANCE)


async def assert_only_these_jobs(stack: Stack, account: str, job_ids: Iterable[str]) -> None:
    """The account has exactly the jobs of the accepted requests."""
    assert {job.id for job in await stack.ledger.jobs_for_account(account)} == set(job_ids)


async def settle_and_assert_nothing_lost(
    stack: Stack,
    dev_env: WorkflowEnvironment,
    s3_client: "S3Client",
    accounts: list[str],
) -> Findings:
    """Wait for every job of ``accounts`` to end, then check the invariants with every
    observation at hand (the ledger, Temporal, the bucket's keys)."""
    async with asyncio.timeout(120):
        while True:
            jobs = [job for a in accounts for job in await stack.ledger.jobs_for_account(a)]
            if all(job.status.is_terminal for job in jobs):
                break
            await asyncio.sleep(0.25)
    bucket = stack.settings.s3_bucket
    assert bucket is not None

    def keys() -> list[str]:
        """The store's keys: object names without the store's prefix."""
        pages = s3_client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
        names = [item["Key"] for page in pages for item in page.get("Contents", [])]
        return [name.removeprefix(stack.settings.s3_prefix) for name in names]

    return await assert_nothing_lost(
        stack.ledger,
        accounts,
        temporal=dev_env.client,
        blob_keys=await asyncio.to_thread(keys),
    )


async def test_bodies_at_the_size_limit_are_read_and_one_byte_more_is_413(
    stack: Stack, dev_env: WorkflowEnvironment, s3_client: "S3Client"
):
    account, auth = await stack.account(balance=BALANCE)
    limit = stack.settings.max_request_bytes
    payload = json.dumps(VALID).encode()

    def padded(size: int) -> bytes:
        return payload + b" " * (size - len(payload))  # trailing whitespace is valid JSON

    async def chunked(body: bytes) -> AsyncIterator[bytes]:
        for start in range(0, len(body), 1024 * 1024):
            yield body[start : start + 1024 * 1024]

    async def send(body: bytes, framing: str) -> httpx.Response:
        content = body if framing == "Content-Length" else chunked(body)
        return await stack.http.post(GENERATIONS, content=content, headers=auth)

    framings = ("Content-Length", "chunked")
    for framing in framings:
        refused(await send(padded(limit + 1), framing), 413, "invalid_request", framing)
    await assert_untouched(stack, account)
    jobs = [accepted(await send(padded(limit), framing), framing) for framing in framings]
    await assert_only_these_jobs(stack, account, jobs)
    await settle_and_assert_nothing_lost(stack, dev_env, s3_client, [account])


async def test_an_endless_chunked_upload_is_answered_413_while_it_is_still_sending(
    stack: Stack, dev_env: WorkflowEnvironment, s3_client: "S3Client"
):
    """The server refuses at the limit, not at the end of the upload: the 413 arrives while
    the client is still sending. (It then discards whatever else arrives on the connection, so
    a client that keeps sending can still read the answer.)"""
    account, auth = await stack.account(balance=BALANCE)
    limit = stack.settings.max_request_bytes
    chunk = b" " * (256 * 1024)
    framed = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
    reader, writer = await asyncio.open_connection("127.0.0.1", stack.settings.api_port)
    writer.write(head(auth, "Content-Type: application/json", "Transfer-Encoding: chunked"))
    sent = 0

    async def upload() -> None:
        nonlocal sent
        while sent < 4 * limit:
            writer.write(framed)
            await writer.drain()
            sent += len(chunk)
            await asyncio.sleep(0)  # drain() need not yield; let the answer be read

    uploading = asyncio.create_task(upload())
    try:
        async with asyncio.timeout(60):
            answer = await read_answer(reader)
        assert not uploading.done(), uploading
        answered_at = sent
    finally:
        uploading.cancel()
        writer.close()
    refused(answer, 413, "invalid_request", "endless chunked upload")
    assert limit < answered_at < 2 * limit
    await assert_untouched(stack, account)
    await settle_and_assert_nothing_lost(stack, dev_env, s3_client, [account])


async def test_content_lengths_past_any_real_size_are_refused_without_a_5xx(
    stack: Stack, dev_env: WorkflowEnvironment, s3_client: "S3Client"
):
    account, auth = await stack.account(balance=BALANCE)
    # The longest Content-Length the HTTP server parses (20 digits) reaches the body limit.
    request = head(auth, "Content-Type: application/json", f"Content-Length: {'9' * 20}")
    refused(await exchange(stack, request + b"{}"), 413, "invalid_request", "20 digits")
    # Longer ones are malformed framing: the server (h11, under uvicorn) answers a bare 400 and
    # closes before any application code runs, so there is no error body to shape.
    for digits in (21, 5000):
        request = head(auth, "Content-Type: application/json", f"Content-Length: 1{'0' * digits}")
        answer = await exchange(stack, request + b"{}")
        assert answer.status == 400, f"{digits} digits: {answer}"
        assert answer.headers.get("connection") == "close", answer
    await assert_untouched(stack, account)
    await settle_and_assert_nothing_lost(stack, dev_env, s3_client, [account])


async def test_invalid_utf8_is_invalid_request(
    stack: Stack, dev_env: WorkflowEnvironment, s3_client: "S3Client"
):
    account, auth = await stack.account(balance=BALANCE)
    for case, invalid in {
        "a byte that is never UTF-8": b"\xff\xfe",
        "an overlong encoding of '/'": b"\xc0\xaf",
        "an encoded surrogate (CESU-8)": b"\xed\xa0\x80",
        "a sequence cut short": b"\xe2\x82",
        "Latin-1 text": "café".encode("latin-1"),
    }.items():
        body = with_fields(prompt='"TEXT"').replace(b"TEXT", invalid)
        refused(await post(stack, auth, body), 400, "invalid_request", case)
    await assert_untouched(stack, account)
    await settle_and_assert_nothing_lost(stack, dev_env, s3_client, [account])


async def test_deeply_nested_json_is_invalid_request(
    stack: Stack, dev_env: WorkflowEnvironment, s3_client: "S3Client"
):
    account, auth = await stack.account(balance=BALANCE)
    deep = 100_000
    for case, body in {
        f"{deep} levels of [": b"[" * deep,
        f"{deep} balanced levels of []": b"[" * deep + b"]" * deep,
        f'{deep} levels of {{"a":': b'{"a":' * deep,
        "a provider param 100 000 levels deep": with_fields(cfg="[" * deep + "]" * deep),
    }.items():
        error = refused(await post(stack, auth, body), 400, "invalid_request", case)
        assert "deeply" in error["message"], error
    # Deep enough to parse, too deep to be a workflow's input: pydantic's JSON decoder refuses
    # ~200 levels, so such a request once started a workflow that could never run.
    for depth in (MAX_PARAMS_DEPTH + 1, 210):
        body = with_fields(cfg="[" * depth + "]" * depth)
        error = refused(await post(stack, auth, body), 400, "invalid_request", f"depth {depth}")
        assert error.get("param") == "params", error
    await assert_untouched(stack, account)
    fits = await post(stack, auth, with_fields(cfg="[" * MAX_PARAMS_DEPTH + "]" * MAX_PARAMS_DEPTH))
    jobs = [accepted(fits, f"params {MAX_PARAMS_DEPTH} levels deep")]
    await assert_only_these_jobs(stack, account, jobs)
    await settle_and_assert_nothing_lost(stack, dev_env, s3_client, [account])


async def test_huge_and_non_finite_numbers_are_refused(
    stack: Stack, dev_env: WorkflowEnvironment, s3_client: "S3Client"
):
    account, auth = await stack.account(balance=BALANCE)
    ten_thousand_digits = "9" * 10_000
    for case, fields, code, param in (
        ("duration 1e999999 (infinite)", {"duration": "1e999999"}, "invalid_duration", "duration"),
        ("duration -1e999999", {"duration": "-1e999999"}, "invalid_duration", "duration"),
        ("duration 1e-999999 (zero)", {"duration": "1e-999999"}, "invalid_duration", "duration"),
        ("duration -0", {"duration": "-0"}, "invalid_duration", "duration"),
        ("duration -0.0", {"duration": "-0.0"}, "invalid_duration", "duration"),
        ("duration NaN", {"duration": "NaN"}, "invalid_duration", "duration"),
        ("duration Infinity", {"duration": "Infinity"}, "invalid_duration", "duration"),
        ("duration -Infinity", {"duration": "-Infinity"}, "invalid_duration", "duration"),
        ("duration 2**64", {"duration": str(2**64)}, "invalid_duration", "duration"),
        # Python refuses to convert integers over 4300 digits; that is a refusal, not a 500.
        ("duration of 10 000 digits", {"duration": ten_thousand_digits}, "invalid_request", None),
        ("a param of 10 000 digits", {"seed": ten_thousand_digits}, "invalid_request", None),
        ("a param wider than 64 bits", {"seed": str(2**64)}, "invalid_request", "params"),
        # Not JSON, and serialized as null in workflow history they changed the request's
        # fingerprint, which made the first request a false idempotency_conflict.
        ("a param NaN", {"seed": "NaN"}, "invalid_request", "params"),
        ("a param Infinity", {"seed": "Infinity"}, "invalid_request", "params"),
        ("a param 1e999 (infinite)", {"seed": "1e999"}, "invalid_request", "params"),
    ):
        error = refused(await post(stack, auth, with_fields(**fields)), 400, code, case)
        assert error.get("param") == param, f"{case}: {error}"
    await assert_untouched(stack, account)
    jobs = [
        accepted(await post(stack, auth, with_fields(duration="5e0")), "duration 5e0"),
        accepted(await post(stack, auth, with_fields(seed=str(2**64 - 1))), "seed 2**64-1"),
    ]
    await assert_only_these_jobs(stack, account, jobs)
    await settle_and_assert_nothing_lost(stack, dev_env, s3_client, [account])


async def test_a_body_declared_as_anything_but_json_is_invalid_request(
    stack: Stack, dev_env: WorkflowEnvironment, s3_client: "S3Client"
):
    account, auth = await stack.account(balance=BALANCE)
    body = json.dumps(VALID).encode()
    for content_type in (
        "text/plain",
        "application/x-www-form-urlencoded",  # what curl -d sends unless told otherwise
        "multipart/form-data; boundary=x",
        "application/xml",
        "application/jsonp",
        "",
    ):
        response = await post(stack, auth, body, **{"Content-Type": content_type})
        refused(response, 400, "invalid_request", f"Content-Type {content_type!r}")
    await assert_untouched(stack, account)
    jobs = [
        accepted(await post(stack, auth, body, **{"Content-Type": ct}), ct)
        for ct in ("application/json; charset=utf-8", "Application/JSON", "application/vnd+json")
    ]
    await assert_only_these_jobs(stack, account, jobs)
    await settle_and_assert_nothing_lost(stack, dev_env, s3_client, [account])


async def test_an_empty_or_non_object_body_is_invalid_request(
    stack: Stack, dev_env: WorkflowEnvironment, s3_client: "S3Client"
):
    account, auth = await stack.account(balance=BALANCE)
    for case, body in {
        "empty": b"",
        "whitespace": b" \r\n\t ",
        "null": b"null",
        "a string": b'"an hourglass"',
        "a number": b"42",
        "true": b"true",
    }.items():
        refused(await post(stack, auth, body), 400, "invalid_request", case)
    # No body and no Content-Type at all: read as an empty JSON body.
    answer = await exchange(stack, head(auth, "Content-Length: 0"))
    refused(answer, 400, "invalid_request", "no body, no Content-Type")
    await assert_untouched(stack, account)
    await settle_and_assert_nothing_lost(stack, dev_env, s3_client, [account])


async def test_duplicate_keys_are_invalid_request(
    stack: Stack, dev_env: WorkflowEnvironment, s3_client: "S3Client"
):
    """Parsers disagree on which of two values counts (first or last): refuse both."""
    account, auth = await stack.account(balance=BALANCE)
    template = json.dumps(VALID)[:-1]
    for case, body, key in (
        ("duration, invalid then valid", template + ', "duration": 99, "duration": 5}', "duration"),
        ("model", template + ', "model": "veo-3"}', "model"),
        ("idempotency_key", template + ', "idempotency_key": "a", "idempotency_key": "b"}', "idem"),
        ("inside a provider param", template + ', "cfg": {"a": 1, "a": 2}}', "a"),
    ):
        error = refused(await post(stack, auth, body.encode()), 400, "invalid_request", case)
        assert f"repeats the key '{key}" in error["message"], error
    await assert_untouched(stack, account)
    await settle_and_assert_nothing_lost(stack, dev_env, s3_client, [account])


async def test_nul_and_control_characters_are_refused_before_they_reach_the_ledger(
    stack: Stack, dev_env: WorkflowEnvironment, s3_client: "S3Client"
):
    """PostgreSQL cannot store NUL (text or JSONB) and UTF-8 cannot carry a lone surrogate: each
    of these was a 500 ``db_error`` (with the SQL statement in its message) or an internal
    failure before the request validation refused them."""
    account, auth = await stack.account(balance=BALANCE)
    prompt, key, params = "invalid_prompt", "invalid_request", "invalid_request"
    for case, fields, code, param in (
        ("NUL in the prompt", {"prompt": r'"a\u0000b"'}, prompt, "prompt"),
        ("an escape sequence", {"prompt": r'"\u001b[31mred"'}, prompt, "prompt"),
        ("DEL in the prompt", {"prompt": r'"a\u007fb"'}, prompt, "prompt"),
        ("a C1 control (NEL)", {"prompt": r'"a\u0085b"'}, prompt, "prompt"),
        ("a lone surrogate", {"prompt": r'"a\ud800b"'}, prompt, "prompt"),
        ("a raw control byte (not JSON)", {"prompt": '"a\x01b"'}, "invalid_request", None),
        ("NUL in the key", {"idempotency_key": r'"k\u0000"'}, key, "idempotency_key"),
        ("a line break in the key", {"idempotency_key": r'"k\n"'}, key, "idempotency_key"),
        ("a surrogate in the key", {"idempotency_key": r'"\udfff"'}, key, "idempotency_key"),
        ("NUL in image_url", {"image_url": r'"https://x.test/\u0000"'}, key, "image_url"),
        ("NUL in a param", {"aspect_ratio": r'"16:9\u0000"'}, params, "params"),
        ("NUL in a param's name", {r"a\u0000": "1"}, params, "params"),
        ("a surrogate in a param", {"negative_prompt": r'"\ud800"'}, params, "params"),
    ):
        error = refused(await post(stack, auth, with_fields(**fields)), 400, code, case)
        assert error.get("param") == param, f"{case}: {error}"
    # A job id never holds NUL: such a lookup is a 404, not a query PostgreSQL fails.
    refused(await stack.http.get("/v1/jobs/vid_%00", headers=auth), 404, "not_found", "NUL id")
    await assert_untouched(stack, account)
    # Tabs and line breaks are ordinary prompt text.
    multiline = with_fields(prompt=json.dumps("a slow pan\n\tover a desert\r\n"))
    jobs = [accepted(await post(stack, auth, multiline), "a multi-line prompt")]
    await assert_only_these_jobs(stack, account, jobs)
    await settle_and_assert_nothing_lost(stack, dev_env, s3_client, [account])
