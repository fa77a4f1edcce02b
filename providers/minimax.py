"""MiniMax (Hailuo-02) video generation over MiniMax's REST API.

Three calls make a job (``shared/reference/providers.md`` section 3): ``POST /v1/video_generation``
creates a task and returns its ``task_id``; ``GET /v1/query/video_generation`` reports
``Preparing``/``Queueing``/``Processing``/``Success``/``Fail`` and, on success, a ``file_id``;
``GET /v1/files/retrieve`` turns the ``file_id`` into a signed ``download_url`` that lives a few
hours. So a finished job's :class:`MediaRef` is ``minimax-file://<file_id>``, a reference rather
than a URL: :meth:`MiniMaxProvider.open_media` retrieves a fresh URL right before downloading,
and retrieves once more if the file host says that URL has expired.

MiniMax reports most failures as HTTP 200 with a non-zero ``base_resp.status_code``, so every
answer's ``base_resp`` is read. Codes and HTTP statuses are classified once, here, into
:class:`ProviderError`: rate limits are retryable with a back-off hint (they slow jobs down,
never fail them); transient server trouble is retryable; bad parameters, content flags and
account problems are not.

The API key lives in a :class:`SecretStr` and is unwrapped only into the ``Authorization``
header of requests to the API host. It is never logged, never put in a message, and never sent
to the file host (downloads go through the injected, SSRF-guarded :data:`MediaFetcher`).
MiniMax's ``Trace-Id`` response header is logged and quoted in errors for support tickets.

Submits are not idempotent upstream: a submit that timed out may still have created a task,
and the activity's retry then creates (and MiniMax bills) a second one. MiniMax offers no
idempotency key to close that window.
"""

import logging
import re
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Generator, Mapping
from dataclasses import dataclass
from typing import Any, NoReturn

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

DEFAULT_BASE_URL = "https://api.minimax.io"
MEDIA_SCHEME = "minimax-file://"

#: MiniMax recommends polling a task about every 10 s.
POLL_HINT_SECONDS = 10.0
#: Back-off after a rate limit without a Retry-After: Hailuo-02 submits are limited to 5 RPM
#: (one slot every 12 s), so 30 s lets a burst drain instead of hammering the limiter.
RATE_LIMIT_BACKOFF_SECONDS = 30.0
#: Growth and plan-window limits clear more slowly than the per-minute limiter.
SLOW_LIMIT_BACKOFF_SECONDS = 60.0
#: Bounds on a server-sent Retry-After, so a bogus header neither spins nor stalls a job.
MIN_RETRY_AFTER_SECONDS = 1.0
MAX_RETRY_AFTER_SECONDS = 300.0
MAX_PROMPT_CHARS = 2000
CONNECT_TIMEOUT_SECONDS = 10.0

#: What MiniMax-Hailuo-02 accepts (reference 3.2): resolution -> (durations, needs an image).
_MATRIX: Mapping[str, Mapping[str, tuple[frozenset[int], bool]]] = {
    "MiniMax-Hailuo-02": {
        "512P": (frozenset({6, 10}), True),
        "768P": (frozenset({6, 10}), False),
        "1080P": (frozenset({6}), False),
    }
}
#: MiniMax's default resolution for Hailuo when the body names none.
_DEFAULT_RESOLUTION = "768P"
#: Body fields the adapter fills from the request itself; params may not override them.
_ADAPTER_FIELDS = frozenset({"model", "prompt", "duration"})

_RUNNING = frozenset({"preparing", "queueing", "processing"})
_FAILED = frozenset({"fail", "failed"})
_SUCCEEDED = "success"
#: A signed download URL that has expired is refused with one of these by the file host.
_EXPIRED_URL_STATUSES = frozenset({403, 410})
_FILE_ID = re.compile(r"[0-9A-Za-z_-]{1,64}")
_MAX_SHOWN_CHARS = 200


@dataclass(frozen=True)
class _Class:
    """How one ``base_resp`` code is handled."""

    code: ErrorCode
    retryable: bool
    what: str
    back_off: float | None = None


_RATE_LIMITED = "rate limited by MiniMax"
_ACCOUNT = "check KYMA_MINIMAX_API_KEY and the MiniMax account"

_CODES: Mapping[int, _Class] = {
    1000: _Class(ErrorCode.PROVIDER_ERROR, True, "MiniMax had an unknown error"),
    1001: _Class(ErrorCode.PROVIDER_ERROR, True, "MiniMax timed out"),
    1002: _Class(ErrorCode.PROVIDER_ERROR, True, _RATE_LIMITED, RATE_LIMIT_BACKOFF_SECONDS),
    1004: _Class(
        ErrorCode.UPSTREAM_REJECTED,
        False,
        "MiniMax authentication failed: the API key is wrong or belongs to the other region's "
        f"host (api.minimax.io vs api.minimaxi.com); {_ACCOUNT}",
    ),
    1008: _Class(
        ErrorCode.UPSTREAM_REJECTED, False, f"the MiniMax account balance is too low; {_ACCOUNT}"
    ),
    1024: _Class(ErrorCode.PROVIDER_ERROR, True, "MiniMax had an internal error"),
    1026: _Class(
        ErrorCode.CONTENT_REJECTED, False, "MiniMax flagged the prompt or image as sensitive"
    ),
    1027: _Class(ErrorCode.CONTENT_REJECTED, False, "MiniMax flagged the generated video"),
    1033: _Class(ErrorCode.PROVIDER_ERROR, True, "MiniMax had a system error"),
    1039: _Class(ErrorCode.PROVIDER_ERROR, True, _RATE_LIMITED, RATE_LIMIT_BACKOFF_SECONDS),
    1041: _Class(ErrorCode.PROVIDER_ERROR, True, _RATE_LIMITED, RATE_LIMIT_BACKOFF_SECONDS),
    1042: _Class(
        ErrorCode.UPSTREAM_REJECTED,
        False,
        "MiniMax refused the prompt: too many invisible characters",
    ),
    2013: _Class(ErrorCode.UPSTREAM_REJECTED, False, "MiniMax refused the parameters"),
    2038: _Class(
        ErrorCode.UPSTREAM_REJECTED,
        False,
        f"the MiniMax account needs real-name verification; {_ACCOUNT}",
    ),
    2045: _Class(ErrorCode.PROVIDER_ERROR, True, _RATE_LIMITED, SLOW_LIMIT_BACKOFF_SECONDS),
    2049: _Class(
        ErrorCode.UPSTREAM_REJECTED, False, f"MiniMax says the API key is invalid; {_ACCOUNT}"
    ),
    2056: _Class(ErrorCode.PROVIDER_ERROR, True, _RATE_LIMITED, SLOW_LIMIT_BACKOFF_SECONDS),
}
#: Codes MiniMax's table does not list: stop rather than guess, and refund the job.
_UNKNOWN_CODE = _Class(ErrorCode.PROVIDER_ERROR, False, "MiniMax answered with an unknown code")
_CONTENT_CODES = frozenset({1026, 1027})


class _BearerAuth(httpx.Auth):
    """Adds the key per request, so it is not stored in the client's default headers (where a
    debugging ``repr`` or a copied client could expose it)."""

    def __init__(self, api_key: SecretStr) -> None:
        self._api_key = api_key

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self._api_key.get_secret_value()}"
        yield request

    def __repr__(self) -> str:
        return "_BearerAuth(api_key=SecretStr('**********'))"


@dataclass(frozen=True)
class _Answer:
    """One parsed API answer: its JSON object, ``base_resp`` and where to look it up."""

    body: Mapping[str, Any]
    code: int
    status_msg: str
    trace_id: str | None


class MiniMaxProvider:
    """The :class:`~providers.base.Provider` for MiniMax's Hailuo models (stateless: any
    instance can follow any task, since MiniMax keeps the state)."""

    name = ProviderName.MINIMAX
    simulated = False

    def __init__(
        self,
        *,
        api_key: SecretStr,
        base_url: str = DEFAULT_BASE_URL,
        fetch_media: MediaFetcher,
        timeout_seconds: float = 30.0,
    ) -> None:
        self._api_key = api_key
        self._base_url = base_url.rstrip("/")
        self._fetch_media = fetch_media
        # trust_env (httpx's default) honours SSL_CERT_FILE/SSL_CERT_DIR and HTTPS_PROXY, as a
        # deployment behind an egress proxy or pointed at a local double needs.
        self._client = httpx.AsyncClient(
            base_url=self._base_url,
            auth=_BearerAuth(api_key),
            headers={"Accept": "application/json"},
            timeout=httpx.Timeout(
                timeout_seconds, connect=min(CONNECT_TIMEOUT_SECONDS, timeout_seconds)
            ),
            follow_redirects=False,
            trust_env=True,
        )

    def __repr__(self) -> str:
        return f"MiniMaxProvider(base_url={self._base_url!r})"

    async def aclose(self) -> None:
        """Close the connection pool (the worker calls this on shutdown)."""
        await self._client.aclose()

    async def submit(self, request: SubmitRequest) -> str:
        """Create the task; impossible combinations are refused before any call, because
        MiniMax would refuse them anyway and a clear local message beats a generic 2013."""
        body = _create_body(request)
        answer = await self._call("POST", "/v1/video_generation", "submit", json=body)
        _raise_for_code(answer, "submit")
        task_id = answer.body.get("task_id")
        if isinstance(task_id, int) and not isinstance(task_id, bool):
            task_id = str(task_id)
        if not isinstance(task_id, str) or not task_id:
            raise _malformed("submit", "no task_id", answer.trace_id)
        logger.info("MiniMax task %s created for job %s", task_id, request.job_id)
        return task_id

    async def status(self, job: UpstreamJob) -> UpstreamStatus:
        """One query: running (look again in ~10 s, as MiniMax recommends), succeeded with a
        ``minimax-file://`` reference, or failed with the reason classified."""
        answer = await self._call(
            "GET",
            "/v1/query/video_generation",
            "status",
            params={"task_id": job.request_id},
        )
        state = str(answer.body.get("status", "")).lower()
        if state in _FAILED:
            return _failed_status(answer)
        _raise_for_code(answer, "status")
        if state in _RUNNING:
            return UpstreamStatus(
                state=UpstreamState.RUNNING, retry_after_seconds=POLL_HINT_SECONDS
            )
        if state == _SUCCEEDED:
            file_id = _file_id_of(answer.body.get("file_id"))
            if file_id is None:
                raise _malformed("status", "Success without a usable file_id", answer.trace_id)
            media = MediaRef(url=f"{MEDIA_SCHEME}{file_id}", content_type="video/mp4")
            return UpstreamStatus(state=UpstreamState.SUCCEEDED, media=media)
        shown = _shown(str(answer.body.get("status")))
        raise _malformed("status", f"unknown task status {shown!r}", answer.trace_id)

    async def cancel(self, job: UpstreamJob) -> None:
        """MiniMax documents no way to cancel a video task, so there is nothing to call; the
        task runs to its end upstream (and MiniMax may bill it)."""
        logger.info("MiniMax has no cancel endpoint; task %s runs to completion", job.request_id)

    async def open_media(self, job: UpstreamJob, media: MediaRef) -> AsyncIterator[bytes]:
        """Stream the video: a fresh signed URL is retrieved right before downloading, and once
        more if the file host says that URL has expired (403/410) before any byte arrived."""
        file_id = _file_id_from_ref(media)
        for attempt in range(2):
            url = await self._download_url(file_id)
            chunks = self._fetch_media(url)
            started = False
            try:
                async for chunk in chunks:
                    started = True
                    yield chunk
                return
            except MediaFetchError as error:
                if attempt == 0 and not started and error.status_code in _EXPIRED_URL_STATUSES:
                    logger.info(
                        "MiniMax download URL of file %s expired; retrieving again", file_id
                    )
                    continue
                raise ProviderError(
                    ErrorCode.REHOST_FAILED,
                    f"downloading MiniMax file {file_id} failed: {error}",
                    retryable=error.retryable,
                ) from error
            finally:
                # Close the download now (not whenever it is garbage collected) when the
                # consumer stops early or the stream fails.
                if isinstance(chunks, AsyncGenerator):
                    await chunks.aclose()

    async def _download_url(self, file_id: str) -> str:
        answer = await self._call(
            "GET", "/v1/files/retrieve", "file retrieve", params={"file_id": file_id}
        )
        _raise_for_code(answer, "file retrieve")
        file = answer.body.get("file")
        url = file.get("download_url") if isinstance(file, dict) else None
        if not isinstance(url, str) or not url:
            raise _malformed("file retrieve", "no download_url", answer.trace_id)
        return url

    async def _call(
        self,
        method: str,
        path: str,
        operation: str,
        *,
        params: dict[str, str] | None = None,
        json: dict[str, JsonValue] | None = None,
    ) -> _Answer:
        """One request; transport trouble and non-JSON or non-2xx answers become
        :class:`ProviderError`, a JSON answer with ``base_resp`` is returned for the caller to
        judge (a ``Fail`` task also carries a non-zero code)."""
        try:
            response = await self._client.request(method, path, params=params, json=json)
        except httpx.UnsupportedProtocol as exc:
            raise ProviderError(
                ErrorCode.PROVIDER_ERROR,
                f"MiniMax {operation}: cannot reach {self._base_url} ({exc}); "
                "check KYMA_MINIMAX_BASE_URL",
                retryable=False,
            ) from exc
        except httpx.TimeoutException as exc:
            raise ProviderError(
                ErrorCode.PROVIDER_ERROR,
                f"MiniMax {operation} timed out ({type(exc).__name__})",
                retryable=True,
            ) from exc
        except httpx.TransportError as exc:
            raise ProviderError(
                ErrorCode.PROVIDER_ERROR,
                f"MiniMax {operation} failed in transit ({type(exc).__name__}: {_shown(str(exc))})",
                retryable=True,
            ) from exc
        return _parse(response, operation, self._scrub)

    def _scrub(self, text: str) -> str:
        """Server-supplied text with our key masked, should MiniMax ever echo it back."""
        return text.replace(self._api_key.get_secret_value(), "**********")


def from_settings(settings: Settings, fetch_media: MediaFetcher) -> MiniMaxProvider | None:
    """The MiniMax provider for this deployment, or None when no key is configured."""
    key = settings.minimax_api_key
    if key is None or not key.get_secret_value():
        return None
    return MiniMaxProvider(api_key=key, base_url=settings.minimax_base_url, fetch_media=fetch_media)


def _create_body(request: SubmitRequest) -> dict[str, JsonValue]:
    """The create-task body: pass-through params unchanged, then the fields the adapter owns."""
    _check_request(request)
    body: dict[str, JsonValue] = dict(request.params)
    body["model"] = request.endpoint
    body["prompt"] = request.prompt
    body["duration"] = request.duration_seconds
    if request.image_url is not None:
        body[request.image_field] = request.image_url
    return body


def _check_request(request: SubmitRequest) -> None:
    """Refuse what MiniMax would refuse (reference 3.2), before spending a call on it."""
    matrix = _MATRIX.get(request.endpoint)
    if matrix is None:
        _refuse(f"model {request.endpoint!r} is not one this adapter knows: {sorted(_MATRIX)}")
    owned = sorted((_ADAPTER_FIELDS | {request.image_field}) & request.params.keys())
    if owned:
        _refuse(f"params may not set {owned}; they come from the request itself")
    if len(request.prompt) > MAX_PROMPT_CHARS:
        _refuse(f"MiniMax accepts prompts of at most {MAX_PROMPT_CHARS} characters")
    resolution = request.params.get("resolution", _DEFAULT_RESOLUTION)
    if not isinstance(resolution, str) or resolution not in matrix:
        _refuse(f"resolution must be one of {sorted(matrix)} (uppercase P), not {resolution!r}")
    durations, needs_image = matrix[resolution]
    if request.duration_seconds not in durations:
        allowed = " or ".join(str(d) for d in sorted(durations))
        _refuse(
            f"{request.endpoint} at {resolution} accepts {allowed} s, not "
            f"{request.duration_seconds} s"
        )
    if needs_image and request.image_url is None:
        _refuse(f"{request.endpoint} at {resolution} is image-to-video only; pass image_url")


def _refuse(message: str) -> NoReturn:
    raise ProviderError(ErrorCode.UPSTREAM_REJECTED, message, retryable=False)


def _parse(response: httpx.Response, operation: str, scrub: Callable[[str], str]) -> _Answer:
    """Classify an HTTP answer; only a JSON object with ``base_resp`` comes back."""
    trace_id = response.headers.get("Trace-Id")
    body = _json_object(response)
    code, raw_msg = _base_resp(body)
    status_msg = _shown(scrub(raw_msg))
    # Trace-Id is what MiniMax support asks for; failures are worth seeing without DEBUG.
    level = logging.DEBUG if response.is_success and code == 0 else logging.WARNING
    logger.log(
        level,
        "MiniMax %s: HTTP %d, base_resp %s, Trace-Id %s",
        operation,
        response.status_code,
        code,
        trace_id,
    )
    if not response.is_success:
        raise _http_error(response, operation, code, status_msg, trace_id)
    if body is None or code is None:
        raise _malformed(operation, "not a JSON object with base_resp", trace_id)
    return _Answer(body=body, code=code, status_msg=status_msg, trace_id=trace_id)


def _json_object(response: httpx.Response) -> dict[str, Any] | None:
    try:
        body = response.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _base_resp(body: Mapping[str, Any] | None) -> tuple[int | None, str]:
    base = body.get("base_resp") if body is not None else None
    if not isinstance(base, dict):
        return None, ""
    code = base.get("status_code")
    if not isinstance(code, int) or isinstance(code, bool):
        return None, ""
    return code, str(base.get("status_msg", ""))


def _http_error(
    response: httpx.Response,
    operation: str,
    code: int | None,
    status_msg: str,
    trace_id: str | None,
) -> ProviderError:
    """Non-2xx: 429 is a rate limit and 5xx/408 are transient whatever the body says; other
    statuses are judged by their ``base_resp`` when they carry one."""
    status = response.status_code
    where = f"MiniMax {operation}: HTTP {status}{_trace(trace_id)}"
    if status == 429:
        wait = _retry_after(response) or RATE_LIMIT_BACKOFF_SECONDS
        return ProviderError(
            ErrorCode.PROVIDER_ERROR,
            f"{where}: {_RATE_LIMITED}; retrying in {wait:g} s",
            retryable=True,
            retry_after_seconds=wait,
        )
    if status >= 500 or status == 408:
        return ProviderError(ErrorCode.PROVIDER_ERROR, f"{where}: server trouble", retryable=True)
    if code is not None and code != 0:
        return _code_error(code, status_msg, operation, trace_id)
    if status in (401, 403):
        return ProviderError(
            ErrorCode.UPSTREAM_REJECTED,
            f"{where}: MiniMax refused the credentials; {_ACCOUNT}",
            retryable=False,
        )
    if status in (400, 422):
        return ProviderError(
            ErrorCode.UPSTREAM_REJECTED, f"{where}: MiniMax refused the request", retryable=False
        )
    return ProviderError(
        ErrorCode.PROVIDER_ERROR,
        f"{where}: unexpected answer; check KYMA_MINIMAX_BASE_URL",
        retryable=False,
    )


def _retry_after(response: httpx.Response) -> float | None:
    """Retry-After in seconds (the HTTP-date form is not worth parsing for a hint)."""
    value = response.headers.get("Retry-After", "")
    try:
        seconds = float(value)
    except ValueError:
        return None
    if seconds != seconds:  # NaN
        return None
    return min(max(seconds, MIN_RETRY_AFTER_SECONDS), MAX_RETRY_AFTER_SECONDS)


def _raise_for_code(answer: _Answer, operation: str) -> None:
    if answer.code != 0:
        raise _code_error(answer.code, answer.status_msg, operation, answer.trace_id)


def _code_error(code: int, status_msg: str, operation: str, trace_id: str | None) -> ProviderError:
    kind = _CODES.get(code, _UNKNOWN_CODE)
    message = f"MiniMax {operation}: {kind.what} (base_resp {code}: {status_msg!r})"
    message += _trace(trace_id)
    if kind.back_off is not None:
        message += f"; retrying in {kind.back_off:g} s"
    return ProviderError(
        kind.code, message, retryable=kind.retryable, retry_after_seconds=kind.back_off
    )


def _failed_status(answer: _Answer) -> UpstreamStatus:
    """A ``Fail`` task: content flags are the customer's input, anything else MiniMax's."""
    code = answer.code
    if code in _CONTENT_CODES:
        error_code, what = ErrorCode.CONTENT_REJECTED, _CODES[code].what
    else:
        error_code, what = ErrorCode.UPSTREAM_FAILED, "MiniMax failed the task"
    detail = f" (base_resp {code}: {answer.status_msg!r})" if code else ""
    return UpstreamStatus(
        state=UpstreamState.FAILED,
        error_code=error_code,
        error_message=f"{what}{detail}{_trace(answer.trace_id)}",
    )


def _malformed(operation: str, what: str, trace_id: str | None) -> ProviderError:
    return ProviderError(
        ErrorCode.PROVIDER_ERROR,
        f"MiniMax {operation}: malformed answer ({what}){_trace(trace_id)}",
        retryable=True,
    )


def _file_id_of(value: object) -> str | None:
    """``file_id`` is a string in query answers but int64 in the retrieve schema: accept both
    and keep the digits verbatim."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if isinstance(value, str) and _FILE_ID.fullmatch(value):
        return value
    return None


def _file_id_from_ref(media: MediaRef) -> str:
    file_id = (
        _file_id_of(media.url.removeprefix(MEDIA_SCHEME))
        if media.url.startswith(MEDIA_SCHEME)
        else None
    )
    if file_id is None:
        raise ProviderError(
            ErrorCode.REHOST_FAILED,
            f"{_shown(media.url)!r} is not a MiniMax file reference ({MEDIA_SCHEME}<file_id>)",
            retryable=False,
        )
    return file_id


def _trace(trace_id: str | None) -> str:
    return f" [Trace-Id {_shown(trace_id)}]" if trace_id else ""


def _shown(text: str) -> str:
    """Server-supplied text, bounded so a huge or hostile answer cannot flood logs."""
    return text if len(text) <= _MAX_SHOWN_CHARS else text[:_MAX_SHOWN_CHARS] + "..."
