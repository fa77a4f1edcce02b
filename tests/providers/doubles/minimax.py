"""A protocol-faithful double of MiniMax's video API (``shared/reference/providers.md`` §3).

It serves exactly the three documented endpoints plus a file host for the signed download URLs
retrieval hands out, all on one origin (served over HTTPS by ``doubles.https.serve_https``):

* ``POST /v1/video_generation`` -> ``{"task_id", "base_resp"}``
* ``GET /v1/query/video_generation?task_id=`` -> ``{"task_id", "status", "file_id"?,
  "video_width"?, "video_height"?, "base_resp"}`` with capitalised ``Preparing``, ``Queueing``,
  ``Processing``, ``Success``, ``Fail``
* ``GET /v1/files/retrieve?file_id=`` -> ``{"file": {..., "download_url"}, "base_resp"}`` (here
  ``file_id`` is an integer, as MiniMax's retrieve schema declares, while query answers carry it
  as a string)
* ``GET /files/<file_id>/output_aigc.mp4?Expires=&Signature=`` -> the video, or 403 once the
  signed URL has expired (by deadline or by use count)

Every API answer carries ``base_resp`` and a ``Trace-Id`` header. Every request is checked as the
real API would check it (Bearer key, model, field names and types, the resolution/duration/mode
matrix, prompt length) and recorded (the key itself is never recorded). What the real API would
reject is answered the way MiniMax answers (HTTP 200 with ``base_resp`` 1004 or 2013) *and*
recorded in :attr:`MiniMaxDouble.violations`, which the tests' fixture requires to be empty.

Tests script behaviour: :class:`TaskScript` decides how new tasks progress (success after N
polls, ``Fail`` with a code, never finishing), :meth:`MiniMaxDouble.inject` queues
faults (:class:`Fault`) per endpoint (HTTP statuses, ``base_resp`` codes, slow answers, malformed
JSON, dropped connections), ``url_ttl_seconds`` / ``url_max_uses`` / ``stale_retrieves``
make download URLs expire, and ``download_url`` hands out a URL of the test's choosing. The
double counts concurrent in-flight requests (``max_in_flight``).
"""

import asyncio
import hashlib
import hmac
import itertools
import json
import secrets
import tempfile
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from providers.simulated_media import render_mp4
from tests.providers.doubles.https import DroppedResponse

MODEL = "MiniMax-Hailuo-02"
MAX_PROMPT_CHARS = 2000
RESOLUTIONS = ("512P", "768P", "1080P")
DURATIONS = (6, 10)
DEFAULT_URL_TTL_SECONDS = 32_400.0
RUNNING_STATUSES = ("Preparing", "Queueing", "Processing")
_ALL_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]

#: The create-task body fields MiniMax documents for Hailuo-02, with their JSON types.
FIELDS: dict[str, type] = {
    "model": str,
    "prompt": str,
    "duration": int,
    "resolution": str,
    "prompt_optimizer": bool,
    "fast_pretreatment": bool,
    "first_frame_image": str,
    "last_frame_image": str,
    "callback_url": str,
    "aigc_watermark": bool,
}
_SIZES = {"512P": (912, 512), "768P": (1366, 768), "1080P": (1920, 1080)}

STATUS_MESSAGES = {
    0: "success",
    1000: "unknown error",
    1001: "request timeout",
    1002: "rate limit triggered",
    1004: "authorized error, token not match group",
    1008: "insufficient balance",
    1024: "internal error",
    1026: "input new_sensitive",
    1027: "output new_sensitive",
    1033: "system error",
    1039: "token limit",
    1041: "conn limit",
    1042: "invisible character ratio limit",
    2013: "invalid params",
    2038: "no permission, real-name verification required",
    2045: "rate growth limit",
    2049: "invalid api key",
    2056: "usage limit exceeded",
}


@lru_cache(maxsize=1)
def sample_video() -> bytes:
    """A real (tiny) MP4, rendered once per test session, as MiniMax's "output_aigc.mp4"."""
    with tempfile.TemporaryDirectory(prefix="kyma-minimax-double-") as folder:
        path = Path(folder) / "output_aigc.mp4"
        render_mp4(path, 1.0, seed=2)
        return path.read_bytes()


class Endpoint(StrEnum):
    CREATE = "create"
    QUERY = "query"
    RETRIEVE = "retrieve"
    FILE = "file"


class FaultKind(StrEnum):
    HTTP = "http"
    CODE = "code"
    SLOW = "slow"
    MALFORMED = "malformed"
    DROP = "drop"


@dataclass(frozen=True)
class Fault:
    """One scripted misbehaviour, applied to one request of an endpoint."""

    kind: FaultKind
    status: int = 200
    code: int = 0
    status_msg: str | None = None
    seconds: float = 0.0
    retry_after: str | None = None

    @classmethod
    def http(cls, status: int, *, retry_after: str | None = None) -> "Fault":
        """A non-2xx answer: 429 with ``base_resp`` 1002, or a gateway's HTML error page."""
        return cls(FaultKind.HTTP, status=status, retry_after=retry_after)

    @classmethod
    def base_resp(cls, code: int, *, status_msg: str | None = None) -> "Fault":
        """HTTP 200 with a non-zero ``base_resp.status_code``, MiniMax's usual error shape."""
        return cls(FaultKind.CODE, code=code, status_msg=status_msg)

    @classmethod
    def slow(cls, seconds: float) -> "Fault":
        """Answer normally, but only after ``seconds`` (the work is done regardless)."""
        return cls(FaultKind.SLOW, seconds=seconds)

    @classmethod
    def malformed(cls) -> "Fault":
        """HTTP 200, ``application/json``, a truncated body."""
        return cls(FaultKind.MALFORMED)

    @classmethod
    def drop(cls) -> "Fault":
        """Start a response, then close the connection mid-body (a reset)."""
        return cls(FaultKind.DROP)


@dataclass(frozen=True)
class TaskScript:
    """How a newly created task progresses, one step per query."""

    #: Queries answered with a running status (Preparing, Queueing, then Processing).
    running_polls: int = 1
    #: End in ``Fail``; ``fail_code`` goes in ``base_resp`` (0: a plain Fail).
    fail: bool = False
    fail_code: int = 0
    never_finish: bool = False


@dataclass
class Task:
    task_id: str
    file_id: str
    body: dict[str, Any]
    script: TaskScript
    polls: int = 0


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]
    #: Lower-case names; the Authorization value is replaced by a verdict, never the key.
    headers: dict[str, str]
    body: Any


@dataclass
class _SignedUrl:
    file_id: str
    url: str
    expires_at: float
    uses_left: int | None


@dataclass
class _State:
    requests: list[RecordedRequest] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    tasks: dict[str, Task] = field(default_factory=dict)
    faults: dict[Endpoint, deque[Fault]] = field(
        default_factory=lambda: {endpoint: deque() for endpoint in Endpoint}
    )
    urls: dict[str, _SignedUrl] = field(default_factory=dict)
    last_url: dict[str, str] = field(default_factory=dict)
    trace_ids: list[str] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0


class MiniMaxDouble:
    """The double; an ASGI app. Tests read ``requests``, ``violations``, ``tasks`` and
    ``max_in_flight`` and script ``task_script``, faults and URL expiry."""

    def __init__(self, api_key: str, *, video: bytes) -> None:
        self._api_key = api_key
        self.video = video
        self._signing_key = secrets.token_bytes(32)
        self._ids = itertools.count(106_916_112_212_032)
        self._app = Starlette(
            routes=[
                Route("/v1/video_generation", self._create, methods=_ALL_METHODS),
                Route("/v1/query/video_generation", self._query, methods=_ALL_METHODS),
                Route("/v1/files/retrieve", self._retrieve, methods=_ALL_METHODS),
                Route("/files/{file_id}/{name}", self._file, methods=_ALL_METHODS),
                Route("/{path:path}", self._unknown, methods=_ALL_METHODS),
            ]
        )
        self.reset()

    def reset(self) -> None:
        """Forget everything a test did (the server is shared by a module's tests)."""
        self._state = _State()
        self.task_script = TaskScript()
        self.url_ttl_seconds = DEFAULT_URL_TTL_SECONDS
        self.url_max_uses: int | None = None
        #: The next N retrievals hand out the file's previous URL again instead of a fresh one
        #: (MiniMax may well re-serve one URL until it expires; unverified).
        self.stale_retrieves = 0
        #: Retrievals hand out this URL instead of a signed one on the double's file host (an
        #: address the rehost must refuse, say).
        self.download_url: str | None = None

    @property
    def requests(self) -> list[RecordedRequest]:
        return self._state.requests

    @property
    def violations(self) -> list[str]:
        return self._state.violations

    @property
    def tasks(self) -> dict[str, Task]:
        return self._state.tasks

    @property
    def trace_ids(self) -> list[str]:
        return self._state.trace_ids

    @property
    def max_in_flight(self) -> int:
        return self._state.max_in_flight

    def requests_to(self, endpoint: Endpoint) -> list[RecordedRequest]:
        return [r for r in self.requests if _endpoint_of(r.path) is endpoint]

    def take_violations(self) -> list[str]:
        """Return and clear the violations, for tests that provoke one on purpose."""
        taken = list(self.violations)
        self.violations.clear()
        return taken

    def inject(self, endpoint: Endpoint, fault: Fault, *, times: int = 1) -> None:
        """The next ``times`` requests to ``endpoint`` misbehave as ``fault`` says."""
        self._state.faults[endpoint].extend([fault] * times)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        state = self._state
        state.in_flight += 1
        state.max_in_flight = max(state.max_in_flight, state.in_flight)
        try:
            await self._app(scope, receive, send)
        finally:
            state.in_flight -= 1

    # Endpoints

    async def _create(self, request: Request) -> Response:
        body = await self._record(request)
        return await self._api(
            request,
            Endpoint.CREATE,
            "POST",
            lambda: _create_problems(request, body),
            lambda: self._new_task(body),
        )

    async def _query(self, request: Request) -> Response:
        await self._record(request)
        return await self._api(
            request,
            Endpoint.QUERY,
            "GET",
            lambda: self._query_problems(request),
            lambda: self._task_answer(request.query_params["task_id"]),
        )

    async def _retrieve(self, request: Request) -> Response:
        await self._record(request)
        return await self._api(
            request,
            Endpoint.RETRIEVE,
            "GET",
            lambda: self._retrieve_problems(request),
            lambda: self._file_answer(request),
        )

    async def _file(self, request: Request) -> Response:
        await self._record(request)
        if "authorization" in request.headers:
            self._violate(request, "the API key was sent to the file host")
        fault = self._next_fault(Endpoint.FILE)
        if fault is not None:
            early = await _apply(fault, self._trace_id())
            if early is not None:
                return early
        return self._serve_file(request)

    async def _unknown(self, request: Request) -> Response:
        await self._record(request)
        self._violate(request, "no such MiniMax endpoint")
        return JSONResponse({"detail": "Not Found"}, status_code=404)

    async def _api(
        self,
        request: Request,
        endpoint: Endpoint,
        method: str,
        problems: Callable[[], list[str]],
        answer: Callable[[], dict[str, Any]],
    ) -> Response:
        """The checks and faults every API call goes through, in the real API's order:
        authentication, then parameters, then (scripted) trouble, then the answer."""
        trace_id = self._trace_id()
        if request.method != method:
            self._violate(request, f"MiniMax expects {method}")
            return JSONResponse({"detail": "Method Not Allowed"}, status_code=405)
        auth_code = self._auth_code(request)
        if auth_code:
            self._violate(request, "missing or wrong Authorization: Bearer <key>")
            return _base_resp_only(auth_code, trace_id)
        found = problems()
        if found:
            for problem in found:
                self._violate(request, problem)
            return _base_resp_only(2013, trace_id, f"invalid params, {found[0]}")
        fault = self._next_fault(endpoint)
        if fault is not None:
            early = await _apply(fault, trace_id)
            if early is not None:
                return early
        return _json({"base_resp": _ok(), **answer()}, trace_id)

    # Behaviour

    def _new_task(self, body: dict[str, Any]) -> dict[str, Any]:
        task = Task(
            task_id=str(next(self._ids)),
            file_id=str(next(self._ids)),
            body=body,
            script=self.task_script,
        )
        self.tasks[task.task_id] = task
        return {"task_id": task.task_id}

    def _task_answer(self, task_id: str) -> dict[str, Any]:
        task = self.tasks[task_id]
        poll = task.polls
        task.polls += 1
        script = task.script
        if script.never_finish or poll < script.running_polls:
            running = RUNNING_STATUSES[min(poll, len(RUNNING_STATUSES) - 1)]
            return {"task_id": task_id, "status": running}
        if script.fail:
            # The failure's code travels in the answer's own base_resp.
            return {"task_id": task_id, "status": "Fail", "base_resp": _ok(script.fail_code)}
        width, height = _SIZES[task.body.get("resolution", "768P")]
        return {
            "task_id": task_id,
            "status": "Success",
            "file_id": task.file_id,
            "video_width": width,
            "video_height": height,
        }

    def _file_answer(self, request: Request) -> dict[str, Any]:
        file_id = request.query_params["file_id"]
        url = self.download_url or self._download_url(str(request.base_url).rstrip("/"), file_id)
        return {
            "file": {
                "file_id": int(file_id),
                "bytes": len(self.video),
                "created_at": int(time.time()),
                "filename": "output_aigc.mp4",
                "purpose": "video_generation",
                "download_url": url,
            }
        }

    def _download_url(self, origin: str, file_id: str) -> str:
        previous = self._state.last_url.get(file_id)
        if self.stale_retrieves and previous is not None:
            self.stale_retrieves -= 1
            return previous
        expires = time.time() + self.url_ttl_seconds
        signature = self._sign(file_id, expires)
        query = urlencode({"Expires": f"{expires:.3f}", "Signature": signature})
        url = f"{origin}/files/{file_id}/output_aigc.mp4?{query}"
        self._state.urls[signature] = _SignedUrl(file_id, url, expires, self.url_max_uses)
        self._state.last_url[file_id] = url
        return url

    def _serve_file(self, request: Request) -> Response:
        signed = self._state.urls.get(request.query_params.get("Signature", ""))
        if signed is None or signed.file_id != request.path_params["file_id"]:
            self._violate(request, "download URL was not issued by retrieve")
            return _oss_error(403, "SignatureDoesNotMatch", "The signature does not match.")
        if time.time() >= signed.expires_at or signed.uses_left == 0:
            # Expected traffic, not a violation: an adapter may hold an expired URL.
            return _oss_error(403, "AccessDenied", "Request has expired.")
        if signed.uses_left is not None:
            signed.uses_left -= 1
        return Response(self.video, media_type="video/mp4")

    # Checks

    def _auth_code(self, request: Request) -> int:
        header = request.headers.get("authorization")
        if header is None:
            return 1004
        expected = f"Bearer {self._api_key}"
        return 0 if hmac.compare_digest(header.encode(), expected.encode()) else 1004

    def _query_problems(self, request: Request) -> list[str]:
        task_id = request.query_params.get("task_id")
        if set(request.query_params) != {"task_id"}:
            return ["query takes exactly one parameter, task_id"]
        if task_id not in self.tasks:
            return [f"task_id {task_id!r} is not a task of this account"]
        return []

    def _retrieve_problems(self, request: Request) -> list[str]:
        file_id = request.query_params.get("file_id")
        if set(request.query_params) != {"file_id"}:
            return ["retrieve takes exactly one parameter, file_id"]
        known = {task.file_id for task in self.tasks.values() if _succeeded(task)}
        if file_id not in known:
            return [f"file_id {file_id!r} is not a finished video of this account"]
        return []

    # Plumbing

    async def _record(self, request: Request) -> Any:
        raw = await request.body()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode(errors="replace")
        headers = {name: value for name, value in request.headers.items()}
        if "authorization" in headers:
            verdict = "valid" if self._auth_code(request) == 0 else "not the account's key"
            headers["authorization"] = f"Bearer <{verdict}>"
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

    def _next_fault(self, endpoint: Endpoint) -> Fault | None:
        queue = self._state.faults[endpoint]
        return queue.popleft() if queue else None

    def _trace_id(self) -> str:
        trace_id = secrets.token_hex(16)
        self.trace_ids.append(trace_id)
        return trace_id

    def _sign(self, file_id: str, expires: float) -> str:
        message = f"{file_id}:{expires:.3f}".encode()
        return hmac.new(self._signing_key, message, hashlib.sha256).hexdigest()


def _create_problems(request: Request, body: Any) -> list[str]:
    """Everything MiniMax would refuse in a create-task request (reference §3.2)."""
    if request.headers.get("content-type", "").split(";")[0] != "application/json":
        return ["Content-Type must be application/json"]
    if not isinstance(body, dict):
        return ["the body must be a JSON object"]
    problems = [_field_problem(name, value) for name, value in body.items()]
    found = [problem for problem in problems if problem]
    return found or _semantic_problems(body)


def _field_problem(name: str, value: Any) -> str | None:
    expected = FIELDS.get(name)
    if expected is None:
        return f"{name!r} is not a field of the create-task API"
    if expected is int and isinstance(value, bool):
        return f"{name} must be an integer, not a boolean"
    if not isinstance(value, expected):
        return f"{name} must be a JSON {expected.__name__}, not {type(value).__name__}"
    is_image = name in {"first_frame_image", "last_frame_image"}
    if is_image and isinstance(value, str) and not _image_ref(value):
        return f"{name} must be an https URL or a data:image/ URL"
    if name == "callback_url":
        return "callback_url is not modelled by this double"
    return None


def _semantic_problems(body: dict[str, Any]) -> list[str]:
    problems = []
    if body.get("model") != MODEL:
        problems.append(f"model must be {MODEL!r} (the only model this double serves)")
    prompt = body.get("prompt")
    with_image = "first_frame_image" in body
    if prompt is None and not with_image:
        problems.append("prompt is required for text-to-video")
    if isinstance(prompt, str) and len(prompt) > MAX_PROMPT_CHARS:
        problems.append(f"prompt is longer than {MAX_PROMPT_CHARS} characters")
    duration = body.get("duration", 6)
    resolution = body.get("resolution", "768P")
    if duration not in DURATIONS:
        problems.append(f"duration must be 6 or 10, not {duration!r}")
    if resolution not in RESOLUTIONS:
        problems.append(f"resolution must be one of {RESOLUTIONS}, not {resolution!r}")
    if resolution == "512P" and not with_image:
        problems.append("512P is image-to-video only")
    if resolution == "1080P" and duration != 6:
        problems.append("1080P accepts only 6 s")
    return problems


def _image_ref(value: str) -> bool:
    return value.startswith("data:image/") or (
        value.startswith("https://") and len(value) > len("https://")
    )


def _succeeded(task: Task) -> bool:
    script = task.script
    finished = not script.never_finish and task.polls > script.running_polls
    return finished and not script.fail


def _endpoint_of(path: str) -> Endpoint | None:
    return {
        "/v1/video_generation": Endpoint.CREATE,
        "/v1/query/video_generation": Endpoint.QUERY,
        "/v1/files/retrieve": Endpoint.RETRIEVE,
    }.get(path, Endpoint.FILE if path.startswith("/files/") else None)


def _ok(code: int = 0, message: str | None = None) -> dict[str, Any]:
    return {"status_code": code, "status_msg": message or STATUS_MESSAGES.get(code, "error")}


def _json(body: dict[str, Any], trace_id: str, status: int = 200) -> Response:
    return JSONResponse(body, status_code=status, headers={"Trace-Id": trace_id})


def _base_resp_only(code: int, trace_id: str, message: str | None = None) -> Response:
    return _json({"base_resp": _ok(code, message)}, trace_id)


def _oss_error(status: int, code: str, message: str) -> Response:
    body = f"<?xml version='1.0'?><Error><Code>{code}</Code><Message>{message}</Message></Error>"
    return Response(body, status_code=status, media_type="application/xml")


async def _apply(fault: Fault, trace_id: str) -> Response | None:
    """The fault's answer, or None to answer normally (after a slow fault's delay)."""
    if fault.kind is FaultKind.SLOW:
        await asyncio.sleep(fault.seconds)
        return None
    if fault.kind is FaultKind.CODE:
        return _base_resp_only(fault.code, trace_id, fault.status_msg)
    if fault.kind is FaultKind.MALFORMED:
        truncated = '{"base_resp": {"status_code": 0, "status_msg": "succ'
        return Response(truncated, media_type="application/json", headers={"Trace-Id": trace_id})
    if fault.kind is FaultKind.DROP:
        return DroppedResponse(b'{"base_resp')
    return _http_fault(fault, trace_id)


def _http_fault(fault: Fault, trace_id: str) -> Response:
    if fault.status == 429:
        headers = {"Trace-Id": trace_id}
        if fault.retry_after is not None:
            headers["Retry-After"] = fault.retry_after
        body = {"base_resp": _ok(1002)}
        return JSONResponse(body, status_code=429, headers=headers)
    # A gateway in front of the API answers with its own HTML page and no Trace-Id.
    page = f"<html><body><h1>{fault.status} Gateway Error</h1></body></html>"
    return Response(page, status_code=fault.status, media_type="text/html")
