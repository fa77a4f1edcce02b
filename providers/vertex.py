"""Google Vertex AI Veo (``veo-3``, ``veo-3-fast``) through ``google-genai`` in Vertex mode.

How one job maps onto Vertex AI:

* **submit** is one ``:predictLongRunning`` call. The returned operation name
  (``projects/…/operations/<id>``) is the request id: the only thing the workflow keeps, and
  all any worker needs to follow the job (the adapter holds no per-job state).
* **status** is one ``:fetchPredictOperation`` call per look.
* **open_media**: we never set ``storageUri``, so Veo returns the finished video *inline*, as
  base64 in the poll response. :meth:`VertexProvider.status` therefore answers with a
  reference (``vertex-inline://<operation>#<sample>``), never the bytes, and
  :meth:`VertexProvider.open_media`, which runs inside the rehost activity, fetches the
  operation again and streams the decoded bytes straight into blob storage. Video bytes never
  enter workflow history (Temporal payloads are capped at 2 MB; a clip is several MB).
* **cancel**: Vertex documents no way to stop a Veo operation, so jobs are abandoned.

Params (``SubmitRequest.params`` = the customer's pass-through params overlaid with the
catalog's fixed params) are forwarded unchanged in value:

* a param Veo knows, spelled as in REST (``aspectRatio``) or snake_case (``aspect_ratio``), goes
  through the typed ``GenerateVideosConfig``; its JSON type is checked first, because the
  SDK's pydantic model would otherwise silently coerce (``"42"`` to ``42``, ``"optimized"`` to
  ``"OPTIMIZED"``), so a wrong type is refused here as ``upstream_rejected``, without a call;
* a param the adapter must own is refused the same way: ``durationSeconds`` (set from the
  billed duration), ``sampleCount``/``number_of_videos`` (always 1: every sample is paid for),
  ``storageUri``/``output_gcs_uri`` (the video must come back inline) and ``pubsubTopic``
  (would point our project's job notifications at a customer-chosen topic);
* any other param is the provider's to judge: it is sent as-is inside ``parameters`` (through
  ``HttpOptions.extra_body``) and Vertex rejects what it does not know with
  ``400 INVALID_ARGUMENT``, which becomes ``upstream_rejected``.

Names are matched the way google-genai matches ``extra_body`` keys (case and underscores
ignored), so an unknown param can never land on a field the adapter sets: ``SAMPLE_COUNT`` is
refused like ``sampleCount``.

Errors: HTTP 429 / ``RESOURCE_EXHAUSTED`` is retryable ``provider_error`` with a back-off hint
(Google's ``RetryInfo`` when sent, else :data:`RATE_LIMIT_BACKOFF_SECONDS`); 408/499/5xx,
timeouts, connection failures and malformed responses are retryable ``provider_error``; other
4xx (400 ``INVALID_ARGUMENT``, 401/403 credentials or permissions, 404 model not in the region)
are non-retryable ``upstream_rejected`` with a message that names what to check and never the
token. The SDK's own retries stay off (its default): the activity's retry policy owns retries,
so one attempt is exactly one HTTP request. A submit that timed out or got a malformed answer
may still have started an operation; Veo has no idempotency key, so the retry starts another
(the first is orphaned and may be billed by Google, never by us).

Credentials: ``credentials=None`` means Application Default Credentials, which google-genai
resolves (``google.auth.default``, cloud-platform scope, in a worker thread) on the first
request: never at import or construction. They are never logged or put in a message.
"""

import asyncio
import json
import logging
import re
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import google.auth.credentials
import google.auth.exceptions
import httpx
import pydantic
from google import genai
from google.genai import errors as genai_errors
from google.genai import types
from pydantic import JsonValue

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

_log = logging.getLogger(__name__)

#: The GA REST surface (google-genai 3.4.0 defaults to ``v1beta1`` for Vertex).
API_VERSION = "v1"
#: Vertex quota is per project; fetchPredictOperation calls may count against it.
POLL_HINT_SECONDS = 12.0
#: Veo 3 quota is 10 requests/min/project: without Google's own hint, wait half a window.
RATE_LIMIT_BACKOFF_SECONDS = 30.0
#: Veo's limit on an inline first-frame image.
MAX_IMAGE_BYTES = 20 * 1000 * 1000
#: Scheme of the references :meth:`VertexProvider.status` hands out for inline videos.
INLINE_SCHEME = "vertex-inline://"
DEFAULT_VIDEO_TYPE = "video/mp4"

_CHUNK = 1024 * 1024
_MESSAGE_LIMIT = 300
_OPERATION_NAME = re.compile(
    r"projects/[^/]+/locations/[^/]+/publishers/google/models/(?P<model>[^/:]+)"
    r"/operations/[^/]+"
)
_IMAGE_SIGNATURES = ((b"\x89PNG\r\n\x1a\n", "image/png"), (b"\xff\xd8\xff", "image/jpeg"))
_RAI_MARKERS = ("responsible ai", "support code")
_GRPC_NAMES = {
    1: "CANCELLED",
    2: "UNKNOWN",
    3: "INVALID_ARGUMENT",
    4: "DEADLINE_EXCEEDED",
    5: "NOT_FOUND",
    6: "ALREADY_EXISTS",
    7: "PERMISSION_DENIED",
    8: "RESOURCE_EXHAUSTED",
    9: "FAILED_PRECONDITION",
    10: "ABORTED",
    11: "OUT_OF_RANGE",
    12: "UNIMPLEMENTED",
    13: "INTERNAL",
    14: "UNAVAILABLE",
    15: "DATA_LOSS",
    16: "UNAUTHENTICATED",
}
#: Operation error codes that say the request itself was wrong (retrying it cannot help).
_REJECTED_GRPC = frozenset({3, 5, 6, 7, 9, 11, 12, 16})
_RETRYABLE_HTTP = frozenset({408, 499})


def _key(name: str) -> str:
    """How google-genai matches ``extra_body`` keys to fields: case and underscores ignored."""
    return name.replace("_", "").lower()


@dataclass(frozen=True)
class _Param:
    """A Veo parameter the adapter forwards through ``GenerateVideosConfig``."""

    rest: str
    field: str
    kind: type[str] | type[int] | type[bool]
    choices: tuple[str, ...] = ()

    def accepts(self, value: JsonValue) -> bool:
        if self.kind is bool:
            return isinstance(value, bool)
        if self.kind is int:
            return isinstance(value, int) and not isinstance(value, bool)
        return isinstance(value, str) and (not self.choices or value in self.choices)

    def expected(self) -> str:
        if self.choices:
            return "one of " + ", ".join(repr(choice) for choice in self.choices)
        return {bool: "a boolean", int: "an integer", str: "a string"}[self.kind]


_PARAMS = {
    _key(param.rest): param
    for param in (
        _Param("aspectRatio", "aspect_ratio", str),
        _Param("resolution", "resolution", str),
        _Param("generateAudio", "generate_audio", bool),
        _Param("negativePrompt", "negative_prompt", str),
        _Param("seed", "seed", int),
        _Param("personGeneration", "person_generation", str),
        _Param("enhancePrompt", "enhance_prompt", bool),
        _Param("fps", "fps", int),
        _Param("compressionQuality", "compression_quality", str, ("OPTIMIZED", "LOSSLESS")),
        _Param("resizeMode", "resize_mode", str, ("CROP", "PAD")),
    )
}

_OWNED = {
    _key(name): reason
    for names, reason in (
        (("durationSeconds",), "it is set from the job's duration"),
        (("sampleCount", "number_of_videos"), "each job makes exactly one video"),
        (("storageUri", "output_gcs_uri"), "the video must come back inline"),
        (("pubsubTopic",), "job notifications stay in our project"),
    )
    for name in names
}


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _MESSAGE_LIMIT else text[: _MESSAGE_LIMIT - 1] + "…"


def _rejected(message: str) -> ProviderError:
    return ProviderError(ErrorCode.UPSTREAM_REJECTED, message, retryable=False)


def _split_params(params: dict[str, JsonValue]) -> tuple[dict[str, Any], dict[str, JsonValue]]:
    """Params for ``GenerateVideosConfig`` (by field) and params to send raw (by name)."""
    typed: dict[str, Any] = {}
    spelled: dict[str, tuple[str, JsonValue]] = {}
    raw: dict[str, JsonValue] = {}
    for name, value in params.items():
        key = _key(name)
        if key in _OWNED:
            raise _rejected(f"param {name!r} cannot be set: {_OWNED[key]}")
        param = _PARAMS.get(key)
        if param is None:
            raw[name] = value
            continue
        if key in spelled and spelled[key][1] != value:
            other, previous = spelled[key]
            raise _rejected(
                f"params {other!r} and {name!r} disagree ({_short(repr(previous))} vs "
                f"{_short(repr(value))})"
            )
        if not param.accepts(value):
            raise _rejected(f"param {name!r} must be {param.expected()}, not {_short(repr(value))}")
        spelled[key] = (name, value)
        typed[param.field] = value
    return typed, raw


def _video_config(request: SubmitRequest) -> types.GenerateVideosConfig:
    typed, raw = _split_params(request.params)
    extra = types.HttpOptions(extra_body={"parameters": raw}) if raw else None
    return types.GenerateVideosConfig(
        **typed,
        duration_seconds=request.duration_seconds,
        number_of_videos=1,
        http_options=extra,
    )


def _image_type(data: bytes) -> str | None:
    for signature, mime_type in _IMAGE_SIGNATURES:
        if data.startswith(signature):
            return mime_type
    return None


async def _close(chunks: AsyncIterator[bytes]) -> None:
    """Release a download we stopped reading early (its connection, at once)."""
    close = getattr(chunks, "aclose", None)
    if close is not None:
        await close()


def _operation_name(request_id: str) -> str:
    if not _OPERATION_NAME.fullmatch(request_id):
        raise ProviderError(
            ErrorCode.UPSTREAM_FAILED,
            f"{_short(request_id)!r} is not a Vertex AI Veo operation name",
            retryable=False,
        )
    return request_id


def _model_of(operation_name: str) -> str:
    match = _OPERATION_NAME.fullmatch(operation_name)
    return match["model"] if match else "?"


def _inline_ref(operation_name: str, sample: int) -> str:
    return f"{INLINE_SCHEME}{operation_name}#{sample}"


def _sample_of(operation_name: str, media: MediaRef) -> int:
    """The sample a reference from :meth:`VertexProvider.status` names, for this job only."""
    prefix, _, sample = media.url.rpartition("#")
    if prefix != f"{INLINE_SCHEME}{operation_name}" or not sample.isdigit():
        raise ProviderError(
            ErrorCode.REHOST_FAILED,
            f"{_short(media.url)!r} is not an inline video of operation {operation_name}",
            retryable=False,
        )
    return int(sample)


def _videos(operation: types.GenerateVideosOperation) -> list[types.GeneratedVideo]:
    response = operation.response
    return list(response.generated_videos or []) if response is not None else []


def _operation_failure(error: dict[str, Any]) -> UpstreamStatus:
    """A finished operation's ``google.rpc.Status`` (gRPC codes) as a failed job.

    Code 3 with Responsible-AI text (support codes) is a content-policy refusal; other code 3s
    and the "your request is wrong" codes are rejections. Code 8 (quota) ends the job as ours
    to refund: the operation is over, so polling again cannot help and nothing resubmits.
    13/14 and anything else mean Vertex could not make the video (a new job may succeed).
    """
    code = error.get("code")
    message = str(error.get("message") or "no message")
    name = _GRPC_NAMES.get(code, "UNKNOWN") if isinstance(code, int) else "UNKNOWN"
    text = f"Vertex AI failed the job ({code} {name}): {_short(message)}"
    if code == 3 and any(marker in message.lower() for marker in _RAI_MARKERS):
        error_code = ErrorCode.CONTENT_REJECTED
    elif code == 8:
        error_code = ErrorCode.PROVIDER_ERROR
    elif code in _REJECTED_GRPC:
        error_code = ErrorCode.UPSTREAM_REJECTED
    else:
        error_code = ErrorCode.UPSTREAM_FAILED
    return UpstreamStatus(state=UpstreamState.FAILED, error_code=error_code, error_message=text)


def _status_of(operation: types.GenerateVideosOperation, name: str) -> UpstreamStatus:
    if not operation.done:
        return UpstreamStatus(state=UpstreamState.RUNNING, retry_after_seconds=POLL_HINT_SECONDS)
    if operation.error:
        return _operation_failure(operation.error)
    videos = _videos(operation)
    if videos:
        video = videos[0].video
        if video is None or not video.video_bytes:
            return UpstreamStatus(
                state=UpstreamState.FAILED,
                error_code=ErrorCode.UPSTREAM_FAILED,
                error_message="Vertex AI finished without inline video bytes",
            )
        return UpstreamStatus(
            state=UpstreamState.SUCCEEDED,
            media=MediaRef(
                url=_inline_ref(name, 0), content_type=video.mime_type or DEFAULT_VIDEO_TYPE
            ),
        )
    response = operation.response
    if response is not None and (response.rai_media_filtered_count or 0) > 0:
        reasons = "; ".join(response.rai_media_filtered_reasons or []) or "no reason given"
        return UpstreamStatus(
            state=UpstreamState.FAILED,
            error_code=ErrorCode.CONTENT_REJECTED,
            error_message=f"Vertex AI filtered the video (Responsible AI): {_short(reasons)}",
        )
    return UpstreamStatus(
        state=UpstreamState.FAILED,
        error_code=ErrorCode.UPSTREAM_FAILED,
        error_message="Vertex AI finished without a video",
    )


def _inline_video(operation: types.GenerateVideosOperation, name: str, sample: int) -> bytes:
    videos = _videos(operation) if operation.done and not operation.error else []
    video = videos[sample].video if sample < len(videos) else None
    if video is None or not video.video_bytes:
        raise ProviderError(
            ErrorCode.REHOST_FAILED,
            f"operation {name} no longer carries the bytes of video {sample}; Veo returns "
            "inline videos only in the operation itself",
            retryable=False,
        )
    return video.video_bytes


def _duration_seconds(value: object) -> float | None:
    """A ``google.protobuf.Duration`` in JSON (``"7s"``, ``"1.5s"``) in seconds."""
    if isinstance(value, str) and value.endswith("s"):
        try:
            return max(0.0, float(value[:-1]))
        except ValueError:
            return None
    return None


def _retry_delay(error: genai_errors.APIError) -> float | None:
    """Google's own back-off hint: a ``google.rpc.RetryInfo`` in the error's details."""
    body = error.details if isinstance(error.details, dict) else {}
    envelope = body.get("error", body)
    details = envelope.get("details") if isinstance(envelope, dict) else None
    for detail in details if isinstance(details, list) else []:
        if isinstance(detail, dict) and str(detail.get("@type", "")).endswith("rpc.RetryInfo"):
            return _duration_seconds(detail.get("retryDelay"))
    return None


def _from_auth_error(error: google.auth.exceptions.GoogleAuthError) -> ProviderError:
    if isinstance(error, google.auth.exceptions.DefaultCredentialsError):
        return _rejected(
            "no Google credentials for Vertex AI: set GOOGLE_APPLICATION_CREDENTIALS or run "
            "with an attached service account"
        )
    retryable = bool(error.retryable) or isinstance(error, google.auth.exceptions.TransportError)
    return ProviderError(
        ErrorCode.PROVIDER_ERROR if retryable else ErrorCode.UPSTREAM_REJECTED,
        f"could not get a Google access token ({type(error).__name__}): {_short(str(error))}",
        retryable=retryable,
    )


class VertexProvider:
    """Veo on Vertex AI. Stateless between calls: the operation name is the whole job handle."""

    name = ProviderName.VERTEX
    simulated = False

    def __init__(
        self,
        *,
        project: str,
        location: str,
        fetch_media: MediaFetcher,
        base_url: str | None = None,
        credentials: google.auth.credentials.Credentials | None = None,
        timeout_seconds: float = 60.0,
    ) -> None:
        if not project or not location:
            raise ValueError("Vertex AI needs a project and a location")
        if base_url is not None and not _is_http_url(base_url):
            raise ValueError(f"Vertex AI base URL must be an http(s) URL, not {base_url!r}")
        if timeout_seconds <= 0:
            raise ValueError("timeout_seconds must be positive")
        self._project = project
        self._location = location
        self._fetch_media = fetch_media
        self._base_url = base_url
        self._credentials = credentials
        self._timeout_seconds = timeout_seconds
        self._session: _Session | None = None

    def __repr__(self) -> str:
        return (
            f"VertexProvider(project={self._project!r}, location={self._location!r}, "
            f"base_url={self._base_url!r})"
        )

    async def submit(self, request: SubmitRequest) -> str:
        """Start one Veo operation and return its name (``projects/…/operations/…``).

        Params are checked before anything leaves the process; a first-frame image is fetched
        here, through the SSRF-guarded fetcher, and sent inline (Veo takes bytes or ``gs://``,
        not https URLs). Its bytes live only for this call.
        """
        config = _video_config(request)
        image = await self._first_frame(request) if request.image_url else None
        source = types.GenerateVideosSource(prompt=request.prompt, image=image)
        with self._classified(request.endpoint):
            operation = await self._client().aio.models.generate_videos(
                model=request.endpoint, source=source, config=config
            )
        name = operation.name or ""
        if not _OPERATION_NAME.fullmatch(name):
            raise ProviderError(
                ErrorCode.PROVIDER_ERROR,
                f"Vertex AI answered without a usable operation name ({_short(name)!r})",
                retryable=True,
            )
        _log.debug("job %s is Vertex AI operation %s", request.job_id, name)
        return name

    async def status(self, job: UpstreamJob) -> UpstreamStatus:
        """One ``fetchPredictOperation``; a finished video is reported as a reference only."""
        name = _operation_name(job.request_id)
        return _status_of(await self._operation(name), name)

    async def cancel(self, job: UpstreamJob) -> None:
        """Abandon, don't cancel: Vertex documents no cancel for Veo operations (the SDK has
        none and the generic LRO ``:cancel`` is unverified for them), so this makes no call.
        The operation runs to its end upstream and nobody fetches its video."""

    async def open_media(self, job: UpstreamJob, media: MediaRef) -> AsyncIterator[bytes]:
        """Fetch the operation again and stream the referenced video's decoded bytes.

        This is how an inline video reaches blob storage inside one activity. The whole
        response is held in memory while it is streamed (Veo clips are a few MB). If the
        operation no longer has the bytes, the rehost cannot succeed by retrying.
        """
        name = _operation_name(job.request_id)
        sample = _sample_of(name, media)
        try:
            operation = await self._operation(name)
        except ProviderError as error:
            raise ProviderError(
                ErrorCode.REHOST_FAILED,
                f"could not fetch the finished video of {name}: {error.message}",
                retryable=error.retryable,
                retry_after_seconds=error.retry_after_seconds,
            ) from error
        data = _inline_video(operation, name, sample)
        for start in range(0, len(data), _CHUNK):
            yield data[start : start + _CHUNK]

    async def aclose(self) -> None:
        """Close the HTTP connections of the current event loop's client."""
        session, self._session = self._session, None
        if session is not None and session.loop is asyncio.get_running_loop():
            await session.http.aclose()

    async def _operation(self, name: str) -> types.GenerateVideosOperation:
        # model_validate: the SDK declares ``name`` on a non-pydantic base class, so the
        # pydantic mypy plugin does not see it as a constructor argument.
        handle = types.GenerateVideosOperation.model_validate({"name": name})
        with self._classified(_model_of(name)):
            return await self._client().aio.operations.get(handle)

    async def _first_frame(self, request: SubmitRequest) -> types.Image:
        if request.image_field != "image":
            raise _rejected(f"Veo takes the first frame as 'image', not {request.image_field!r}")
        assert request.image_url is not None
        data = await self._read_image(request.image_url)
        mime_type = _image_type(data)
        if mime_type is None:
            raise _rejected("image_url must be a JPEG or PNG image for Veo")
        return types.Image(image_bytes=data, mime_type=mime_type)

    async def _read_image(self, url: str) -> bytes:
        data = bytearray()
        chunks = self._fetch_media(url)
        try:
            async for chunk in chunks:
                data += chunk
                if len(data) > MAX_IMAGE_BYTES:
                    raise _rejected(f"image_url is larger than Veo's {MAX_IMAGE_BYTES}-byte limit")
        except MediaFetchError as error:
            raise ProviderError(
                ErrorCode.PROVIDER_ERROR if error.retryable else ErrorCode.UPSTREAM_REJECTED,
                f"could not fetch image_url: {error}",
                retryable=error.retryable,
            ) from error
        finally:
            await _close(chunks)
        return bytes(data)

    def _client(self) -> genai.Client:
        """The client for the running event loop (pooled connections are bound to a loop)."""
        loop = asyncio.get_running_loop()
        if self._session is None or self._session.loop is not loop:
            self._session = self._new_session(loop)
        return self._session.client

    def _new_session(self, loop: asyncio.AbstractEventLoop) -> "_Session":
        # Our own httpx client pins the transport: google-genai would otherwise switch to
        # aiohttp whenever it is installed, which retries connection errors on its own and
        # raises other exception types. httpx trusts SSL_CERT_FILE, like the SDK's default.
        http = httpx.AsyncClient(timeout=self._timeout_seconds, follow_redirects=False)
        options = types.HttpOptions(
            base_url=self._base_url,
            api_version=API_VERSION,
            timeout=round(self._timeout_seconds * 1000),
            httpx_async_client=http,
        )
        client = genai.Client(
            vertexai=True,
            project=self._project,
            location=self._location,
            credentials=self._credentials,
            http_options=options,
        )
        return _Session(loop=loop, client=client, http=http)

    @contextmanager
    def _classified(self, model: str) -> Iterator[None]:
        """Turn what the SDK, httpx and google-auth raise into classified ProviderErrors."""
        try:
            yield
        except genai_errors.APIError as error:
            raise self._from_api_error(error, model) from error
        except httpx.TimeoutException as error:
            raise ProviderError(
                ErrorCode.PROVIDER_ERROR,
                f"Vertex AI did not answer within {self._timeout_seconds:g} s",
                retryable=True,
            ) from error
        except httpx.TransportError as error:
            raise ProviderError(
                ErrorCode.PROVIDER_ERROR,
                f"the connection to Vertex AI failed ({type(error).__name__})",
                retryable=True,
            ) from error
        except (
            json.JSONDecodeError,
            genai_errors.UnknownApiResponseError,
            pydantic.ValidationError,
        ) as error:
            raise ProviderError(
                ErrorCode.PROVIDER_ERROR,
                f"Vertex AI sent a malformed response ({type(error).__name__})",
                retryable=True,
            ) from error
        except google.auth.exceptions.GoogleAuthError as error:
            raise _from_auth_error(error) from error

    def _from_api_error(self, error: genai_errors.APIError, model: str) -> ProviderError:
        code = error.code
        status = error.status or ""
        detail = _short(str(error.message or ""))
        if code == 429 or status == "RESOURCE_EXHAUSTED":
            return ProviderError(
                ErrorCode.PROVIDER_ERROR,
                f"Vertex AI rate limit or quota reached ({code} {status}): {detail}",
                retryable=True,
                retry_after_seconds=_retry_delay(error) or RATE_LIMIT_BACKOFF_SECONDS,
            )
        if code in _RETRYABLE_HTTP or code >= 500:
            return ProviderError(
                ErrorCode.PROVIDER_ERROR,
                f"Vertex AI is unavailable ({code} {status}): {detail}",
                retryable=True,
                retry_after_seconds=_retry_delay(error),
            )
        hint = self._hint(code, model)
        return _rejected(f"Vertex AI refused the request ({code} {status}){hint}: {detail}")

    def _hint(self, code: int, model: str) -> str:
        """What to check for the refusals that are about our configuration, not the job."""
        where = f"projects/{self._project}/locations/{self._location}"
        if code == 401:
            return "; our Google credentials were not accepted (check the service account)"
        if code == 403:
            return (
                f"; no permission on {where} (the service account needs Vertex AI User, and "
                "the Vertex AI API and billing must be enabled)"
            )
        if code == 404:
            return f"; {model} or the operation was not found in {where} (model not in region?)"
        return ""


@dataclass(frozen=True)
class _Session:
    loop: asyncio.AbstractEventLoop
    client: genai.Client
    http: httpx.AsyncClient


def _is_http_url(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in {"https", "http"} and bool(parts.netloc)


def from_settings(settings: Settings, fetch_media: MediaFetcher) -> VertexProvider | None:
    """The Vertex adapter this deployment is configured for, or None without a project.

    Credentials are Application Default Credentials, resolved on the first request.
    """
    if not settings.vertex_project:
        return None
    return VertexProvider(
        project=settings.vertex_project,
        location=settings.vertex_location,
        base_url=settings.vertex_base_url,
        fetch_media=fetch_media,
    )
