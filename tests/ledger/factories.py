"""Builders for the ledger tests: realistic jobs and outputs priced from the real catalog."""

import uuid
from decimal import Decimal

from kyma_video.jobs import JobOutput, VideoRequest
from ledger import Ledger, NewJob
from providers.catalog import CATALOG

#: kling-2.5-pro costs $0.0945 per second, so a 5 s job holds $0.4725.
MODEL = "kling-2.5-pro"
RATE = CATALOG[MODEL].per_second_usd


def new_job(
    account_id: str,
    *,
    job_id: str | None = None,
    model: str = MODEL,
    duration: int = 5,
    prompt: str = "a lighthouse in a storm",
    api_key_id: str | None = None,
    idempotency_key: str | None = None,
) -> NewJob:
    """A job as admission would describe it; the fingerprint is the request's real one.

    Image-to-video-only models get a first frame, so every catalog model can be used.
    """
    spec = CATALOG[model]
    image_url = "https://images.example.test/first-frame.png" if not spec.text_to_video else None
    request = VideoRequest(model=model, prompt=prompt, duration=duration, image_url=image_url)
    return NewJob(
        job_id=job_id or f"job_{uuid.uuid4().hex}",
        account_id=account_id,
        api_key_id=api_key_id,
        idempotency_key=idempotency_key,
        fingerprint=request.fingerprint(),
        model=model,
        provider=spec.provider.value,
        endpoint=spec.endpoint(with_image=image_url is not None),
        duration=duration,
        upstream_duration=spec.upstream_duration(duration),
        per_second_usd=spec.per_second_usd,
        prompt=prompt,
        image_url=image_url,
        params={"seed": 7},
    )


def video(seconds: str | Decimal = "5.000") -> JobOutput:
    """A rehosted video of the given length."""
    return JobOutput(
        url="https://cdn.example.test/videos/abc.mp4",
        content_type="video/mp4",
        size_bytes=1_234_567,
        duration_seconds=Decimal(seconds),
        sha256="ab" * 32,
    )


async def funded_account(ledger: Ledger, balance: str = "10") -> str:
    """A new account holding ``balance`` USD; its id."""
    return (await ledger.create_account("test account", balance=Decimal(balance))).id


async def assert_balanced(ledger: Ledger, account_id: str) -> Decimal:
    """Assert the ledger invariant (balance = sum of entries, never negative); the balance."""
    stored, total = await ledger.audit(account_id)
    assert stored == total
    assert stored >= 0
    return stored
