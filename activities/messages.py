"""Inputs and results of the activities: ids, URLs and small records only. Video bytes never
cross this boundary (Temporal payloads are capped at 2 MB); they move inside one activity."""

from pydantic import BaseModel

from kyma_video.errors import JobStatus
from kyma_video.jobs import JobError, JobOutput, JobView, VideoRequest
from providers.base import MediaRef, UpstreamJob


class PlaceHoldInput(BaseModel):
    job_id: str
    account_id: str
    api_key_id: str
    request: VideoRequest
    fingerprint: str
    #: The caller's tier limit, enforced inside the hold's transaction (None: no limit).
    max_jobs_in_flight: int | None = None


class HoldPlaced(BaseModel):
    job: JobView
    #: False when the job already existed before this workflow run (an idempotent replay).
    created: bool


class SubmittedJob(BaseModel):
    upstream: UpstreamJob
    job: JobView


class AwaitInput(BaseModel):
    upstream: UpstreamJob
    poll_interval_seconds: float


class RehostInput(BaseModel):
    job_id: str
    upstream: UpstreamJob
    media: MediaRef
    max_video_bytes: int


class RehostedVideo(BaseModel):
    key: str
    output: JobOutput


class CaptureInput(BaseModel):
    job_id: str
    video: RehostedVideo


class ReleaseInput(BaseModel):
    job_id: str
    status: JobStatus
    error: JobError
