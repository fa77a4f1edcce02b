"""Fault scenario "concurrency": admissions racing for one balance, and one request sent a
hundred times at once.

Both go through the real HTTP API (the ``stack`` fixture: uvicorn in front of a worker, the
Temporal dev server, PostgreSQL, S3 on moto and the simulated provider), with every request in
flight at the same time on its own connection. What must hold:

* Holds never overdraw: an account whose balance covers exactly 50 holds, sent 200 distinct
  submissions at once, admits exactly 50 (202) and refuses the other 150 with the documented
  ``402 insufficient_balance`` body, creating no job for them; the 50 run to the end, and the
  balance ends at zero, equal to the sum of its ledger entries.
* Idempotency holds under contention: 100 identical POSTs with one idempotency key make one
  job with one hold (one 202 and 99 replays answered 200), and it is charged once.

Each scenario ends with :func:`~tests.faults.invariants.assert_nothing_lost` over the ledger,
Temporal and the bucket's objects.
"""

import asyncio
from collections import Counter
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from kyma_video.errors import JobStatus
from kyma_video.money import hold_amount
from ledger import EntryKind
from providers.catalog import get_model
from tests.api.conftest import Stack
from tests.faults.invariants import Findings, assert_nothing_lost

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

pytestmark = pytest.mark.postgres

GENERATIONS = "/v1/videos/generations"
MODEL = "kling-2.5-pro"
DURATION = 1
#: The simulated upstream runs a second and delivers exactly the second asked for, so a
#: succeeded job is charged exactly its hold.
BODY: dict[str, Any] = {
    "model": MODEL,
    "prompt": "a paper boat on a puddle",
    "duration": DURATION,
    "simulate_seconds": 1,
    "simulate_delivered_seconds": DURATION,
}
#: rate x seconds, from the catalog: what each admission holds.
HOLD = hold_amount(get_model(MODEL).per_second_usd, DURATION)
ADMITTED = 50
SUBMISSIONS = 200
IDENTICAL_POSTS = 100


async def post_all(
    stack: Stack, bodies: list[dict[str, Any]], auth: dict[str, str]
) -> list[httpx.Response]:
    """POST every body at once, each on its own connection."""
    limits = httpx.Limits(max_connections=len(bodies), max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=stack.url, timeout=120, limits=limits) as http:
        return await asyncio.gather(*(http.post(GENERATIONS, json=b, headers=auth) for b in bodies))


async def finished(env: WorkflowEnvironment, job_ids: set[str]) -> None:
    """Wait for every job's workflow to close (a job's run ends once it is settled)."""
    async with asyncio.timeout(180):
        await asyncio.gather(*(env.client.get_workflow_handle(j).result() for j in job_ids))


def bucket_keys(s3_client: "S3Client", bucket: str, prefix: str) -> list[str]:
    """Every object in the bucket, as the blob store's keys (its prefix removed)."""
    keys = []
    for page in s3_client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for item in page.get("Contents", []):
            key = item["Key"]
            keys.append(key.removeprefix(prefix))
    return keys


async def nothing_lost(
    stack: Stack, dev_env: WorkflowEnvironment, account: str, s3_client: "S3Client", bucket: str
) -> Findings:
    return await assert_nothing_lost(
        stack.ledger,
        [account],
        temporal=dev_env.client,
        blob_keys=bucket_keys(s3_client, bucket, stack.settings.s3_prefix),
    )


async def test_two_hundred_racing_submissions_admit_exactly_what_the_balance_covers(
    stack: Stack, dev_env: WorkflowEnvironment, s3_client: "S3Client", s3_bucket: str
):
    account, auth = await stack.account(balance=str(HOLD * ADMITTED))
    bodies = [{**BODY, "idempotency_key": f"race-{n}"} for n in range(SUBMISSIONS)]
    responses = await post_all(stack, bodies, auth)

    statuses = Counter(response.status_code for response in responses)
    assert statuses == {202: ADMITTED, 402: SUBMISSIONS - ADMITTED}, [
        r.text for r in responses if r.status_code not in {202, 402}
    ][:5]
    for refused in (r for r in responses if r.status_code == 402):
        body = refused.json()
        assert set(body) == {"error"}
        assert set(body["error"]) == {"code", "message"}
        assert body["error"]["code"] == "insufficient_balance"
        assert body["error"]["message"]
    admitted = [r.json() for r in responses if r.status_code == 202]
    job_ids = {job["job_id"] for job in admitted}
    assert len(job_ids) == ADMITTED
    assert all(Decimal(job["estimated_cost"]) == HOLD for job in admitted)
    # Every cent is held, none twice: no room was left for a 51st hold.
    assert await stack.ledger.balance(account) == 0

    await finished(dev_env, job_ids)
    findings = await nothing_lost(stack, dev_env, account, s3_client, s3_bucket)
    assert set(findings.jobs) == job_ids  # the refused submissions left no job behind
    assert findings.statuses() == {JobStatus.SUCCEEDED: ADMITTED}
    assert all(job.charged_amount == HOLD for job in findings.jobs.values())
    assert await stack.ledger.balance(account) == 0


async def test_a_hundred_identical_posts_at_once_make_one_job_with_one_hold(
    stack: Stack, dev_env: WorkflowEnvironment, s3_client: "S3Client", s3_bucket: str
):
    account, auth = await stack.account(balance="10")
    body = {**BODY, "idempotency_key": "the-same-request"}
    responses = await post_all(stack, [body] * IDENTICAL_POSTS, auth)

    statuses = Counter(response.status_code for response in responses)
    assert statuses == {202: 1, 200: IDENTICAL_POSTS - 1}, [
        r.text for r in responses if r.status_code not in {200, 202}
    ][:5]
    [job_id] = {response.json()["job_id"] for response in responses}
    # The job may already have finished (it runs while the last replays are answered).
    kinds = Counter(entry.kind for entry in await stack.ledger.entries_for_job(job_id))
    assert kinds[EntryKind.HOLD] == 1
    assert await stack.ledger.balance(account) == Decimal(10) - HOLD

    await finished(dev_env, {job_id})
    findings = await nothing_lost(stack, dev_env, account, s3_client, s3_bucket)
    assert list(findings.jobs) == [job_id]
    assert findings.statuses() == {JobStatus.SUCCEEDED: 1}
    assert await stack.ledger.balance(account) == Decimal(10) - HOLD
