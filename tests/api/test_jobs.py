"""Jobs through HTTP: the whole life of one, idempotent replays, ownership, the catalog."""

import asyncio
import hashlib
import io
from decimal import Decimal

import av
import httpx
import pytest

from providers.catalog import CATALOG
from tests.api.conftest import Stack, serving
from tests.api.test_errors import GENERATIONS, GENMEDIA, VALID, poll_until_done
from tests.support import free_port

pytestmark = pytest.mark.postgres


async def test_a_job_is_accepted_runs_to_success_and_charges_the_documented_amount(stack: Stack):
    account, auth = await stack.account(balance="10")
    body = {"model": "seedance-2-fast", "prompt": "a phone notification", "duration": 4}
    response = await stack.http.post(
        GENERATIONS, json={**body, "simulate_seconds": 1}, headers=auth
    )
    assert response.status_code == 202
    accepted = response.json()
    rate = CATALOG["seedance-2-fast"].per_second_usd
    assert accepted["status"] == "pending"
    assert accepted["model"] == "seedance-2-fast"
    assert Decimal(accepted["estimated_cost"]) == rate * 4
    assert accepted["charged_amount"] is None
    assert accepted["created_at"]
    assert await stack.ledger.balance(account) == Decimal(10) - rate * 4

    job = await poll_until_done(stack, auth, accepted["job_id"])
    assert job["status"] == "succeeded"
    output = job["output"]
    assert output["content_type"] == "video/mp4"
    async with httpx.AsyncClient() as anonymous:
        video = (await anonymous.get(output["url"])).raise_for_status().content
    assert len(video) == output["size_bytes"]
    assert hashlib.sha256(video).hexdigest() == output["sha256"]
    with av.open(io.BytesIO(video)) as container:
        assert container.streams.video[0].codec_context.name == "h264"
        seconds = Decimal(container.duration) / 1_000_000
    assert abs(seconds - 4) < Decimal("0.1")

    delivered = Decimal(output["duration_seconds"])
    charged = Decimal(job["charged_amount"])
    assert charged == rate * min(Decimal(4), delivered)
    assert await stack.ledger.balance(account) == Decimal(10) - charged
    balance = (await stack.http.get("/v1/balance", headers=auth)).json()
    assert Decimal(balance["balance"]) == Decimal(10) - charged


async def test_a_replay_is_200_with_the_same_job_and_no_second_charge(stack: Stack):
    account, auth = await stack.account()
    body = {**VALID, "idempotency_key": "campaign-7"}
    first = await stack.http.post(GENERATIONS, json=body, headers=auth)
    held = await stack.ledger.balance(account)
    again = await stack.http.post(GENERATIONS, json=body, headers=auth)
    assert (first.status_code, again.status_code) == (202, 200)
    assert again.json()["job_id"] == first.json()["job_id"]
    assert await stack.ledger.balance(account) == held

    finished = await poll_until_done(stack, auth, first.json()["job_id"])
    settled = await stack.ledger.balance(account)
    after = await stack.http.post(GENERATIONS, json=body, headers=auth)
    assert after.status_code == 200
    assert after.json() == finished
    assert await stack.ledger.balance(account) == settled


async def test_a_replay_of_a_recorded_job_is_answered_from_the_ledger_without_temporal(
    stack: Stack,
):
    """Retries come in bursts; a workflow takes only a few updates at once, so a job that is
    already recorded is answered from its row (here with Temporal unreachable to prove it)."""
    account, auth = await stack.account()
    body = {**VALID, "idempotency_key": "retry-storm"}
    first = await stack.http.post(GENERATIONS, json=body, headers=auth)
    assert first.status_code == 202
    held = await stack.ledger.balance(account)
    no_temporal = stack.settings.model_copy(
        update={"temporal_address": "127.0.0.1:1", "api_port": free_port()}
    )
    async with serving(no_temporal) as url, httpx.AsyncClient(base_url=url) as http:
        again = await http.post(GENERATIONS, json=body, headers=auth)
        changed = await http.post(GENERATIONS, json={**body, "duration": 10}, headers=auth)
        fresh = await http.post(GENERATIONS, json={**body, "idempotency_key": "new"}, headers=auth)
    assert again.status_code == 200
    assert again.json()["job_id"] == first.json()["job_id"]
    assert changed.status_code == 409
    assert changed.json()["error"]["code"] == "idempotency_conflict"
    # A request whose job is not recorded still needs Temporal, which is unreachable here.
    assert fresh.status_code == 500
    assert await stack.ledger.balance(account) == held
    await poll_until_done(stack, auth, first.json()["job_id"])


async def test_fifty_concurrent_posts_with_one_key_make_one_job_and_one_hold(stack: Stack):
    account, auth = await stack.account()
    body = {**VALID, "idempotency_key": "burst"}
    responses = await asyncio.gather(
        *(stack.http.post(GENERATIONS, json=body, headers=auth) for _ in range(50))
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] * 49 + [202], [r.text for r in responses if r.status_code >= 300]
    assert len({r.json()["job_id"] for r in responses}) == 1
    job_id = responses[0].json()["job_id"]
    holds = [e for e in await stack.ledger.entries_for_job(job_id) if e.kind.value == "hold"]
    assert len(holds) == 1
    await poll_until_done(stack, auth, job_id)
    stored, summed = await stack.ledger.audit(account)
    assert stored == summed


async def test_veo_models_are_served_on_the_genmedia_route_with_the_same_shape(stack: Stack):
    _, auth = await stack.account()
    body = {"model": "veo-3-fast", "prompt": "a lighthouse", "duration": 4, "simulate_seconds": 0}
    response = await stack.http.post(GENMEDIA, json=body, headers=auth)
    assert response.status_code == 202
    assert set(response.json()) >= {"job_id", "status", "estimated_cost", "charged_amount"}
    assert (await poll_until_done(stack, auth, response.json()["job_id"]))["status"] == "succeeded"


async def test_a_job_belongs_to_its_account(stack: Stack):
    _, owner = await stack.account()
    _, stranger = await stack.account()
    job_id = (await stack.http.post(GENERATIONS, json=VALID, headers=owner)).json()["job_id"]
    assert (await stack.http.get(f"/v1/jobs/{job_id}", headers=owner)).status_code == 200
    response = await stack.http.get(f"/v1/jobs/{job_id}", headers=stranger)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    await poll_until_done(stack, owner, job_id)


async def test_the_catalog_lists_every_model_with_its_price(stack: Stack):
    models = (await stack.http.get("/v1/models")).json()["data"]
    assert {m["id"] for m in models} == set(CATALOG)
    kling = next(m for m in models if m["id"] == "kling-2.5-pro")
    assert Decimal(kling["per_second_usd"]) == Decimal("0.0945")
    assert Decimal(kling["default_duration_price_usd"]) == Decimal("0.4725")
    assert kling["durations"] == list(range(1, 11))
    assert kling["input_modes"] == ["text", "image"]


async def test_the_openapi_document_describes_every_route_and_error(stack: Stack):
    spec = (await stack.http.get("/openapi.json")).json()
    paths = spec["paths"]
    for path in (
        "/v1/videos/generations",
        "/v1/genmedia/jobs",
        "/v1/jobs/{job_id}",
        "/v1/models",
        "/v1/balance",
    ):
        assert path in paths
    post = paths["/v1/videos/generations"]["post"]
    assert {"200", "202", "400", "401", "402", "409", "413", "429", "500"} <= set(post["responses"])
    described = " ".join(r.get("description", "") for r in post["responses"].values())
    for code in (
        "invalid_model",
        "invalid_prompt",
        "invalid_duration",
        "invalid_request",
        "auth_error",
        "insufficient_balance",
        "idempotency_conflict",
        "rate_limited",
        "db_error",
        "provider_error",
    ):
        assert code in described
    assert "requestBody" in post
    assert (await stack.http.get("/docs")).status_code == 200


async def test_probes_answer(stack: Stack):
    assert (await stack.http.get("/healthz")).json() == {"status": "ok"}
    assert (await stack.http.get("/readyz")).json() == {"status": "ready"}
