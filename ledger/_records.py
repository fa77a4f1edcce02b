"""What the ledger hands to callers: frozen pydantic records, never live ORM objects.

Records are plain values, so they can cross a transaction boundary, be logged, or be passed
into a Temporal activity result without dragging a database session along.
"""

from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, JsonValue, field_validator

from kyma_video.errors import ErrorCode, JobStatus
from kyma_video.jobs import JobError, JobOutput, JobView, Money


class EntryKind(StrEnum):
    HOLD = "hold"
    USAGE = "usage"
    HOLD_RELEASE = "hold_release"
    TOP_UP = "top_up"


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True, from_attributes=True)


class AccountRecord(_Record):
    id: str
    name: str
    tier: str
    balance: Money
    created_at: datetime


class ApiKeyRecord(_Record):
    """An API key as the ledger stores it: neither the plaintext nor its hash."""

    id: str
    account_id: str
    prefix: str
    created_at: datetime
    revoked_at: datetime | None = None

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None


class LedgerEntryRecord(_Record):
    id: int
    account_id: str
    job_id: str | None
    kind: EntryKind
    amount: Money
    balance_delta: Money
    balance_after: Money
    reference: str | None
    settles_job_id: str | None
    created_at: datetime


class JobRecord(_Record):
    """Every column of a job row."""

    id: str
    account_id: str
    api_key_id: str | None
    idempotency_key: str | None
    fingerprint: str
    model: str
    provider: str
    endpoint: str
    duration: int
    upstream_duration: int
    per_second_usd: Money
    estimated_cost: Money
    charged_amount: Money | None
    status: JobStatus
    prompt: str
    image_url: str | None
    params: dict[str, JsonValue]
    simulated: bool
    #: The workflow run that admitted the job (tells a retried admission from a replay).
    workflow_run_id: str | None
    upstream_request_id: str | None
    output_key: str | None
    output_url: str | None
    output_content_type: str | None
    output_size_bytes: int | None
    output_sha256: str | None
    output_duration_seconds: Decimal | None
    error_code: ErrorCode | None
    error_message: str | None
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None

    def view(self) -> JobView:
        """The job as its owner sees it (the API's and the client's shape).

        Returns:
            A :class:`~kyma_video.jobs.JobView`; ``output`` only once the job succeeded,
            ``error`` only when an error was recorded.
        """
        return JobView(
            job_id=self.id,
            status=self.status,
            model=self.model,
            provider=self.provider,
            duration=self.duration,
            estimated_cost=self.estimated_cost,
            charged_amount=self.charged_amount,
            created_at=self.created_at,
            updated_at=self.updated_at,
            finished_at=self.finished_at,
            output=self._output(),
            error=self._error(),
            simulated=self.simulated,
        )

    def _output(self) -> JobOutput | None:
        if self.status is not JobStatus.SUCCEEDED:
            return None
        # capture_usage writes every output column together with the status.
        assert self.output_url is not None and self.output_content_type is not None
        assert self.output_size_bytes is not None and self.output_sha256 is not None
        assert self.output_duration_seconds is not None
        return JobOutput(
            url=self.output_url,
            content_type=self.output_content_type,
            size_bytes=self.output_size_bytes,
            duration_seconds=self.output_duration_seconds,
            sha256=self.output_sha256,
        )

    def _error(self) -> JobError | None:
        if self.error_code is None:
            return None
        return JobError(code=self.error_code, message=self.error_message or "")


class NewJob(_Record):
    """Everything admission knows about a job before its hold is placed."""

    job_id: str = Field(min_length=1, max_length=255)
    account_id: str
    api_key_id: str | None = None
    idempotency_key: str | None = None
    fingerprint: str
    model: str
    provider: str
    endpoint: str
    duration: int = Field(gt=0)
    upstream_duration: int = Field(gt=0)
    per_second_usd: Money = Field(gt=0)
    prompt: str
    image_url: str | None = None
    params: dict[str, JsonValue] = Field(default_factory=dict)
    simulated: bool = False
    workflow_run_id: str | None = None

    @field_validator("per_second_usd", mode="before")
    @classmethod
    def _no_float(cls, value: object) -> object:
        if isinstance(value, float):
            raise ValueError("money must not be a float")
        return value


class HoldOutcome(_Record):
    """The answer to ``place_hold``: the job, and whether this call created it."""

    job: JobRecord
    created: bool
