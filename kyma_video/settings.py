"""The one settings object. Every process (worker, API, CLI, tests) reads the same variables.

Defaults are the embedded, single-machine stack: SQLite ledger and blobs under ``./.kyma``,
a Temporal dev server on localhost. Production sets ``KYMA_ENVIRONMENT=production``, which
refuses the embedded defaults that would silently lose data or money there.
"""

from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Self

from pydantic import AliasChoices, BaseModel, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Environment(StrEnum):
    DEVELOPMENT = "development"
    PRODUCTION = "production"


class BlobBackend(StrEnum):
    LOCAL = "local"
    S3 = "s3"


class TierLimits(BaseModel):
    """What one account of a tier may do; enforced in the shared ledger database, so the limits
    hold however many API replicas run."""

    requests_per_minute: int = Field(60, ge=1)
    jobs_in_flight: int = Field(10, ge=1)


class ProviderLimits(BaseModel):
    """How hard this deployment may press one provider. Provider calls run on the provider's own
    task queue: ``concurrency`` bounds calls in flight per worker process, and
    ``requests_per_second`` is a Temporal task-queue rate limit shared by all workers, so a burst
    of jobs queues in Temporal instead of hammering the provider."""

    concurrency: int = Field(10, ge=1)
    requests_per_second: float | None = Field(None, gt=0)


class Settings(BaseSettings):
    # populate_by_name: code may pass fields by name even where an env alias exists.
    model_config = SettingsConfigDict(env_prefix="KYMA_", extra="ignore", populate_by_name=True)

    environment: Environment = Field(
        Environment.DEVELOPMENT, description="`production` refuses embedded defaults."
    )
    data_dir: Path = Field(
        Path(".kyma"), description="Where the embedded stack keeps its files (SQLite, blobs)."
    )

    # Ledger
    database_url: str | None = Field(
        None,
        description="SQLAlchemy async URL. Default: SQLite file `<data_dir>/kyma.db`. "
        "Production: `postgresql+asyncpg://user@host/db`.",
    )

    # Temporal
    temporal_address: str = Field("127.0.0.1:7233", description="Temporal frontend host:port.")
    temporal_namespace: str = Field("default", description="Temporal namespace.")
    task_queue: str = Field("kyma-video", description="Task queue for workflows and activities.")
    temporal_ui_port: int = Field(
        8233, ge=1, le=65535, description="Temporal Web UI port of `kyma-video dev`."
    )

    # Jobs
    job_timeout_seconds: int = Field(
        600, ge=10, description="Durable deadline per job; on expiry the hold is released."
    )
    # Each look is one Temporal activity task: 1.2-1.8 ms of worker CPU on a busy 2-core
    # machine, no more than a bare Temporal activity retry costs there (bench.in_flight). So
    # the interval is what waiting costs: 1,000 waiting jobs at 20 s are 50 looks/s, 6-9% of a
    # core (at the former 5 s, 200 looks/s took 25-35%). A provider's own "look again in N s"
    # hint wins (MiniMax asks for 10 s, Vertex 12 s); fal gives none, so its jobs poll at this.
    poll_interval_seconds: float = Field(
        20.0, gt=0, description="How often a running upstream job is polled."
    )
    admission_timeout_seconds: int = Field(
        60, ge=1, description="How long a started job waits for its `admit` update."
    )

    # Blob storage
    blob_backend: BlobBackend = Field(BlobBackend.LOCAL, description="`local` or `s3`.")
    blob_dir: Path | None = Field(
        None, description="Local backend directory. Default: `<data_dir>/blobs`."
    )
    blob_public_base_url: str = Field(
        "http://127.0.0.1:8000/files",
        description="Public URL prefix of stored videos: the bucket's public URL for S3, "
        "the API's file route for the local backend.",
    )
    s3_bucket: str | None = Field(None, description="Bucket for the S3 backend.")
    s3_endpoint_url: str | None = Field(
        None, description="S3-compatible endpoint (MinIO, R2, moto); empty for AWS."
    )
    s3_region: str = Field("us-east-1", description="S3 region.")
    s3_prefix: str = Field("videos/", description="Key prefix for stored videos.")
    max_video_bytes: int = Field(
        512 * 1024 * 1024, gt=0, description="Largest upstream video accepted for rehosting."
    )
    media_fetch_timeout_seconds: float = Field(
        120.0, gt=0, description="Upper bound on downloading one upstream video."
    )

    allow_private_media_urls: bool = Field(
        False,
        description="Allow upstream media URLs on loopback/private/link-local addresses. "
        "Off: such URLs are refused (SSRF guard). Only for local test doubles.",
    )

    # HTTP API
    api_host: str = Field("127.0.0.1", description="Address the HTTP API binds to.")
    api_port: int = Field(8000, ge=1, le=65535, description="Port the HTTP API listens on.")
    max_request_bytes: int = Field(
        25 * 1024 * 1024, gt=0, description="Largest request body the API accepts (413 above)."
    )
    api_url: str = Field(
        "http://127.0.0.1:8000", description="Where CLI commands (`submit`, `jobs`) reach the API."
    )
    api_key: SecretStr | None = Field(
        None,
        description="API key CLI commands send. Default under `kyma-video dev`: the demo key "
        "it saved in `<data_dir>/demo-api-key`.",
    )
    tiers: dict[str, TierLimits] = Field(
        default_factory=lambda: {"default": TierLimits()},
        description='Rate limits per API-key tier, as JSON: {"default": '
        '{"requests_per_minute": 60, "jobs_in_flight": 10}}.',
    )

    # Real providers: each serves its models once its credentials are set.
    fal_key: SecretStr | None = Field(
        None,
        validation_alias=AliasChoices("KYMA_FAL_KEY", "FAL_KEY"),
        description="fal.ai API key (`FAL_KEY` is read too). Enables the fal models.",
    )
    fal_queue_url: str = Field(
        "https://queue.fal.run", description="fal queue API base URL (a proxy or local double)."
    )
    minimax_api_key: SecretStr | None = Field(
        None, description="MiniMax API key. Enables the hailuo models."
    )
    minimax_base_url: str = Field(
        "https://api.minimax.io", description="MiniMax API base URL (a proxy or local double)."
    )
    vertex_project: str | None = Field(
        None,
        validation_alias=AliasChoices("KYMA_VERTEX_PROJECT", "GOOGLE_CLOUD_PROJECT"),
        description="Google Cloud project for Vertex AI (`GOOGLE_CLOUD_PROJECT` is read too). "
        "Enables the veo models; credentials come from Application Default Credentials.",
    )
    vertex_location: str = Field(
        "us-central1",
        validation_alias=AliasChoices("KYMA_VERTEX_LOCATION", "GOOGLE_CLOUD_LOCATION"),
        description="Vertex AI region (`GOOGLE_CLOUD_LOCATION` is read too).",
    )
    vertex_base_url: str | None = Field(
        None, description="Vertex AI API base URL override (a proxy or local double)."
    )

    provider_limits: dict[str, ProviderLimits] = Field(
        default_factory=dict,
        description='Per-provider limits as JSON, e.g. {"fal": {"concurrency": 2, '
        '"requests_per_second": 1}}; providers not listed get concurrency 10, no rate limit.',
    )

    # Simulated provider
    simulated_provider: bool = Field(
        False,
        description="Serve every model from the built-in simulated provider (local stack, "
        "demos, tests). Off unless explicitly enabled; jobs it served say so.",
    )
    simulated_min_seconds: float = Field(
        3.0, ge=0, description="How long the simulated upstream takes unless a job asks."
    )

    # Worker
    worker_max_concurrent_activities: int = Field(
        200, ge=1, description="Activities one worker runs at once."
    )
    worker_max_concurrent_workflow_tasks: int = Field(
        100, ge=1, description="Workflow tasks one worker runs at once."
    )
    worker_max_cached_workflows: int = Field(
        200,
        ge=0,
        description="Workflow runs one worker keeps in memory between their tasks (each "
        "costs ~200 kB). A job's tasks come in two short bursts (admission, completion) minutes "
        "apart, so the cache only needs the jobs inside a burst; an evicted job replays its "
        "short history once when it next has work. 0 turns the cache off.",
    )
    worker_graceful_shutdown_seconds: int = Field(
        30, ge=0, description="On SIGTERM, how long in-flight activities get to finish."
    )
    worker_metrics_address: str | None = Field(
        None,
        description="host:port for the worker's Prometheus metrics (also its health probe); "
        "unset: no metrics endpoint.",
    )

    def limits_for_provider(self, provider: str) -> ProviderLimits:
        return self.provider_limits.get(provider) or ProviderLimits()

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'kyma.db').as_posix()}"

    @property
    def resolved_blob_dir(self) -> Path:
        return self.blob_dir if self.blob_dir is not None else self.data_dir / "blobs"

    @model_validator(mode="after")
    def _refuse_unsafe_production_defaults(self) -> Self:
        if self.environment is Environment.PRODUCTION:
            problems = []
            if not self.database_url or self.database_url.startswith("sqlite"):
                problems.append("KYMA_DATABASE_URL must point at PostgreSQL")
            if self.blob_backend is not BlobBackend.S3:
                problems.append("KYMA_BLOB_BACKEND must be s3")
            if self.simulated_provider:
                problems.append("KYMA_SIMULATED_PROVIDER must be off")
            if problems:
                raise ValueError("unsafe for production: " + "; ".join(problems))
        if self.blob_backend is BlobBackend.S3 and not self.s3_bucket:
            raise ValueError("KYMA_S3_BUCKET is required when KYMA_BLOB_BACKEND=s3")
        return self


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Settings read once per process; tests build their own ``Settings`` instead."""
    return Settings()
