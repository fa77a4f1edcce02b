"""The video-job workflow's interface: its input, its ``admit`` update and its result.

One typed input and one typed result, so fields can be added later without breaking running
histories (new fields must have defaults).
"""

from pydantic import BaseModel

from kyma_video.jobs import JobView, VideoRequest


class JobTimings(BaseModel):
    """Settings a job needs, fixed at start: workflow code never reads settings itself."""

    deadline_seconds: int = 600
    poll_interval_seconds: float = 5.0
    admission_timeout_seconds: int = 60
    media_fetch_timeout_seconds: float = 120.0
    max_video_bytes: int = 512 * 1024 * 1024


class JobInput(BaseModel):
    job_id: str
    account_id: str
    api_key_id: str
    request: VideoRequest
    timings: JobTimings = JobTimings()
    max_jobs_in_flight: int | None = None


class AdmitRequest(BaseModel):
    """Sent by every caller that starts or attaches to a job; carries what it asked for, so a
    reused idempotency key with a different request is refused instead of answered."""

    fingerprint: str


class JobOutcome(BaseModel):
    job: JobView
    fingerprint: str
