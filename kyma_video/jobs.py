"""The shapes a job takes at every boundary: the request, the job as callers see it, and the
admission answer. These are the models the workflow, the activities, the typed client and the
HTTP API exchange; they are small on purpose (prompts, ids and URLs, never media bytes),
because every one of them may be written into workflow history.
"""

import hashlib
import json
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    ValidationError,
    field_validator,
)
from pydantic_core import PydanticCustomError

from kyma_video.errors import ErrorCode, JobStatus, KymaError
from providers.catalog import CATALOG, DEFAULT_DURATION, MAX_DURATION, MIN_DURATION

MAX_PROMPT_CHARS = 4000
MAX_IDEMPOTENCY_KEY_CHARS = 128
MAX_IMAGE_URL_CHARS = 4096
#: Pass-through params travel in workflow history; keep them small.
MAX_PARAMS_JSON_BYTES = 16 * 1024

#: Fields of the request body that are ours; every other top-level field is a provider param.
REQUEST_FIELDS = frozenset({"model", "prompt", "duration", "image_url", "idempotency_key"})


def _fail(code: ErrorCode, message: str) -> PydanticCustomError:
    return PydanticCustomError(code.value, message)


class VideoRequest(BaseModel):
    """A validated generation request. Build it with :meth:`parse` to get product error codes."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str
    prompt: str
    duration: int = DEFAULT_DURATION
    image_url: str | None = None
    idempotency_key: str | None = None
    params: dict[str, JsonValue] = Field(default_factory=dict)

    @field_validator("model", mode="before")
    @classmethod
    def _known_model(cls, value: object) -> object:
        if not isinstance(value, str) or value not in CATALOG:
            raise _fail(
                ErrorCode.INVALID_MODEL,
                f"{value!r} is not a supported video model; see GET /v1/models",
            )
        return value

    @field_validator("prompt", mode="before")
    @classmethod
    def _prompt_length(cls, value: object) -> object:
        if not isinstance(value, str) or not value.strip():
            raise _fail(ErrorCode.INVALID_PROMPT, "prompt is required and must be non-empty text")
        if len(value) > MAX_PROMPT_CHARS:
            raise _fail(
                ErrorCode.INVALID_PROMPT, f"prompt is longer than {MAX_PROMPT_CHARS} characters"
            )
        return value

    @field_validator("duration", mode="before")
    @classmethod
    def _whole_seconds(cls, value: object) -> object:
        if value is None:
            return DEFAULT_DURATION
        whole = (isinstance(value, int) and not isinstance(value, bool)) or (
            isinstance(value, float) and value.is_integer()
        )
        if not whole or not MIN_DURATION <= int(value) <= MAX_DURATION:  # type: ignore[call-overload]
            raise _fail(
                ErrorCode.INVALID_DURATION,
                f"duration must be a whole number of seconds from {MIN_DURATION} to {MAX_DURATION}",
            )
        return int(value)  # type: ignore[call-overload]

    @field_validator("image_url", mode="before")
    @classmethod
    def _https_image(cls, value: object) -> object:
        if value is None:
            return None
        if (
            not isinstance(value, str)
            or not value.startswith("https://")
            or len(value) > MAX_IMAGE_URL_CHARS
            or len(value) <= len("https://")
        ):
            raise _fail(
                ErrorCode.INVALID_REQUEST,
                f"image_url must be an https:// URL of at most {MAX_IMAGE_URL_CHARS} characters",
            )
        return value

    @field_validator("idempotency_key", mode="before")
    @classmethod
    def _key_length(cls, value: object) -> object:
        if value is None:
            return None
        if not isinstance(value, str) or not 1 <= len(value) <= MAX_IDEMPOTENCY_KEY_CHARS:
            raise _fail(
                ErrorCode.INVALID_REQUEST,
                f"idempotency_key must be 1-{MAX_IDEMPOTENCY_KEY_CHARS} characters",
            )
        return value

    @field_validator("params", mode="after")
    @classmethod
    def _small_params(cls, value: dict[str, JsonValue]) -> dict[str, JsonValue]:
        clash = REQUEST_FIELDS & value.keys()
        if clash:
            raise _fail(ErrorCode.INVALID_REQUEST, f"params may not set {sorted(clash)}")
        # Measured as the compact UTF-8 JSON that workflow history stores.
        encoded = json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()
        if len(encoded) > MAX_PARAMS_JSON_BYTES:
            raise _fail(
                ErrorCode.INVALID_REQUEST,
                f"provider params are larger than {MAX_PARAMS_JSON_BYTES} bytes",
            )
        return value

    @classmethod
    def parse(cls, data: Any) -> Self:
        """Validate ``data``; the first problem becomes a :class:`KymaError` with its code."""
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise _as_kyma_error(exc) from None

    @classmethod
    def from_body(cls, body: dict[str, Any]) -> Self:
        """Accept the HTTP body shape: unknown top-level fields are provider params."""
        if not isinstance(body, dict):
            raise KymaError(ErrorCode.INVALID_REQUEST, "request body must be a JSON object")
        ours = {k: v for k, v in body.items() if k in REQUEST_FIELDS}
        ours["params"] = {k: v for k, v in body.items() if k not in REQUEST_FIELDS}
        return cls.parse(ours)

    def fingerprint(self) -> str:
        """A stable digest of what was asked for (not of the idempotency key itself).

        The same key with a different fingerprint is an ``idempotency_conflict``.
        """
        canonical = json.dumps(
            self.model_dump(exclude={"idempotency_key"}), sort_keys=True, separators=(",", ":")
        )
        return hashlib.sha256(canonical.encode()).hexdigest()


_FIELD_CODES = {
    "model": ErrorCode.INVALID_MODEL,
    "prompt": ErrorCode.INVALID_PROMPT,
    "duration": ErrorCode.INVALID_DURATION,
}


def _as_kyma_error(exc: ValidationError) -> KymaError:
    error = exc.errors()[0]
    field = str(error["loc"][0]) if error["loc"] else None
    try:
        code = ErrorCode(error["type"])
    except ValueError:
        code = _FIELD_CODES.get(field or "", ErrorCode.INVALID_REQUEST)
    message = error["msg"]
    if error["type"] == "missing":
        message = f"{field} is required"
    elif error["type"] == "extra_forbidden":
        message = f"unknown field {field!r}"
    return KymaError(code, message, param=field)


Money = Annotated[Decimal, Field(decimal_places=6)]


class JobOutput(BaseModel):
    """The rehosted video: our URL, stable after the provider's URL has expired."""

    url: str
    content_type: str
    size_bytes: int
    duration_seconds: Decimal
    sha256: str


class JobError(BaseModel):
    code: ErrorCode
    message: str


class JobView(BaseModel):
    """A job as its owner sees it; the same shape whether read from the database or Temporal."""

    job_id: str
    status: JobStatus
    model: str
    provider: str
    duration: int
    estimated_cost: Money
    charged_amount: Money | None = None
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None = None
    output: JobOutput | None = None
    error: JobError | None = None
    #: True when the built-in simulated provider produced the video.
    simulated: bool = False


class Admission(BaseModel):
    """The answer to "start this job": the job, and whether an earlier request created it."""

    job: JobView
    replayed: bool
