"""The documented error table, row by row, through real HTTP. Every refusal is
``{"error": {code, message, param?}}`` and leaves no job and no hold behind."""

import asyncio
import json
from decimal import Decimal

import httpx
import pytest

from tests.api.conftest import Stack, serving
from tests.support import free_port

pytestmark = pytest.mark.postgres

GENERATIONS = "/v1/videos/generations"
GENMEDIA = "/v1/genmedia/jobs"
VALID = {"model": "kling-2.5-pro", "prompt": "an hourglass", "duration": 5, "simulate_seconds": 1}
KEY = "idempotency_key"
AUTHENTICATED_ROUTES = (("POST", GENERATIONS), ("GET", "/v1/jobs/vid_x"), ("GET", "/v1/balance"))


def without(field: str) -> dict[str, object]:
    return {k: v for k, v in VALID.items() if k != field}


def error_of(response: httpx.Response, status: int, code: str) -> dict[str, str]:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code
    assert error["message"]
    return error


async def nothing_held(stack: Stack, account: str, balance: str = "10") -> None:
    assert await stack.ledger.balance(account) == Decimal(balance)
    assert await stack.ledger.jobs_in_flight(account) == 0
    stored, summed = await stack.ledger.audit(account)
    assert stored == summed


@pytest.mark.parametrize(
    ("path", "body", "status", "code", "param"),
    [
        (GENERATIONS, {**VALID, "model": "sora-9"}, 400, "invalid_model", "model"),
        (
            GENERATIONS,
            without("model"),
            400,
            "invalid_model",
            "model",
        ),
        (GENMEDIA, VALID, 400, "invalid_model", "model"),
        (GENERATIONS, {**VALID, "prompt": ""}, 400, "invalid_prompt", "prompt"),
        (
            GENERATIONS,
            without("prompt"),
            400,
            "invalid_prompt",
            "prompt",
        ),
        (GENERATIONS, {**VALID, "prompt": "x" * 4001}, 400, "invalid_prompt", "prompt"),
        (GENERATIONS, {**VALID, "duration": 0}, 400, "invalid_duration", "duration"),
        (GENERATIONS, {**VALID, "duration": 11}, 400, "invalid_duration", "duration"),
        (GENERATIONS, {**VALID, "duration": 5.5}, 400, "invalid_duration", "duration"),
        (GENERATIONS, {**VALID, "duration": "5"}, 400, "invalid_duration", "duration"),
        (
            GENERATIONS,
            {**VALID, "image_url": "http://x.test/a.png"},
            400,
            "invalid_request",
            "image_url",
        ),
        (
            GENERATIONS,
            {**VALID, "idempotency_key": "k" * 129},
            400,
            "invalid_request",
            "idempotency_key",
        ),
        (GENERATIONS, [VALID], 400, "invalid_request", None),
    ],
)
async def test_invalid_requests_are_refused_with_their_documented_code(
    stack: Stack, path: str, body: object, status: int, code: str, param: str | None
):
    account, auth = await stack.account()
    error = error_of(await stack.http.post(path, json=body, headers=auth), status, code)
    assert error.get("param") == param
    await nothing_held(stack, account)


async def test_a_body_that_is_not_json_is_invalid_request(stack: Stack):
    account, auth = await stack.account()
    response = await stack.http.post(
        GENERATIONS, content=b"{not json", headers={**auth, "Content-Type": "application/json"}
    )
    error_of(response, 400, "invalid_request")
    await nothing_held(stack, account)


async def test_missing_malformed_unknown_and_revoked_keys_are_auth_errors(stack: Stack):
    account, auth = await stack.account()
    key_id = (await stack.ledger.list_api_keys(account))[0].id
    await stack.ledger.revoke_api_key(key_id)
    for headers in (
        {},
        {"Authorization": "Token abc"},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer kyma_not-a-real-key"},
        auth,
    ):
        for method, path in (
            ("POST", GENERATIONS),
            ("GET", "/v1/jobs/vid_x"),
            ("GET", "/v1/balance"),
        ):
            response = await stack.http.request(method, path, json=VALID, headers=headers)
            error_of(response, 401, "auth_error")
    await nothing_held(stack, account)


async def test_a_hold_that_does_not_fit_is_402_and_creates_no_job(stack: Stack):
    account, auth = await stack.account(balance="0.40")
    response = await stack.http.post(
        GENERATIONS, json={**VALID, "idempotency_key": "k"}, headers=auth
    )
    error_of(response, 402, "insufficient_balance")
    await nothing_held(stack, account, "0.40")


async def test_the_same_key_with_another_body_is_409(stack: Stack):
    _, auth = await stack.account()
    first = await stack.http.post(GENERATIONS, json={**VALID, KEY: "k"}, headers=auth)
    assert first.status_code == 202
    changed = {**VALID, KEY: "k", "prompt": "something else"}
    response = await stack.http.post(GENERATIONS, json=changed, headers=auth)
    error_of(response, 409, "idempotency_conflict")
    entries = await stack.ledger.entries_for_job(first.json()["job_id"])
    assert [e.kind.value for e in entries if e.kind.value == "hold"] == ["hold"]


async def test_a_declared_body_over_25_mb_is_413_before_it_is_read(stack: Stack):
    _, auth = await stack.account()
    reader, writer = await asyncio.open_connection("127.0.0.1", stack.settings.api_port)
    head = (
        f"POST {GENERATIONS} HTTP/1.1\r\nHost: test\r\nAuthorization: {auth['Authorization']}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {30 * 1024 * 1024}\r\n\r\n"
    )
    writer.write(head.encode())
    await writer.drain()
    # Not one byte of the body is sent: the answer comes from the headers alone.
    async with asyncio.timeout(10):
        status_line = await reader.readline()
        raw = await reader.read(65536)
    writer.close()
    assert b" 413 " in status_line
    body = raw.split(b"\r\n\r\n", 1)[1]
    assert json.loads(body)["error"]["code"] == "invalid_request"


async def test_a_streamed_body_over_25_mb_is_413(stack: Stack):
    _, auth = await stack.account()

    async def chunks():
        for _ in range(27):
            yield b" " * (1024 * 1024)

    response = await stack.http.post(GENERATIONS, content=chunks(), headers=auth)
    error_of(response, 413, "invalid_request")


async def test_the_tier_request_rate_is_enforced_with_retry_after(stack: Stack):
    _, auth = await stack.account(tier="tight")
    statuses = []
    for n in range(3):
        body = {**VALID, "idempotency_key": f"rate-{n}", "simulate_seconds": 0}
        response = await stack.http.post(GENERATIONS, json=body, headers=auth)
        statuses.append(response.status_code)
        if response.status_code == 202:
            await poll_until_done(stack, auth, response.json()["job_id"])
    assert statuses[:2] == [202, 202]
    error_of(response, 429, "rate_limited")
    assert 1 <= int(response.headers["Retry-After"]) <= 60


async def test_jobs_in_flight_are_limited_per_tier(stack: Stack):
    account, auth = await stack.account(tier="tight")
    first = await stack.http.post(GENERATIONS, json={**VALID, "simulate_seconds": 5}, headers=auth)
    assert first.status_code == 202
    second = await stack.http.post(GENERATIONS, json=VALID, headers=auth)
    error_of(second, 429, "rate_limited")
    assert int(second.headers["Retry-After"]) > 0
    assert await stack.ledger.jobs_in_flight(account) == 1


async def test_an_unreachable_job_runner_is_a_500_provider_error_with_nothing_held(stack: Stack):
    account, auth = await stack.account()
    broken = stack.settings.model_copy(
        update={"temporal_address": "127.0.0.1:1", "api_port": free_port()}
    )
    async with serving(broken) as url, httpx.AsyncClient(base_url=url) as http:
        response = await http.post(GENERATIONS, json=VALID, headers=auth)
        # Reads do not need Temporal and keep working.
        balance = await http.get("/v1/balance", headers=auth)
    error_of(response, 500, "provider_error")
    assert balance.status_code == 200
    await nothing_held(stack, account)


async def test_an_unreachable_ledger_is_a_500_db_error(stack: Stack):
    _, auth = await stack.account()
    gone = stack.settings.database_url.rsplit("/", 1)[0] + "/kyma_no_such_database"
    broken = stack.settings.model_copy(update={"database_url": gone, "api_port": free_port()})
    async with serving(broken) as url, httpx.AsyncClient(base_url=url) as http:
        for method, path in (("POST", GENERATIONS), ("GET", "/v1/balance")):
            response = await http.request(method, path, json=VALID, headers=auth)
            error_of(response, 500, "db_error")


async def poll_until_done(stack: Stack, auth: dict[str, str], job_id: str) -> dict[str, object]:
    async with asyncio.timeout(60):
        while True:
            job = (await stack.http.get(f"/v1/jobs/{job_id}", headers=auth)).json()
            if job["status"] in {"succeeded", "failed", "refunded", "expired"}:
                return job
            await asyncio.sleep(0.2)
