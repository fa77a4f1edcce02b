"""Where a provider is called: submit, one status look per attempt, and cancel.

Polling pattern: **infrequent polling through the activity retry policy** (one of the three
shapes in Temporal's samples). ``await_upstream`` looks once; while the upstream job runs it
raises a benign, retryable ``upstream_pending`` error and Temporal retries it after the poll
interval. Why this one:

* History stays the same size however long upstream takes: retries of one activity are not
  recorded as events, only its final completion is (a test proves 10 s == 9 min).
* No worker slot is held between looks, so thousands of waiting jobs cost nothing but timers,
  and a worker restart loses nothing (the next attempt runs anywhere).
* It runs on Temporal's time-skipping test server, so the deadline and long upstreams are tested
  in milliseconds.

Frequent polling inside one heartbeating activity would hold a slot per job for minutes and run
in real time under test; a workflow loop with continue-as-new adds history per poll and needs
the extra machinery of carrying state across runs. Neither buys anything here.
"""

from datetime import timedelta

from temporalio import activity

from activities.deps import ActivityDeps
from activities.errors import classified_failures, permanent, still_running
from activities.messages import AwaitInput, SubmittedJob
from kyma_video.errors import ErrorCode
from providers.base import MediaRef, SubmitRequest, UpstreamJob, UpstreamState
from providers.catalog import ProviderName, get_model

#: Bounds on a provider's own "look again in N seconds" hint.
_MIN_POLL = timedelta(seconds=1)
_MAX_POLL = timedelta(seconds=60)


class UpstreamActivities:
    def __init__(self, deps: ActivityDeps) -> None:
        self._deps = deps

    @activity.defn(name="submit_upstream")
    async def submit_upstream(self, job_id: str) -> SubmittedJob:
        """Submit once: the upstream request id is recorded, and a retry that finds it recorded
        does not submit again.

        Remaining window: if the worker dies after the provider accepted the job but before the
        id is recorded, the retry submits a second upstream job (the first is orphaned and may
        be billed by the provider, never by us). The window is one database write long.
        """
        record = await self._deps.ledger.get_job(job_id)
        if record is None:
            raise permanent(ErrorCode.DB_ERROR, f"job {job_id} is not in the ledger")
        provider_name = ProviderName(record.provider)
        if record.upstream_request_id is None:
            with classified_failures():
                provider = self._deps.providers.get(provider_name)
                spec = get_model(record.model)
                request_id = await provider.submit(
                    SubmitRequest(
                        job_id=record.id,
                        model=record.model,
                        endpoint=record.endpoint,
                        prompt=record.prompt,
                        duration_seconds=record.upstream_duration,
                        image_url=record.image_url,
                        image_field=spec.image_field,
                        params={**record.params, **spec.fixed_params},
                    )
                )
            record = await self._deps.ledger.mark_processing(job_id, request_id)
        assert record.upstream_request_id is not None
        upstream = UpstreamJob(
            provider=provider_name, endpoint=record.endpoint, request_id=record.upstream_request_id
        )
        return SubmittedJob(upstream=upstream, job=record.view())

    @activity.defn(name="await_upstream")
    async def await_upstream(self, inp: AwaitInput) -> MediaRef:
        """One look at the upstream job: the finished video's reference, or a retryable
        "still running", or a permanent failure carrying the provider's reason."""
        with classified_failures():
            provider = self._deps.providers.get(inp.upstream.provider)
            status = await provider.status(inp.upstream)
        if status.state is UpstreamState.RUNNING:
            next_poll = timedelta(seconds=inp.poll_interval_seconds)
            if status.retry_after_seconds is not None:
                # A provider's hint (time left, rate limit) wins, within sane bounds.
                hint = timedelta(seconds=status.retry_after_seconds)
                next_poll = min(max(hint, _MIN_POLL), _MAX_POLL)
            raise still_running(f"{inp.upstream.request_id} is still running", next_poll)
        if status.state is UpstreamState.FAILED:
            raise permanent(
                status.error_code or ErrorCode.UPSTREAM_FAILED,
                status.error_message or "the provider failed the job",
            )
        if status.media is None:
            raise permanent(ErrorCode.UPSTREAM_FAILED, "the provider finished without a video")
        return status.media

    @activity.defn(name="cancel_upstream")
    async def cancel_upstream(self, job_id: str) -> None:
        """Best effort: ask the provider to stop a job we no longer want.

        Reads the request id from the ledger rather than from the workflow, so a job whose
        submission raced the deadline is still found and cancelled.
        """
        record = await self._deps.ledger.get_job(job_id)
        if record is None or record.upstream_request_id is None:
            return
        upstream = UpstreamJob(
            provider=ProviderName(record.provider),
            endpoint=record.endpoint,
            request_id=record.upstream_request_id,
        )
        with classified_failures():
            await self._deps.providers.get(upstream.provider).cancel(upstream)
