"""The shapes a job takes at every boundary: the request, the job as callers see it, and the
admission answer. These are the models the workflow, the activities, the typed client and the
HTTP API exchange; they are small on purpose (prompts, ids and URLs, never media bytes),
because every one of them may be written into workflow history.
"""

import hashlib
import json
import math
import re
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
#: And shallow: pydantic's JSON parser refuses input nested ~200 deep, so deeper params would
#: pass admission and then fail to decode as the workflow's input. Provider params are flat.
MAX_PARAMS_DEPTH = 32
_INT64_MIN, _UINT64_MAX = -(2**63), 2**64 - 1
#: How much of a refused value an error message quotes back.
_QUOTED_CHARS = 80

#: Not text: NUL and the other C0/C1 control characters (tab and line breaks are ordinary text
#: in a prompt) and lone surrogates (not Unicode; they cannot be encoded as UTF-8).
_NOT_TEXT = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")
_NOT_TEXT_OR_LINE_BREAK = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
#: What no stored value may carry: PostgreSQL text and JSONB cannot hold NUL, nor UTF-8 a lone
#: surrogate.
_UNSTORABLE = re.compile(r"[\x00\ud800-\udfff]")

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
                f"{_quoted(value)} is not a supported video model; see GET /v1/models",
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
        if _NOT_TEXT.search(value):
            raise _fail(
                ErrorCode.INVALID_PROMPT,
                "prompt may not contain NUL, control characters (other than tab and line "
                "breaks) or lone surrogates",
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
            or _NOT_TEXT_OR_LINE_BREAK.search(value)
        ):
            raise _fail(
                ErrorCode.INVALID_REQUEST,
                f"image_url must be an https:// URL of at most {MAX_IMAGE_URL_CHARS} characters, "
                "none of them control characters",
            )
        return value

    @field_validator("idempotency_key", mode="before")
    @classmethod
    def _key_length(cls, value: object) -> object:
        if value is None:
            return None
        if (
            not isinstance(value, str)
            or not 1 <= len(value) <= MAX_IDEMPOTENCY_KEY_CHARS
            or _NOT_TEXT_OR_LINE_BREAK.search(value)
        ):
            raise _fail(
                ErrorCode.INVALID_REQUEST,
                f"idempotency_key must be 1-{MAX_IDEMPOTENCY_KEY_CHARS} characters, "
                "none of them control characters",
            )
        return value

    @field_validator("params", mode="before")
    @classmethod
    def _storable_params(cls, value: object) -> object:
        # Before pydantic walks the value (it would fail deep nesting with a recursion error).
        problem = _params_problem(value)
        if problem is not None:
            raise _fail(ErrorCode.INVALID_REQUEST, f"provider params {problem}")
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


def _quoted(value: object) -> str:
    """``value`` as an error message may quote it: a caller's 25 MB "model" is not echoed."""
    if isinstance(value, str) and len(value) > _QUOTED_CHARS:
        return repr(value[:_QUOTED_CHARS]) + "..."
    text = repr(value)
    return text if len(text) <= _QUOTED_CHARS else text[:_QUOTED_CHARS] + "..."


def _params_problem(params: object) -> str | None:
    """Why ``params`` cannot travel as stored JSON (workflow history, JSONB, a provider's
    request), or None. Iterative, so no nesting depth can exhaust the stack."""
    pending: list[tuple[object, int]] = [(params, 0)]
    while pending:
        value, depth = pending.pop()
        if depth > MAX_PARAMS_DEPTH:
            return f"are nested deeper than {MAX_PARAMS_DEPTH} levels"
        if isinstance(value, int) and not _INT64_MIN <= value <= _UINT64_MAX:
            # Past 64 bits no provider reads the number as sent (nor does our simulated one).
            return "may not contain integers wider than 64 bits"
        if isinstance(value, float) and not math.isfinite(value):
            # Not JSON; serialized as null it would also change the request's fingerprint.
            return "may not contain NaN or infinite numbers"
        if isinstance(value, str) and _UNSTORABLE.search(value):
            return "may not contain NUL characters or lone surrogates"
        if isinstance(value, dict):
            for key, item in value.items():
                if isinstance(key, str) and _UNSTORABLE.search(key):
                    return "may not contain NUL characters or lone surrogates"
                pending.append((item, depth + 1))
        elif isinstance(value, list):
            pending.extend((item, depth + 1) for item in value)
    return None


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
