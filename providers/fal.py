"""The fal.ai adapter: Kling and Seedance through fal's queue API, driven by ``fal-client``.

One call to fal per adapter call: ``submit`` posts the model input once, ``status`` looks once
(and, when fal says COMPLETED, fetches the result JSON once), ``cancel`` asks once. Waiting and
retrying belong to the durable runner, which records them; nothing here sleeps or loops.
``fal_client.AsyncClient``'s queue methods (``submit``, ``status``, ``result``, ``cancel``) build
the URLs, send the requests and parse the answers; ``subscribe`` is never used, and ``result`` is
only called after ``status`` has said COMPLETED, so its internal poll returns at once.

**Where requests go (``queue_url``).** fal-client addresses every queue call from the module
string ``fal_client.client.QUEUE_URL_FORMAT``: ``submit`` as ``QUEUE_URL_FORMAT + endpoint``, and
``status``/``result``/``cancel`` rebuilt from a request id as ``QUEUE_URL_FORMAT + owner/app/
requests/<id>`` (fal's documented addressing: the endpoint's sub-path is dropped). The string is
derived from ``FAL_QUEUE_RUN_HOST`` once, at import, and is https-only and process-wide.
Assigning it (what fal's own tests do) would make the URL a global: the last adapter built would
win for every adapter in the process, a test double's URL would leak into the next test, and any
other fal-client user would be redirected too. Instead each adapter gives fal-client its own
``httpx.AsyncClient`` (the one thing fal-client's ``AsyncClient`` draws every queue request from,
its ``_client``), whose transport re-roots requests addressed to fal-client's queue origin onto
``queue_url``. fal-client keeps building URLs exactly as it always does (so the request-id
rebuild after a restart is fal-client's, not a copy of it), the override is per instance, and
the transport refuses any request addressed elsewhere, so the key only ever travels to the
configured queue. The one private name this relies on, ``AsyncClient._client``, is pinned by
``fal-client<2``, checked at import, and exercised by the tests, which fail loudly if a request
stops reaching the double.

**Exactly once, and no duplicate paid submissions.** fal-client retries every call up to ten
times inside the call: on timeouts and dropped connections (re-sending a submission fal may
already have accepted, i.e. a second paid job), and on 408/409/429 and gateway 5xx with
sub-second backoff that ignores ``Retry-After``. The same transport ends each request at its
first outcome: it reads the whole (small JSON) answer itself, and raises a failure answer or a
transport error -- including one while reading the body -- as an exception type fal-client's
retry loop does not catch, so the adapter sees every answer and classifies it once.
(``start_timeout`` would stop only the timeout retries, not those after a dropped connection,
and would add a server-side deadline on queue wait that we do not want.) A submission whose
fate is unknown -- the request went out, then the answer timed out, was cut off or could not be
read -- is *not* retried: the error is permanent (``provider_error``, so the job is refunded)
and says fal may have accepted it. Failures that provably happened before fal got the request
(connecting, TLS, writing) are retryable, as are all failures of status, result and cancel,
which are reads or idempotent.

**Classification** (reference sections 1.3 and 5.6). Machine keys only -- the ``detail[].type`` of
model errors, the ``error_type`` of platform errors, and the HTTP status -- never ``msg``:

* 401/402/403: ``upstream_rejected``, permanent ("authentication failed"; never the key).
* a content-policy ``type`` (``content_policy_violation`` and kin): ``content_rejected``, permanent.
* 429: ``provider_error``, retryable after ``Retry-After`` (seconds or HTTP date) when present.
* 5xx, 408, 409, 499, ``runner_*``, ``request_timeout``, ``startup_timeout``, ``internal_error``,
  timeouts, dropped connections, unreadable answers: ``provider_error``, retryable.
* 400/422 and other 4xx (``detail`` lists, ``bad_request``): ``upstream_rejected``, permanent;
  404 (unknown endpoint or request): ``upstream_failed``, permanent.

A job fal reports COMPLETED with ``error``/``error_type`` is over: ``status`` returns FAILED with
the code above, taken from the result call (which answers with the model's own error) and the
status fields; a platform ``error_type`` gives ``provider_error`` (fal's infrastructure failed
it), a model's own 5xx ``upstream_failed``. A result without ``video.url`` is ``upstream_failed``.
Messages carry statuses, types and fal's text with any URL's query string removed.

**TLS.** The system trust store, replaced by ``SSL_CERT_FILE``/``SSL_CERT_DIR`` when set (OpenSSL
reads them), plus certifi's bundle when neither is set, so slim images without CA packages
still reach fal. ``HTTP(S)_PROXY`` is not honoured: point ``queue_url`` at a proxy instead.
"""

import asyncio
import email.utils
import json
import logging
import math
import os
import re
import ssl
from collections.abc import AsyncIterator, Awaitable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum, auto
from typing import Any, Self, TypeVar
from urllib.parse import urlsplit

import certifi
import fal_client
import fal_client.client
import httpx
from pydantic import JsonValue, SecretStr

from kyma_video.errors import ErrorCode
from kyma_video.settings import Settings
from providers.base import (
    MediaFetcher,
    MediaRef,
    ProviderError,
    SubmitRequest,
    UpstreamJob,
    UpstreamState,
    UpstreamStatus,
)
from providers.catalog import ProviderName
from providers.http_media import MediaFetchError

logger = logging.getLogger(__name__)

DEFAULT_QUEUE_URL = "https://queue.fal.run"

#: Transport failures that happen before fal has the whole request: resending cannot
#: duplicate a job. Anything else after sending (timeouts, resets) leaves the outcome unknown.
_UNDELIVERED = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
    httpx.WriteError,
    httpx.WriteTimeout,
    httpx.ProxyError,
)
#: fal-client's parsing of a 2xx answer that is not the JSON it expects (``json`` raises
#: ``JSONDecodeError``, a ``ValueError``; missing fields raise ``KeyError``).
_UNREADABLE = (ValueError, KeyError, TypeError)

#: fal platform (infrastructure) error types, reference section 1.3.
_PLATFORM_ERROR_TYPES = frozenset(
    {
        "request_timeout",
        "startup_timeout",
        "internal_error",
        "client_disconnected",
        "client_cancelled",
    }
)
#: Model error types that mean "try again later", from fal's error catalogue.
_TRANSIENT_MODEL_TYPES = frozenset(
    {"internal_server_error", "generation_timeout", "downstream_service_unavailable"}
)
#: Substrings of content-policy error types. fal documents ``content_policy_violation``; the
#: exact keys of Kling's and Seedance's moderation are unverified, so kin are matched too.
_MODERATION_MARKERS = ("content_policy", "moderation", "nsfw", "safety", "sensitive_content")
_TRANSIENT_STATUSES = frozenset({408, 409, 499})
_AUTH_STATUSES = frozenset({401, 402, 403})
_MAX_TEXT = 300
_URL_QUERY = re.compile(r"(https?://[^\s?#\"'<>]+)[?#][^\s\"'<>]*")

T = TypeVar("T")

if "_client" not in vars(fal_client.AsyncClient) or not hasattr(
    fal_client.client, "QUEUE_URL_FORMAT"
):  # pragma: no cover - a fal-client upgrade moved the seams this adapter relies on
    raise ImportError(
        "fal-client no longer draws queue requests from AsyncClient._client and "
        "QUEUE_URL_FORMAT; providers/fal.py must be adapted before this version is used"
    )


# The transport: one attempt per request, at the configured queue.


class _Answered(Exception):
    """fal (or something in front of it) answered with a non-2xx status."""

    def __init__(self, status_code: int, headers: httpx.Headers, body: bytes) -> None:
        super().__init__(f"HTTP {status_code}")
        self.status_code = status_code
        self.headers = headers
        self.body = body

    @classmethod
    async def read(cls, response: httpx.Response) -> Self:
        """The answer of an already-drained ``response`` (see ``_QueueTransport``)."""
        try:
            body = await response.aread()
        except httpx.DecodingError:
            body = b""
        return cls(response.status_code, response.headers, body)

    def json(self) -> object:
        try:
            return json.loads(self.body)
        except ValueError:
            return None


class _Unanswered(Exception):
    """No answer arrived; ``maybe_delivered`` says whether fal may have the request."""

    def __init__(self, error: httpx.TransportError) -> None:
        detail = str(error)
        super().__init__(type(error).__name__ + (f": {detail}" if detail else ""))
        self.maybe_delivered = not isinstance(error, _UNDELIVERED)


class _Misaddressed(Exception):
    """fal-client addressed a request outside the configured queue; it was not sent."""


class _QueueTransport(httpx.AsyncBaseTransport):
    """Sends each request fal-client makes exactly once, to ``queue_url``, within the adapter's
    timeout, and raises what fal-client's retry loop does not catch (see module docstring)."""

    def __init__(self, queue_url: str, timeout: httpx.Timeout) -> None:
        self._base = queue_url + "/"
        self._timeout = timeout.as_dict()
        # fal's backup-domain fallback (queue.fal.run -> queue.falrun.com, on connect failures
        # only) stays in place; it does nothing for any other host, such as a proxy.
        self._inner = fal_client.client.AsyncBackupDomainTransport(
            transport=httpx.AsyncHTTPTransport(verify=_tls_context())
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self._reroot(request)
        # fal-client asks for 120 s on status/result/cancel; one look must stay cheap.
        request.extensions["timeout"] = dict(self._timeout)
        try:
            response = await _drained(await self._inner.handle_async_request(request))
        except httpx.TransportError as error:
            raise _Unanswered(error) from error
        if response.is_success:
            return response
        raise await _Answered.read(response)

    async def aclose(self) -> None:
        await self._inner.aclose()

    def _reroot(self, request: httpx.Request) -> None:
        """Move a request addressed to fal-client's queue origin onto ``queue_url``, in place
        (so httpx's own request log names the host actually contacted)."""
        url = str(request.url)
        if url.startswith(self._base):
            return
        # Read at call time: whatever origin fal-client addresses now is the one to replace.
        origin = fal_client.client.QUEUE_URL_FORMAT
        if not url.startswith(origin):
            raise _Misaddressed(f"refused to send a request to {request.url.host}")
        request.url = httpx.URL(self._base + url[len(origin) :])
        request.headers["Host"] = request.url.netloc.decode("ascii")


async def _drained(response: httpx.Response) -> httpx.Response:
    """``response`` with its body already read off the connection.

    fal-client reads bodies after the transport returns, and retries when that read fails; a
    submission whose answer is cut off mid-body would be sent again. Reading it here (queue
    answers are small JSON) makes such a failure this transport's, raised as ``_Unanswered``.
    """
    try:
        raw = b"".join([chunk async for chunk in response.aiter_raw()])
    finally:
        await response.aclose()
    return httpx.Response(
        response.status_code,
        headers=response.headers,
        stream=httpx.ByteStream(raw),
        extensions=response.extensions,
    )


def _tls_context() -> ssl.SSLContext:
    """The system trust store (or ``SSL_CERT_FILE``/``SSL_CERT_DIR``, which OpenSSL reads in
    its place), plus certifi when no override is set, for images without CA packages."""
    context = ssl.create_default_context()
    if not (os.environ.get("SSL_CERT_FILE") or os.environ.get("SSL_CERT_DIR")):
        context.load_verify_locations(cafile=certifi.where())
    return context


async def _ready(value: T) -> T:
    return value


class _QueueClient(fal_client.AsyncClient):
    """fal-client's ``AsyncClient``, drawing its queue requests from our httpx client.

    fal-client never sees the key: it is a header of ``http``, which fal-client only sends
    requests through. ``key=None`` leaves fal-client's own credential lookup unused.
    """

    def __init__(self, http: httpx.AsyncClient, *, default_timeout: float) -> None:
        super().__init__(key=None, default_timeout=default_timeout)
        self._http = http

    @property
    def _client(self) -> Awaitable[httpx.AsyncClient]:
        return _ready(self._http)


# Classification.


class _Kind(Enum):
    AUTH = auto()
    CONTENT = auto()
    RATE_LIMITED = auto()
    #: fal's platform failed (``runner_*``, ``request_timeout``...): fal's infrastructure.
    PLATFORM = auto()
    #: A 5xx or similar without a platform type: a server (or the model) hiccupped.
    SERVER = auto()
    INVALID = auto()
    GONE = auto()
    FAILED = auto()


_RETRYABLE_KINDS = frozenset({_Kind.RATE_LIMITED, _Kind.PLATFORM, _Kind.SERVER})
_CALL_CODES = {
    _Kind.AUTH: ErrorCode.UPSTREAM_REJECTED,
    _Kind.CONTENT: ErrorCode.CONTENT_REJECTED,
    _Kind.RATE_LIMITED: ErrorCode.PROVIDER_ERROR,
    _Kind.PLATFORM: ErrorCode.PROVIDER_ERROR,
    _Kind.SERVER: ErrorCode.PROVIDER_ERROR,
    _Kind.INVALID: ErrorCode.UPSTREAM_REJECTED,
    _Kind.GONE: ErrorCode.UPSTREAM_FAILED,
    _Kind.FAILED: ErrorCode.UPSTREAM_FAILED,
}
#: A finished job's failure is final; the model's own 5xx means the model failed it.
_JOB_CODES = {**_CALL_CODES, _Kind.SERVER: ErrorCode.UPSTREAM_FAILED}


@dataclass(frozen=True)
class _Trouble:
    """What fal said went wrong, from an HTTP answer or a COMPLETED status."""

    status_code: int | None
    error_type: str | None
    detail_types: tuple[str, ...]
    summary: str
    retry_after: float | None = None

    @classmethod
    def from_answer(cls, answer: _Answered) -> "_Trouble":
        body = answer.json()
        detail = body.get("detail") if isinstance(body, dict) else None
        error_type = body.get("error_type") if isinstance(body, dict) else None
        if not isinstance(error_type, str):
            error_type = answer.headers.get("x-fal-error-type")
        if isinstance(body, dict):
            # Cancel answers carry their outcome in ``status`` rather than ``detail``.
            summary = _detail_summary(detail) or _clean(str(body.get("status") or ""))
        else:
            summary = _clean(answer.body.decode("utf-8", "replace"))
        return cls(
            status_code=answer.status_code,
            error_type=error_type,
            detail_types=_detail_types(detail),
            summary=summary,
            retry_after=_retry_after(answer.headers.get("retry-after")),
        )

    @classmethod
    def from_completed(cls, done: fal_client.Completed) -> "_Trouble":
        return cls(
            status_code=None,
            error_type=done.error_type,
            detail_types=(),
            summary=_clean(done.error or ""),
        )

    def explained_by(self, result: "_Trouble") -> "_Trouble":
        """This COMPLETED status's trouble, detailed by the result call's error answer."""
        return _Trouble(
            status_code=result.status_code,
            error_type=result.error_type or self.error_type,
            detail_types=result.detail_types,
            summary=result.summary or self.summary,
            retry_after=result.retry_after,
        )

    def kind(self) -> _Kind:
        status, error_type = self.status_code, self.error_type or ""
        types = (*self.detail_types, error_type)
        if status in _AUTH_STATUSES:
            return _Kind.AUTH
        if any(marker in key for key in types for marker in _MODERATION_MARKERS):
            return _Kind.CONTENT
        if status == 429:
            return _Kind.RATE_LIMITED
        if error_type.startswith("runner_") or error_type in _PLATFORM_ERROR_TYPES:
            return _Kind.PLATFORM
        if _TRANSIENT_MODEL_TYPES.intersection(types) or _server_trouble(status):
            return _Kind.SERVER
        if status == 404:
            return _Kind.GONE
        if error_type == "bad_request" or (status is not None and 400 <= status < 500):
            return _Kind.INVALID
        return _Kind.FAILED

    def describe(self) -> str:
        text = self.summary
        if self.error_type and self.error_type not in text:
            text = f"{text} [{self.error_type}]".strip()
        if self.status_code is None:
            return text or "no details given"
        return f"HTTP {self.status_code}: {text}" if text else f"HTTP {self.status_code}"


def _server_trouble(status: int | None) -> bool:
    return status is not None and (status >= 500 or status in _TRANSIENT_STATUSES)


def _call_error(trouble: _Trouble, what: str) -> ProviderError:
    """A failed call to fal, as the runner needs it: a code and whether to try again."""
    kind = trouble.kind()
    retryable = kind in _RETRYABLE_KINDS
    return ProviderError(
        _CALL_CODES[kind],
        _message(kind, trouble, what),
        retryable=retryable,
        retry_after_seconds=trouble.retry_after if retryable else None,
    )


def _job_failure(trouble: _Trouble, what: str) -> UpstreamStatus:
    """A job fal finished without a video: final, whatever its kind."""
    kind = trouble.kind()
    return UpstreamStatus(
        state=UpstreamState.FAILED,
        error_code=_JOB_CODES[kind],
        error_message=_message(kind, trouble, what),
    )


def _message(kind: _Kind, trouble: _Trouble, what: str) -> str:
    if kind is _Kind.AUTH:
        return (
            f"{what}: fal authentication failed ({trouble.describe()}); "
            "check the fal key and its permissions"
        )
    return f"{what}: {trouble.describe()}"


def _transient(what: str, cause: object) -> ProviderError:
    return ProviderError(
        ErrorCode.PROVIDER_ERROR, f"{what}: {cause}; worth trying again", retryable=True
    )


def _detail_types(detail: object) -> tuple[str, ...]:
    if not isinstance(detail, list):
        return ()
    return tuple(
        item["type"]
        for item in detail
        if isinstance(item, dict) and isinstance(item.get("type"), str)
    )


def _detail_summary(detail: object) -> str:
    """``detail`` as text: a string as is, a list as ``field: type (msg)`` items."""
    if isinstance(detail, str):
        return _clean(detail)
    if not isinstance(detail, list):
        return ""
    items = [_detail_item(item) for item in detail[:5] if isinstance(item, dict)]
    return _clean("; ".join(item for item in items if item))


def _detail_item(item: dict[str, Any]) -> str:
    location = item.get("loc")
    path = ".".join(str(p) for p in location if p != "body") if isinstance(location, list) else ""
    text = f"{path or 'input'}: {item.get('type', 'error')}"
    msg = item.get("msg")
    return text + (f" ({msg})" if isinstance(msg, str) and msg else "")


def _clean(text: str) -> str:
    """Text safe to show: URLs without their query strings (signatures), one line, bounded."""
    text = " ".join(_URL_QUERY.sub(r"\1", text).split())
    return text if len(text) <= _MAX_TEXT else text[: _MAX_TEXT - 3] + "..."


def _retry_after(value: str | None) -> float | None:
    """``Retry-After`` as seconds from now: a number of seconds or an HTTP date."""
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
    return max(0.0, seconds) if math.isfinite(seconds) else None


# The adapter.


class FalProvider:
    """fal.ai's queue API as a :class:`providers.base.Provider` (see the module docstring)."""

    name = ProviderName.FAL
    simulated = False

    def __init__(
        self,
        *,
        key: SecretStr,
        queue_url: str = DEFAULT_QUEUE_URL,
        fetch_media: MediaFetcher,
        request_timeout_seconds: float = 30.0,
    ) -> None:
        if not request_timeout_seconds > 0:
            raise ValueError("request_timeout_seconds must be positive")
        self._queue_url = _checked_queue_url(queue_url)
        self._fetch_media = fetch_media
        timeout = httpx.Timeout(request_timeout_seconds)
        self._http = httpx.AsyncClient(
            transport=_QueueTransport(self._queue_url, timeout),
            headers={
                "Authorization": f"Key {key.get_secret_value()}",
                "User-Agent": fal_client.client.USER_AGENT,
            },
            timeout=timeout,
        )
        self._fal = _QueueClient(self._http, default_timeout=request_timeout_seconds)
        # result() polls status before fetching; after COMPLETED that is one look, so two
        # requests' worth of time is plenty and anything longer is treated as a stall.
        self._result_budget = 2 * request_timeout_seconds

    def __repr__(self) -> str:
        return f"FalProvider(queue_url={self._queue_url!r})"

    async def aclose(self) -> None:
        """Close the connection pool (worker shutdown, tests)."""
        await self._http.aclose()

    async def submit(self, request: SubmitRequest) -> str:
        what = f"fal submit to {request.endpoint}"
        try:
            handle = await self._fal.submit(request.endpoint, _arguments(request))
            return handle.request_id
        except _Answered as answer:
            raise _call_error(_Trouble.from_answer(answer), what) from answer
        except _Unanswered as lost:
            if lost.maybe_delivered:
                raise _unknown_outcome(what, str(lost)) from lost
            raise _transient(what, lost) from lost
        except _Misaddressed as refused:
            raise _misaddressed(what, refused) from refused
        except _UNREADABLE as unreadable:
            raise _unknown_outcome(what, "an unreadable answer") from unreadable

    async def status(self, job: UpstreamJob) -> UpstreamStatus:
        what = f"fal status of request {job.request_id}"
        current = await self._ask(what, self._fal.status(job.endpoint, job.request_id))
        if not isinstance(current, fal_client.Completed):
            # Queued or InProgress. A queue position is no estimate of time (the jobs ahead
            # may take seconds or minutes), so the runner's own poll interval stands.
            return UpstreamStatus(state=UpstreamState.RUNNING)
        return await self._finished(job, current)

    async def cancel(self, job: UpstreamJob) -> None:
        """Best effort: fal's "already completed" and "not found" (4xx) end the matter."""
        what = f"fal cancel of request {job.request_id}"
        try:
            await self._ask(what, self._fal.cancel(job.endpoint, job.request_id))
        except ProviderError as error:
            if error.retryable:
                raise
            logger.info("%s: nothing to cancel (%s)", what, error.message)

    async def open_media(self, job: UpstreamJob, media: MediaRef) -> AsyncIterator[bytes]:
        """Stream fal's output through the injected, SSRF-guarded fetcher (no key is sent)."""
        try:
            async for chunk in self._fetch_media(media.url):
                yield chunk
        except MediaFetchError as error:
            raise ProviderError(
                ErrorCode.REHOST_FAILED,
                f"fal output of request {job.request_id}: {error}",
                retryable=error.retryable,
            ) from error

    async def _ask(self, what: str, call: Coroutine[Any, Any, T]) -> T:
        """Run one status/cancel call; every failure becomes a classified ProviderError."""
        try:
            return await call
        except _Answered as answer:
            raise _call_error(_Trouble.from_answer(answer), what) from answer
        except _Unanswered as lost:
            raise _transient(what, lost) from lost
        except _Misaddressed as refused:
            raise _misaddressed(what, refused) from refused
        except _UNREADABLE as unreadable:
            raise _transient(what, "an unreadable answer") from unreadable

    async def _finished(self, job: UpstreamJob, done: fal_client.Completed) -> UpstreamStatus:
        """A COMPLETED job: fetch its result once; a video, or why there is none."""
        what = f"fal request {job.request_id}"
        failed = done.error is not None or done.error_type is not None
        status_trouble = _Trouble.from_completed(done)
        try:
            async with asyncio.timeout(self._result_budget):
                output = await self._fal.result(job.endpoint, job.request_id)
        except _Answered as answer:
            trouble = _Trouble.from_answer(answer)
            if failed:
                # The result call answers with the model's own error: the richer account.
                return _job_failure(status_trouble.explained_by(trouble), what)
            error = _call_error(trouble, f"{what} result")
            if error.retryable:
                raise error from answer
            return _job_failure(trouble, what)
        except _Misaddressed as refused:
            raise _misaddressed(what, refused) from refused
        except (_Unanswered, TimeoutError, *_UNREADABLE) as lost:
            if failed:
                return _job_failure(status_trouble, what)
            cause = lost if isinstance(lost, _Unanswered) else "no readable result in time"
            raise _transient(f"{what} result", cause) from lost
        if failed:
            return _job_failure(status_trouble, what)
        return _delivered(output, what)


def _arguments(request: SubmitRequest) -> dict[str, JsonValue]:
    """The model's input JSON: pass-through and fixed params unchanged, then our fields.

    fal's durations are string enums (``"5"``). The first-frame field is set last so that a
    stray param of the same name cannot replace the image this job was admitted with.
    """
    arguments: dict[str, JsonValue] = dict(request.params)
    arguments["prompt"] = request.prompt
    arguments["duration"] = str(request.duration_seconds)
    if request.image_url is not None:
        arguments[request.image_field] = request.image_url
    return arguments


def _delivered(output: object, what: str) -> UpstreamStatus:
    video = output.get("video") if isinstance(output, dict) else None
    url = video.get("url") if isinstance(video, dict) else None
    if not isinstance(url, str) or not url:
        return UpstreamStatus(
            state=UpstreamState.FAILED,
            error_code=ErrorCode.UPSTREAM_FAILED,
            error_message=f"{what}: fal finished without a video in its result",
        )
    assert isinstance(video, dict)
    content_type = video.get("content_type")
    return UpstreamStatus(
        state=UpstreamState.SUCCEEDED,
        media=MediaRef(
            url=url, content_type=content_type if isinstance(content_type, str) else None
        ),
    )


def _unknown_outcome(what: str, cause: str) -> ProviderError:
    return ProviderError(
        ErrorCode.PROVIDER_ERROR,
        f"{what}: {cause} after the request was sent; fal may have accepted it, so it is not "
        "sent again (a second submission could be billed twice)",
        retryable=False,
    )


def _misaddressed(what: str, refused: _Misaddressed) -> ProviderError:
    return ProviderError(ErrorCode.PROVIDER_ERROR, f"{what}: {refused}", retryable=False)


def _checked_queue_url(url: str) -> str:
    """The queue base URL without a trailing slash; https only, as the key travels there."""
    parts = urlsplit(url)
    if (
        parts.scheme != "https"
        or not parts.hostname
        or parts.username is not None
        or parts.query
        or parts.fragment
    ):
        raise ValueError(
            "the fal queue URL must be https://host[:port][/path] without credentials, "
            "query or fragment"
        )
    return url.rstrip("/")


def from_settings(settings: Settings, fetch_media: MediaFetcher) -> FalProvider | None:
    """The fal adapter this deployment is configured for; None when no fal key is set."""
    if settings.fal_key is None:
        return None
    return FalProvider(
        key=settings.fal_key, queue_url=settings.fal_queue_url, fetch_media=fetch_media
    )
