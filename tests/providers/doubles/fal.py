"""A protocol-faithful double of fal's queue API (``shared/reference/providers.md`` §1-2).

It serves the queue protocol exactly, on one origin (served over HTTPS by
``doubles.https.serve_https``), plus the host of the finished videos:

* ``POST /{endpoint id}[?fal_webhook=]`` -> ``{"request_id", "response_url", "status_url",
  "cancel_url", "queue_position", "status": "IN_QUEUE"}``, the URLs on this double's own origin
  and addressed by owner/app only, as fal's are
* ``GET /{owner}/{app}/requests/{id}/status[?logs=]`` -> 202 with ``IN_QUEUE`` (and
  ``queue_position``) or ``IN_PROGRESS`` (and ``logs``), 200 with ``COMPLETED`` (``logs``,
  ``metrics``, and ``error``/``error_type`` when the request failed)
* ``GET /{owner}/{app}/requests/{id}`` -> the model output ``{"video": {"url", "content_type",
  "file_name", "file_size"}}`` (Seedance adds ``seed``), or the model's own error answer
* ``PUT /{owner}/{app}/requests/{id}/cancel`` -> ``{"status": "OK" | "CANCELLATION_REQUESTED" |
  "ALREADY_COMPLETED" | "NOT_FOUND"}`` (200, 202, 400, 404: the codes are unverified)
* ``GET /media/{id}/output.mp4`` -> the video (a real MP4), or 410 once a scripted lifetime ends

Every request is checked as fal would check it and recorded (method, path, query, headers with
the key replaced by a verdict, JSON body). What fal would refuse is answered the way fal answers
(401 for a missing or wrong ``Authorization: Key <key>``, 404 for an unknown endpoint id or
request, 422 with a pydantic-style ``detail`` list for input that breaks the endpoint's schema)
*and* recorded in :attr:`FalQueueDouble.violations`, which the tests' fixture requires to be
empty; so is asking for a result before COMPLETED, or sending the key to the media host. Unknown
input fields are accepted, as fal ignores them, and listed per job in :attr:`Job.ignored`.

Tests script behaviour. A :class:`Script`, registered per prompt with
:meth:`FalQueueDouble.script` (``default_script`` otherwise), decides how a request progresses:
COMPLETED after N status polls (the first of them ``IN_QUEUE``), never, or failing as a model
error, a content rejection, a platform failure, or a result without a video; how long its
video stays downloadable, and where the result says the video is.
:meth:`FalQueueDouble.inject` queues :class:`Fault`\\ s per
:class:`Operation` (optionally for one prompt only): error answers (429 with ``Retry-After``,
503 ``runner_scheduling_failure``, a 422 moderation rejection, any status) replace the
operation, while slow, malformed and dropped answers happen *after* it (a slow submission still
creates its request, as a real one fal accepted would). The double counts concurrent in-flight
requests (``max_in_flight``).
"""

import asyncio
import hmac
import json
import secrets
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from providers.simulated_media import render_mp4
from tests.providers.doubles.https import DroppedResponse

_ALL_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
_ERRORS_URL = "https://docs.fal.ai/errors"
MODERATION_TYPE = "content_policy_violation"

KLING_25 = "fal-ai/kling-video/v2.5-turbo/pro"
KLING_3 = "fal-ai/kling-video/v3/pro"
SEEDANCE = "bytedance/seedance-2.0"
SEEDANCE_FAST = "bytedance/seedance-2.0/fast"


@lru_cache(maxsize=1)
def sample_video() -> bytes:
    """A real (tiny) MP4, rendered once per test session, as fal's ``output.mp4``."""
    with tempfile.TemporaryDirectory(prefix="kyma-fal-double-") as folder:
        path = Path(folder) / "output.mp4"
        render_mp4(path, 1.0, seed=3)
        return path.read_bytes()


# Input schemas (reference §2.2-2.4).

#: A field check returns None when the value is fine, else (type, msg, ctx) like pydantic.
Problem = tuple[str, str, dict[str, Any] | None]
Check = Callable[[Any], Problem | None]


def _literal(*allowed: str) -> Check:
    expected = " or ".join(f"'{value}'" for value in allowed)

    def check(value: Any) -> Problem | None:
        if isinstance(value, str) and value in allowed:
            return None
        return ("literal_error", f"Input should be {expected}", {"expected": expected})

    return check


def _string(value: Any) -> Problem | None:
    return (
        None if isinstance(value, str) else ("string_type", "Input should be a valid string", None)
    )


def _boolean(value: Any) -> Problem | None:
    # Stricter than pydantic's lax mode (which takes "true" and 1): the adapter must send JSON
    # booleans, and a double that accepted anything else would hide a mistake.
    if isinstance(value, bool):
        return None
    return ("bool_type", "Input should be a valid boolean", None)


def _unit_interval(value: Any) -> Problem | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return ("float_type", "Input should be a valid number", None)
    if value < 0:
        return ("greater_than_equal", "Input should be greater than or equal to 0", {"ge": 0})
    if value > 1:
        return ("less_than_equal", "Input should be less than or equal to 1", {"le": 1})
    return None


def _list_of_objects(value: Any) -> Problem | None:
    if isinstance(value, list) and all(isinstance(item, dict) for item in value):
        return None
    return ("list_type", "Input should be a valid list of objects", None)


_SHOT_DURATION = _literal(*(str(n) for n in range(1, 16)))


def _multi_prompt(value: Any) -> Problem | None:
    problem = _list_of_objects(value)
    if problem is not None:
        return problem
    for shot in value:
        if _string(shot.get("prompt")) or _SHOT_DURATION(shot.get("duration")):
            return ("value_error", "Each shot needs a prompt and a duration of '1' to '15'", None)
    return None


@dataclass(frozen=True)
class Schema:
    """One endpoint's input: its fields' checks and which are required."""

    fields: dict[str, Check]
    required: frozenset[str]
    #: Kling 3: ``prompt`` or ``multi_prompt``, exactly one.
    prompt_or_multi: bool = False


_KLING_25_COMMON: dict[str, Check] = {
    "prompt": _string,
    "duration": _literal("5", "10"),
    "negative_prompt": _string,
    "cfg_scale": _unit_interval,
}
_KLING_3_COMMON: dict[str, Check] = {
    "prompt": _string,
    "multi_prompt": _multi_prompt,
    "shot_type": _literal("customize", "intelligent"),
    "duration": _literal(*(str(n) for n in range(3, 16))),
    "generate_audio": _boolean,
    "negative_prompt": _string,
    "cfg_scale": _unit_interval,
}
_THREE_RATIOS = _literal("16:9", "9:16", "1:1")


def _seedance(resolutions: tuple[str, ...], *, image: bool) -> Schema:
    fields: dict[str, Check] = {
        "prompt": _string,
        "duration": _literal("auto", *(str(n) for n in range(4, 16))),
        "aspect_ratio": _literal("auto", "21:9", "16:9", "4:3", "1:1", "3:4", "9:16"),
        "resolution": _literal(*resolutions),
        "generate_audio": _boolean,
        "bitrate_mode": _literal("standard", "high"),
        "end_user_id": _string,
    }
    if image:
        fields |= {"image_url": _string, "end_image_url": _string}
    required = {"prompt", "image_url"} if image else {"prompt"}
    return Schema(fields, frozenset(required))


_STANDARD_RESOLUTIONS = ("480p", "720p", "1080p", "4k")
_FAST_RESOLUTIONS = ("480p", "720p")

SCHEMAS: dict[str, Schema] = {
    f"{KLING_25}/text-to-video": Schema(
        {**_KLING_25_COMMON, "aspect_ratio": _THREE_RATIOS}, frozenset({"prompt"})
    ),
    f"{KLING_25}/image-to-video": Schema(
        {**_KLING_25_COMMON, "image_url": _string, "tail_image_url": _string},
        frozenset({"prompt", "image_url"}),
    ),
    f"{KLING_3}/text-to-video": Schema(
        {**_KLING_3_COMMON, "aspect_ratio": _THREE_RATIOS}, frozenset(), prompt_or_multi=True
    ),
    f"{KLING_3}/image-to-video": Schema(
        {
            **_KLING_3_COMMON,
            "start_image_url": _string,
            "end_image_url": _string,
            "elements": _list_of_objects,
        },
        frozenset({"start_image_url"}),
        prompt_or_multi=True,
    ),
    f"{SEEDANCE}/text-to-video": _seedance(_STANDARD_RESOLUTIONS, image=False),
    f"{SEEDANCE}/image-to-video": _seedance(_STANDARD_RESOLUTIONS, image=True),
    f"{SEEDANCE_FAST}/text-to-video": _seedance(_FAST_RESOLUTIONS, image=False),
    f"{SEEDANCE_FAST}/image-to-video": _seedance(_FAST_RESOLUTIONS, image=True),
}


def validation_errors(endpoint: str, body: Any) -> list[dict[str, Any]]:
    """fal's 422 ``detail`` list for ``body`` at ``endpoint`` (empty when it is valid)."""
    if not isinstance(body, dict):
        return [_error(["body"], "model_attributes_type", "Input should be an object", body)]
    schema = SCHEMAS[endpoint]
    errors = [
        _error(["body", name], "missing", "Field required", body)
        for name in sorted(schema.required - body.keys())
    ]
    for name, value in body.items():
        check = schema.fields.get(name)
        problem = check(value) if check is not None else None
        if problem is not None:
            kind, msg, ctx = problem
            errors.append(_error(["body", name], kind, msg, value, ctx))
    if schema.prompt_or_multi and ("prompt" in body) == ("multi_prompt" in body):
        msg = "Provide exactly one of prompt and multi_prompt"
        errors.append(_error(["body"], "value_error", msg, body))
    return errors


def _error(
    loc: list[str], kind: str, msg: str, value: Any, ctx: dict[str, Any] | None = None
) -> dict[str, Any]:
    item: dict[str, Any] = {
        "loc": loc,
        "msg": msg,
        "type": kind,
        "url": f"{_ERRORS_URL}#{kind}",
        "input": value,
    }
    if ctx is not None:
        item["ctx"] = ctx
    return item


# Scripts and faults.


class Outcome(StrEnum):
    SUCCEED = "succeed"
    #: COMPLETED with ``error``; the result call answers the model's 500.
    MODEL_ERROR = "model_error"
    #: COMPLETED with ``error``; the result call answers 422 with a moderation ``type``.
    CONTENT_REJECTED = "content_rejected"
    #: COMPLETED with ``error_type: runner_disconnected``; the result call answers 503.
    RUNNER_FAILURE = "runner_failure"
    #: COMPLETED cleanly, but the result has no ``video``.
    NO_VIDEO = "no_video"


@dataclass(frozen=True)
class Script:
    """How a request submitted with a given prompt progresses, one step per status poll."""

    #: Status polls answered before COMPLETED; None: the request never finishes.
    polls: int | None = 1
    #: How many of those polls answer IN_QUEUE (position counting down) before IN_PROGRESS.
    queued_polls: int = 0
    outcome: Outcome = Outcome.SUCCEED
    #: How long after completion the video stays downloadable; None: for the whole test.
    media_ttl_seconds: float | None = None
    #: What the media host answers once the video has expired (fal.media: 410 or 403).
    media_expired_status: int = 410
    #: The ``video.url`` the result names instead of this double's media host (an address the
    #: rehost must refuse, say); None: the double's own ``/media/...`` URL.
    video_url: str | None = None


class Operation(StrEnum):
    SUBMIT = "submit"
    STATUS = "status"
    RESULT = "result"
    CANCEL = "cancel"
    MEDIA = "media"


class FaultKind(StrEnum):
    HTTP = "http"
    SLOW = "slow"
    MALFORMED = "malformed"
    DROP = "drop"


@dataclass(frozen=True)
class Fault:
    """One scripted misbehaviour, applied to one request of an operation."""

    kind: FaultKind
    status: int = 200
    body: Any = None
    headers: tuple[tuple[str, str], ...] = ()
    seconds: float = 0.0

    @classmethod
    def http(cls, status: int, body: Any, *, headers: dict[str, str] | None = None) -> "Fault":
        """Answer ``status`` with the JSON ``body`` instead of doing the operation."""
        return cls(FaultKind.HTTP, status=status, body=body, headers=tuple((headers or {}).items()))

    @classmethod
    def rate_limited(cls, retry_after: str | None = None) -> "Fault":
        headers = {"Retry-After": retry_after} if retry_after is not None else {}
        return cls.http(429, {"detail": "Too many requests"}, headers=headers)

    @classmethod
    def platform(cls, status: int = 503, error_type: str = "runner_scheduling_failure") -> "Fault":
        """fal's flat infrastructure error, type in the body and in ``X-Fal-Error-Type``."""
        body = {"detail": "No runner could be allocated", "error_type": error_type}
        headers = {"X-Fal-Error-Type": error_type, "x-fal-request-id": str(uuid.uuid4())}
        return cls.http(status, body, headers=headers)

    @classmethod
    def content_rejected(cls) -> "Fault":
        return cls.http(422, {"detail": [_moderation_error()]})

    @classmethod
    def slow(cls, seconds: float) -> "Fault":
        """Do the operation, then answer only after ``seconds``."""
        return cls(FaultKind.SLOW, seconds=seconds)

    @classmethod
    def malformed(cls) -> "Fault":
        """Do the operation, then answer 200 ``application/json`` with a truncated body."""
        return cls(FaultKind.MALFORMED)

    @classmethod
    def drop(cls) -> "Fault":
        """Do the operation, then close the connection mid-answer (a reset)."""
        return cls(FaultKind.DROP)


def _moderation_error() -> dict[str, Any]:
    msg = "The content could not be processed because it was flagged by a content checker."
    return _error(["body", "prompt"], MODERATION_TYPE, msg, None)


# Recorded state.


@dataclass
class Job:
    """One request in the double's queue."""

    request_id: str
    endpoint: str
    owner_app: str
    body: dict[str, Any]
    script: Script
    #: Input fields the endpoint's schema does not know (fal ignores them).
    ignored: tuple[str, ...]
    webhook: str | None = None
    polls: int = 0
    completed_at: float | None = None
    cancelled: bool = False

    @property
    def completed(self) -> bool:
        return self.completed_at is not None


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]
    #: Lower-case names; the Authorization value is replaced by a verdict, never the key.
    headers: dict[str, str]
    body: Any


@dataclass
class _PendingFault:
    operation: Operation
    fault: Fault
    prompt: str | None


@dataclass
class _State:
    requests: list[RecordedRequest] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    jobs: dict[str, Job] = field(default_factory=dict)
    scripts: dict[str, Script] = field(default_factory=dict)
    faults: list[_PendingFault] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0


class FalQueueDouble:
    """The double; an ASGI app. Tests read ``requests``, ``violations``, ``jobs`` and
    ``max_in_flight``, and script behaviour with :meth:`script` and :meth:`inject`."""

    def __init__(self, key: str, *, video: bytes) -> None:
        self._key = key
        self.video = video
        self.default_script = Script()
        self._state = _State()
        self._app = Starlette(
            routes=[
                Route("/media/{request_id}/{name}", self._media, methods=_ALL_METHODS),
                Route(
                    "/{owner}/{app}/requests/{request_id}/status",
                    self._status,
                    methods=_ALL_METHODS,
                ),
                Route(
                    "/{owner}/{app}/requests/{request_id}/cancel",
                    self._cancel,
                    methods=_ALL_METHODS,
                ),
                Route("/{owner}/{app}/requests/{request_id}", self._result, methods=_ALL_METHODS),
                Route("/{endpoint:path}", self._submit, methods=_ALL_METHODS),
            ]
        )

    # What tests use.

    @property
    def requests(self) -> list[RecordedRequest]:
        return self._state.requests

    @property
    def violations(self) -> list[str]:
        return self._state.violations

    @property
    def jobs(self) -> dict[str, Job]:
        return self._state.jobs

    @property
    def in_flight(self) -> int:
        return self._state.in_flight

    @property
    def max_in_flight(self) -> int:
        return self._state.max_in_flight

    def script(self, prompt: str, script: Script) -> None:
        """Requests submitted with ``prompt`` behave as ``script`` says."""
        self._state.scripts[prompt] = script

    def inject(
        self, operation: Operation, fault: Fault, *, times: int = 1, prompt: str | None = None
    ) -> None:
        """The next ``times`` requests of ``operation`` (for ``prompt``'s requests only, when
        given) misbehave as ``fault`` says."""
        pending = _PendingFault(operation, fault, prompt)
        self._state.faults.extend([pending] * times)

    def requests_to(self, operation: Operation) -> list[RecordedRequest]:
        return [r for r in self.requests if _operation_of(r) is operation]

    def take_violations(self) -> list[str]:
        """Return and clear the violations, for tests that provoke one on purpose."""
        taken = list(self.violations)
        self.violations.clear()
        return taken

    def media_url(self, base_url: str, request_id: str) -> str:
        return f"{base_url.rstrip('/')}/media/{request_id}/output.mp4"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        state = self._state
        # Only the queue API counts: media downloads come from fal's CDN, which the provider
        # concurrency limit is not about.
        counted = "/media/" not in scope["path"]
        state.in_flight += counted
        state.max_in_flight = max(state.max_in_flight, state.in_flight)
        try:
            await self._app(scope, receive, send)
        finally:
            state.in_flight -= counted

    # Endpoints.

    async def _submit(self, request: Request) -> Response:
        body = await self._record(request)
        endpoint = request.path_params["endpoint"]
        refusal = self._refusal(request, "POST") or self._submit_refusal(request, endpoint, body)
        if refusal is not None:
            return refusal
        prompt = body.get("prompt") if isinstance(body, dict) else None
        fault = self._next_fault(Operation.SUBMIT, prompt)
        if fault is not None and fault.kind is FaultKind.HTTP:
            return _http_fault(fault)
        job = self._new_job(request, endpoint, body)
        base = str(request.base_url).rstrip("/")
        answer: dict[str, Any] = {
            "request_id": job.request_id,
            **_queue_urls(base, job),
            "queue_position": 0,
            "status": "IN_QUEUE",
        }
        if job.webhook is not None:
            answer["gateway_request_id"] = job.request_id
        return await _deliver(answer, 200, fault)

    async def _status(self, request: Request) -> Response:
        await self._record(request)
        job = self._job_for(request, "GET")
        if isinstance(job, Response):
            return job
        logs = request.query_params.get("logs", "0")
        if set(request.query_params) - {"logs"} or logs not in {"0", "1", "false", "true"}:
            self._violate(request, "status takes only logs=0|1|true|false")
        fault = self._next_fault(Operation.STATUS, job.body.get("prompt"))
        if fault is not None and fault.kind is FaultKind.HTTP:
            return _http_fault(fault)
        answer = self._advance(job, str(request.base_url).rstrip("/"), logs in {"1", "true"})
        return await _deliver(answer, 200 if job.completed else 202, fault)

    async def _result(self, request: Request) -> Response:
        await self._record(request)
        job = self._job_for(request, "GET")
        if isinstance(job, Response):
            return job
        if not job.completed:
            self._violate(request, "result asked for before status said COMPLETED")
            return JSONResponse({"detail": "Request is still in progress"}, status_code=400)
        fault = self._next_fault(Operation.RESULT, job.body.get("prompt"))
        if fault is not None and fault.kind is FaultKind.HTTP:
            return _http_fault(fault)
        answer, status, headers = self._output(job, str(request.base_url).rstrip("/"))
        return await _deliver(answer, status, fault, headers)

    async def _cancel(self, request: Request) -> Response:
        await self._record(request)
        if (refusal := self._refusal(request, "PUT")) is not None:
            return refusal
        job = self.jobs.get(request.path_params["request_id"])
        if job is None or job.owner_app != _owner_app(request):
            # Expected traffic, not a violation: cancelling is best effort by design.
            return JSONResponse({"status": "NOT_FOUND"}, status_code=404)
        fault = self._next_fault(Operation.CANCEL, job.body.get("prompt"))
        if fault is not None and fault.kind is FaultKind.HTTP:
            return _http_fault(fault)
        if job.completed:
            return await _deliver({"status": "ALREADY_COMPLETED"}, 400, fault)
        queued = job.polls < job.script.queued_polls
        job.cancelled = True
        job.completed_at = time.monotonic()
        if queued:
            return await _deliver({"status": "OK"}, 200, fault)
        return await _deliver({"status": "CANCELLATION_REQUESTED"}, 202, fault)

    async def _media(self, request: Request) -> Response:
        await self._record(request)
        if "authorization" in request.headers:
            self._violate(request, "the fal key was sent to the media host")
        job = self.jobs.get(request.path_params["request_id"])
        if request.method != "GET" or job is None or request.path_params["name"] != "output.mp4":
            self._violate(request, "no such media file")
            return JSONResponse({"detail": "Not Found"}, status_code=404)
        fault = self._next_fault(Operation.MEDIA, job.body.get("prompt"))
        if fault is not None and fault.kind is FaultKind.HTTP:
            return _http_fault(fault)
        if not _downloadable(job):
            # Expected traffic, not a violation: an adapter may hold an expired URL.
            body = {"detail": "File has expired"}
            return JSONResponse(body, status_code=job.script.media_expired_status)
        if fault is not None and fault.kind is FaultKind.SLOW:
            await asyncio.sleep(fault.seconds)
        return Response(self.video, media_type="video/mp4")

    # Behaviour.

    def _new_job(self, request: Request, endpoint: str, body: dict[str, Any]) -> Job:
        prompt = body.get("prompt")
        scripted = self._state.scripts.get(prompt) if isinstance(prompt, str) else None
        script = scripted or self.default_script
        known = SCHEMAS[endpoint].fields
        job = Job(
            request_id=str(uuid.uuid4()),
            endpoint=endpoint,
            owner_app="/".join(endpoint.split("/")[:2]),
            body=body,
            script=script,
            ignored=tuple(name for name in body if name not in known),
            webhook=request.query_params.get("fal_webhook"),
        )
        if script.polls == 0:
            job.completed_at = time.monotonic()
        self.jobs[job.request_id] = job
        return job

    def _advance(self, job: Job, base: str, with_logs: bool) -> dict[str, Any]:
        """One status poll: the answer, moving the job one step along its script."""
        script = job.script
        poll = job.polls
        job.polls += 1
        response_url = _queue_urls(base, job)["response_url"]
        if not job.completed and script.polls is not None and poll >= script.polls:
            job.completed_at = time.monotonic()
        if job.completed:
            return self._completed_status(job, response_url, with_logs)
        if poll < script.queued_polls:
            position = script.queued_polls - poll - 1
            return {"status": "IN_QUEUE", "queue_position": position, "response_url": response_url}
        logs = [_log("Generating video")] if with_logs else None
        return {"status": "IN_PROGRESS", "logs": logs, "response_url": response_url}

    def _completed_status(self, job: Job, response_url: str, with_logs: bool) -> dict[str, Any]:
        answer: dict[str, Any] = {
            "status": "COMPLETED",
            "logs": [_log("Done")] if with_logs else None,
            "metrics": {"inference_time": 81.3},
            "response_url": response_url,
        }
        error = _completed_error(job)
        if error is not None:
            answer["error"], answer["error_type"] = error
        return answer

    def _output(self, job: Job, base: str) -> tuple[dict[str, Any], int, dict[str, str]]:
        """The result call's answer: the model output, or the model's own error."""
        if job.cancelled:
            body = {"detail": "Request was cancelled", "error_type": "client_cancelled"}
            return body, 499, {"X-Fal-Error-Type": "client_cancelled"}
        outcome = job.script.outcome
        if outcome is Outcome.MODEL_ERROR:
            error = _error(["body"], "internal_server_error", "Video generation failed", None)
            return {"detail": [error]}, 500, {}
        if outcome is Outcome.CONTENT_REJECTED:
            return {"detail": [_moderation_error()]}, 422, {}
        if outcome is Outcome.RUNNER_FAILURE:
            body = {"detail": "Runner disconnected", "error_type": "runner_disconnected"}
            return body, 503, {"X-Fal-Error-Type": "runner_disconnected"}
        if outcome is Outcome.NO_VIDEO:
            return {"seed": 7}, 200, {}
        output: dict[str, Any] = {
            "video": {
                "url": job.script.video_url or self.media_url(base, job.request_id),
                "content_type": "video/mp4",
                "file_name": "output.mp4",
                "file_size": len(self.video),
            }
        }
        if job.endpoint.startswith(SEEDANCE):
            seed = job.body.get("seed")
            output["seed"] = seed if isinstance(seed, int) else 1_234_567
        return output, 200, {}

    # Checks.

    def _refusal(self, request: Request, method: str) -> Response | None:
        """What fal answers before looking at a request: wrong method, missing or wrong key."""
        if request.method != method:
            self._violate(request, f"fal expects {method} here")
            return JSONResponse({"detail": "Method Not Allowed"}, status_code=405)
        if not self._authorized(request):
            self._violate(request, "missing or wrong Authorization: Key <key>")
            return JSONResponse({"detail": "Invalid API key"}, status_code=401)
        return None

    def _submit_refusal(self, request: Request, endpoint: str, body: Any) -> Response | None:
        if endpoint not in SCHEMAS:
            self._violate(request, f"unknown endpoint id {endpoint!r}")
            return JSONResponse({"detail": f"Application {endpoint!r} not found"}, 404)
        problem = _submit_protocol_problem(request)
        if problem is not None:
            self._violate(request, problem)
            return JSONResponse({"detail": problem, "error_type": "bad_request"}, 400)
        errors = validation_errors(endpoint, body)
        if errors:
            for item in errors:
                self._violate(request, f"invalid input {item['loc']}: {item['type']}")
            return JSONResponse({"detail": errors}, status_code=422)
        return None

    def _job_for(self, request: Request, method: str) -> Job | Response:
        """The request a status or result call is about, or fal's refusal."""
        refusal = self._refusal(request, method)
        if refusal is not None:
            return refusal
        job = self.jobs.get(request.path_params["request_id"])
        if job is None or job.owner_app != _owner_app(request):
            self._violate(request, "no such request for this owner/app")
            return JSONResponse({"detail": "Request not found"}, status_code=404)
        return job

    def _authorized(self, request: Request) -> bool:
        header = request.headers.get("authorization", "")
        return hmac.compare_digest(header.encode(), f"Key {self._key}".encode())

    # Plumbing.

    async def _record(self, request: Request) -> Any:
        raw = await request.body()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode(errors="replace")
        headers = dict(request.headers.items())
        if "authorization" in headers:
            verdict = "valid" if self._authorized(request) else "not the account's key"
            headers["authorization"] = f"Key <{verdict}>"
        self.requests.append(
            RecordedRequest(
                method=request.method,
                path=request.url.path,
                query=dict(request.query_params),
                headers=headers,
                body=body,
            )
        )
        return body

    def _violate(self, request: Request, problem: str) -> None:
        self.violations.append(f"{request.method} {request.url.path}: {problem}")

    def _next_fault(self, operation: Operation, prompt: Any) -> Fault | None:
        for index, pending in enumerate(self._state.faults):
            if pending.operation is operation and pending.prompt in (None, prompt):
                del self._state.faults[index]
                return pending.fault
        return None


def _submit_protocol_problem(request: Request) -> str | None:
    """The queue's own checks on a submission, before the model's schema."""
    if request.headers.get("content-type", "").split(";")[0] != "application/json":
        return "Content-Type must be application/json"
    unknown = set(request.query_params) - {"fal_webhook", "fal_max_queue_length"}
    if unknown:
        return f"unknown query parameters {sorted(unknown)}"
    webhook = request.query_params.get("fal_webhook")
    if webhook is not None and not webhook.startswith("https://"):
        return "fal_webhook must be an https URL"
    priority = request.headers.get("x-fal-queue-priority")
    if priority is not None and priority not in {"normal", "low"}:
        return "X-Fal-Queue-Priority must be normal or low"
    timeout = request.headers.get("x-fal-request-timeout")
    if timeout is not None and not _seconds_over_one(timeout):
        return "X-Fal-Request-Timeout must be a number of seconds above 1"
    return None


def _seconds_over_one(value: str) -> bool:
    try:
        return float(value) > 1
    except ValueError:
        return False


def _completed_error(job: Job) -> tuple[str, str | None] | None:
    """The ``error``/``error_type`` pair of a failed request's COMPLETED status."""
    if job.cancelled:
        return "Request was cancelled", "client_cancelled"
    outcome = job.script.outcome
    if outcome is Outcome.MODEL_ERROR:
        return "Invalid status code: 500", None
    if outcome is Outcome.CONTENT_REJECTED:
        return "Invalid status code: 422", None
    if outcome is Outcome.RUNNER_FAILURE:
        return "Runner disconnected", "runner_disconnected"
    return None


def _downloadable(job: Job) -> bool:
    ttl = job.script.media_ttl_seconds
    if ttl is None or job.completed_at is None:
        return True
    return time.monotonic() < job.completed_at + ttl


def _queue_urls(base: str, job: Job) -> dict[str, str]:
    request_url = f"{base}/{job.owner_app}/requests/{job.request_id}"
    return {
        "response_url": request_url,
        "status_url": f"{request_url}/status",
        "cancel_url": f"{request_url}/cancel",
    }


def _owner_app(request: Request) -> str:
    return f"{request.path_params['owner']}/{request.path_params['app']}"


def _operation_of(request: RecordedRequest) -> Operation | None:
    if "/media/" in request.path:
        return Operation.MEDIA
    if request.path.endswith("/status"):
        return Operation.STATUS
    if request.path.endswith("/cancel"):
        return Operation.CANCEL
    if "/requests/" in request.path:
        return Operation.RESULT
    return Operation.SUBMIT if request.method == "POST" else None


def _log(message: str) -> dict[str, str]:
    timestamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
    return {"message": message, "level": "INFO", "source": "user", "timestamp": timestamp}


def _http_fault(fault: Fault) -> Response:
    return JSONResponse(fault.body, status_code=fault.status, headers=dict(fault.headers))


async def _deliver(
    answer: dict[str, Any],
    status: int,
    fault: Fault | None,
    headers: dict[str, str] | None = None,
) -> Response:
    """The operation's answer, as a slow, malformed or dropped fault (if any) alters it."""
    if fault is not None and fault.kind is FaultKind.SLOW:
        await asyncio.sleep(fault.seconds)
    if fault is not None and fault.kind is FaultKind.MALFORMED:
        truncated = json.dumps(answer)[: len(json.dumps(answer)) // 2]
        return Response(truncated, status_code=200, media_type="application/json")
    if fault is not None and fault.kind is FaultKind.DROP:
        return DroppedResponse(b'{"request')
    return JSONResponse(answer, status_code=status, headers=headers)


def new_key() -> str:
    """A fal-looking key, unique per session, easy to search for in logs and messages."""
    return f"fal-test-{secrets.token_hex(8)}:{secrets.token_hex(16)}"
