"""Shapes that exist only at the HTTP boundary (the job itself is ``kyma_video.jobs.JobView``)."""

from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field

from kyma_video.jobs import (
    MAX_IDEMPOTENCY_KEY_CHARS,
    MAX_PARAMS_DEPTH,
    MAX_PARAMS_JSON_BYTES,
    MAX_PROMPT_CHARS,
)
from providers.catalog import CATALOG, DEFAULT_DURATION, MAX_DURATION, MIN_DURATION


class VideoGenerationBody(BaseModel):
    """The request body, for documentation (``VideoRequest`` validates)."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "description": "Any other top-level field is a provider param, forwarded to the "
            "provider unchanged (e.g. `seed`, `aspect_ratio`). Provider params together are at "
            f"most {MAX_PARAMS_JSON_BYTES} bytes of JSON nested at most {MAX_PARAMS_DEPTH} "
            "levels, with finite numbers, integers within 64 bits and no NUL characters. The "
            "body is UTF-8 JSON without repeated keys, sent as `application/json`.",
            "example": {
                "model": "kling-3-pro",
                "prompt": "an architectural fly-through of a glass tower at sunset",
                "duration": 5,
                "idempotency_key": "campaign-spring-asset-7",
                "seed": 42,
            }
        },
    )

    model: str = Field(description="A video model id.", examples=sorted(CATALOG))
    prompt: str = Field(
        min_length=1,
        max_length=MAX_PROMPT_CHARS,
        description="Text; no control characters other than tab and line breaks.",
    )
    duration: int = Field(
        DEFAULT_DURATION,
        ge=MIN_DURATION,
        le=MAX_DURATION,
        description="Seconds of footage; each is billed at the model's per-second rate.",
    )
    image_url: str | None = Field(
        None, description="HTTPS URL of a first frame: switches to image-to-video."
    )
    idempotency_key: str | None = Field(
        None,
        max_length=MAX_IDEMPOTENCY_KEY_CHARS,
        description="The same (API key, idempotency key) always returns the same job.",
    )


class ModelInfo(BaseModel):
    id: str
    provider: str
    per_second_usd: Decimal
    default_duration_price_usd: Decimal = Field(
        description=f"The price of a default {DEFAULT_DURATION} s clip."
    )
    durations: list[int] = Field(description="Durations a request may ask for.")
    upstream_durations: list[int] = Field(
        description="Durations the provider generates; a request maps to the smallest that is "
        "at least as long (or the longest). Billing uses min(requested, delivered)."
    )
    audio: str
    resolution: str
    input_modes: list[str]
    price_verified: bool


class ModelList(BaseModel):
    object: str = "list"
    data: list[ModelInfo]


class Balance(BaseModel):
    account_id: str
    balance: Decimal
    currency: str = "usd"


class Health(BaseModel):
    status: str
