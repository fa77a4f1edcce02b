"""Orchestration only: deterministic workflow code (see ``video_job``)."""

from workflows.messages import AdmitRequest, JobInput, JobOutcome, JobTimings
from workflows.video_job import VideoJobWorkflow

__all__ = ["AdmitRequest", "JobInput", "JobOutcome", "JobTimings", "VideoJobWorkflow"]
