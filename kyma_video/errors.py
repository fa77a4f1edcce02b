"""Error codes carried from the moment a failure is born to the HTTP response that reports it.

The codes for rejected requests are the product's documented ones; the codes for failed jobs
describe why a job ended without a video. Each job code decides the job's terminal status, so
the workflow never string-matches messages.
"""

from enum import StrEnum


class ErrorCode(StrEnum):
    # Request-level codes (documented HTTP errors; not_found is our documented extension).
    INVALID_MODEL = "invalid_model"
    INVALID_PROMPT = "invalid_prompt"
    INVALID_DURATION = "invalid_duration"
    INVALID_REQUEST = "invalid_request"
    AUTH_ERROR = "auth_error"
    INSUFFICIENT_BALANCE = "insufficient_balance"
    IDEMPOTENCY_CONFLICT = "idempotency_conflict"
    RATE_LIMITED = "rate_limited"
    NOT_FOUND = "not_found"
    DB_ERROR = "db_error"
    PROVIDER_ERROR = "provider_error"
    # Job-level codes (a job's ``error.code``).
    CONTENT_REJECTED = "content_rejected"
    UPSTREAM_REJECTED = "upstream_rejected"
    UPSTREAM_FAILED = "upstream_failed"
    INVALID_OUTPUT = "invalid_output"
    REHOST_FAILED = "rehost_failed"
    DEADLINE_EXCEEDED = "deadline_exceeded"


class JobStatus(StrEnum):
    PENDING = "pending"
    PROCESSING = "processing"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    REFUNDED = "refunded"
    EXPIRED = "expired"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATUSES


TERMINAL_STATUSES = frozenset(
    {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.REFUNDED, JobStatus.EXPIRED}
)

#: Why a job ended decides how it ended. ``failed``: the provider would not or could not make
#: the video. ``refunded``: we could not deliver a job for reasons on our side (or the
#: provider's infrastructure), so the hold went back. ``expired``: the deadline passed first.
#: In every case the hold is released in full; only ``succeeded`` charges.
_TERMINAL_STATUS_BY_CODE: dict[ErrorCode, JobStatus] = {
    ErrorCode.CONTENT_REJECTED: JobStatus.FAILED,
    ErrorCode.UPSTREAM_REJECTED: JobStatus.FAILED,
    ErrorCode.UPSTREAM_FAILED: JobStatus.FAILED,
    ErrorCode.INVALID_OUTPUT: JobStatus.FAILED,
    ErrorCode.REHOST_FAILED: JobStatus.REFUNDED,
    ErrorCode.PROVIDER_ERROR: JobStatus.REFUNDED,
    ErrorCode.DB_ERROR: JobStatus.REFUNDED,
    ErrorCode.DEADLINE_EXCEEDED: JobStatus.EXPIRED,
}


def terminal_status_for(code: ErrorCode) -> JobStatus:
    """The status a job ends in when it fails with ``code`` (unknown codes count as ours)."""
    return _TERMINAL_STATUS_BY_CODE.get(code, JobStatus.REFUNDED)


class KymaError(Exception):
    """A failure with a product error code, a human message and optionally the offending field."""

    def __init__(self, code: ErrorCode, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.param = param

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.code.value!r}, {self.message!r}, param={self.param!r})"


class InsufficientBalance(KymaError):
    def __init__(self, message: str = "balance too low to place the hold") -> None:
        super().__init__(ErrorCode.INSUFFICIENT_BALANCE, message)


class IdempotencyConflict(KymaError):
    def __init__(self, message: str = "idempotency_key was used with a different request") -> None:
        super().__init__(ErrorCode.IDEMPOTENCY_CONFLICT, message, param="idempotency_key")


class RateLimited(KymaError):
    """A tier limit was hit; ``retry_after_seconds`` tells the caller when to come back."""

    def __init__(self, message: str, *, retry_after_seconds: int) -> None:
        super().__init__(ErrorCode.RATE_LIMITED, message)
        self.retry_after_seconds = retry_after_seconds
