"""A protocol-faithful double of Vertex AI's Veo endpoints (``shared/reference/providers.md`` §4).

What it serves, over HTTPS (``serve``):

``POST /{v1|v1beta1}/projects/{p}/locations/{l}/publishers/google/models/{m}:predictLongRunning``
    checks the request as Vertex would and answers ``{"name": "projects/…/operations/<id>"}``.
``POST …/models/{m}:fetchPredictOperation`` with ``{"operationName": …}``
    answers the operation: no ``done`` while running (proto3 JSON omits false), then
    ``done: true`` with a ``response`` (``@type``, ``videos[{bytesBase64Encoded, mimeType}]``,
    ``raiMediaFilteredCount``/``raiMediaFilteredReasons``) or an ``error`` (``google.rpc.Status``
    with a gRPC numeric code).
``POST /token``
    Google's OAuth token endpoint for a service-account key (JWT-bearer grant), so the real
    google-auth refresh flow can run offline against ``service_account_info()``.
``GET /media/first-frame.{png,jpg,gif}``, ``/media/oversized.png``
    first-frame images for image-to-video (GIF and oversized are for the refusals).

Every request is recorded (the bearer token and the JWT assertion removed). Anything the real
API would reject (bad token, wrong project/location/model, unknown or mistyped fields, values
out of range) is answered with Google's error envelope *and* recorded in ``violations``, so a
test that did not expect it fails; a test that provokes one on purpose takes it with
:meth:`VertexDouble.take_violations`.

Tests choose behaviours: :meth:`VertexDouble.script` decides how the next submitted
operations end (:func:`video` after N polls, with bytes of the test's choosing or gone once
fetched, :func:`filtered`, :func:`failed`, :func:`never`),
:meth:`VertexDouble.inject` makes the next requests misbehave (:func:`rate_limited`,
:func:`unavailable`, :func:`slow`, :func:`malformed_json`, :func:`dropped` …), and
:meth:`VertexDouble.forget` makes an operation disappear. ``max_in_flight`` is the highest
number of API requests seen being served at once.

Not faithful (unknown to the reference): the exact wording of Vertex's messages for unknown
parameters and out-of-range values, and which of them are rejected at submit rather than
reported as an operation error.
"""

import asyncio
import base64
import binascii
import json
import re
import secrets
import struct
import tempfile
import uuid
import zlib
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from fractions import Fraction
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import av
import google.auth.credentials
import google.auth.exceptions
import google.auth.jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from providers.simulated_media import render_mp4
from tests.providers.doubles.https import DroppedResponse, serve_https

PROJECT = "kyma-test-project"
LOCATION = "us-central1"
VEO_MODELS = frozenset({"veo-3.0-generate-001", "veo-3.0-fast-generate-001"})
#: The access token the test credentials carry; random per session, so it is recognisable.
TOKEN = "ya29.test-" + secrets.token_urlsafe(24)
SERVICE_ACCOUNT_EMAIL = f"kyma-test@{PROJECT}.iam.gserviceaccount.com"
#: google-auth signs service-account assertions for Google's token endpoint, whatever the
#: key file's ``token_uri`` says.
ASSERTION_AUDIENCE = "https://oauth2.googleapis.com/token"
CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"
RESPONSE_TYPE = "type.googleapis.com/cloud.ai.large_models.vision.GenerateVideoResponse"
MAX_IMAGE_BYTES = 20 * 1000 * 1000
RAI_MESSAGE = (
    "The prompt could not be submitted. This prompt contains sensitive words that violate "
    "Google's Responsible AI practices. Try rephrasing the prompt. If you think this was an "
    "error, send feedback. Support codes: 58061214"
)
RAI_FILTER_REASON = (
    "We encountered an issue with the audio for your prompt. Please try a different prompt. "
    "You will not be charged for this request. Support codes: 29310472"
)

_API_PATH = (
    r"/(?P<version>v1|v1beta1)/projects/(?P<project>[^/]+)/locations/(?P<location>[^/]+)"
    r"/publishers/google/models/(?P<model>[^/:]+):(?P<method>predictLongRunning|"
    r"fetchPredictOperation)"
)
_INSTANCE_FIELDS = frozenset(
    {"prompt", "image", "lastFrame", "video", "referenceImages", "mask", "cameraControl"}
)
_IMAGE_MAGIC = {"image/png": b"\x89PNG\r\n\x1a\n", "image/jpeg": b"\xff\xd8\xff"}
_UINT32_MAX = 2**32 - 1


# --- credentials -----------------------------------------------------------------------------


class StaticTokenCredentials(google.auth.credentials.Credentials):
    """Credentials holding a fixed, never-expiring access token (reference §4.5)."""

    def __init__(self, token: str = TOKEN) -> None:
        super().__init__()
        self.token = token

    def refresh(self, request: Any) -> None:
        raise google.auth.exceptions.RefreshError("a static test token cannot be refreshed")


@lru_cache(maxsize=1)
def _service_account_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _service_account_public_pem() -> str:
    public = _service_account_key().public_key()
    return public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def service_account_info(token_uri: str) -> dict[str, str]:
    """A service-account key file's content whose ``token_uri`` is the double's."""
    private_pem = _service_account_key().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return {
        "type": "service_account",
        "project_id": PROJECT,
        "private_key_id": "kyma-test-key-1",
        "private_key": private_pem.decode(),
        "client_email": SERVICE_ACCOUNT_EMAIL,
        "client_id": "100000000000000000001",
        "token_uri": token_uri,
    }


# --- media -----------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def sample_mp4() -> bytes:
    """A real H.264 MP4, rendered once per session: what finished operations carry inline."""
    with tempfile.TemporaryDirectory(prefix="kyma-vertex-double-") as folder:
        path = Path(folder) / "veo.mp4"
        render_mp4(path, 1.0, seed=31)
        return path.read_bytes()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))


@lru_cache(maxsize=1)
def first_frame_png(width: int = 64, height: int = 36) -> bytes:
    rows = b"".join(
        b"\x00" + b"".join(bytes(((x * 4) % 256, (y * 7) % 256, 128)) for x in range(width))
        for y in range(height)
    )
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(rows))
        + _png_chunk(b"IEND", b"")
    )


@lru_cache(maxsize=1)
def first_frame_jpeg(width: int = 64, height: int = 36) -> bytes:
    codec = av.CodecContext.create("mjpeg", "w")
    codec.width, codec.height = width, height
    codec.pix_fmt = "yuvj420p"
    codec.time_base = Fraction(1, 25)
    frame = av.VideoFrame(width, height, "yuvj420p")
    for plane, level in zip(frame.planes, (120, 90, 160), strict=True):
        plane.update(bytes([level]) * (plane.line_size * plane.height))
    frame.pts = 0
    packets = [*codec.encode(frame), *codec.encode(None)]
    return b"".join(bytes(packet) for packet in packets)


#: A valid GIF header: the real API takes only JPEG and PNG.
FIRST_FRAME_GIF = b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01"


def _media() -> dict[str, tuple[bytes, str]]:
    return {
        "first-frame.png": (first_frame_png(), "image/png"),
        "first-frame.jpg": (first_frame_jpeg(), "image/jpeg"),
        "first-frame.gif": (FIRST_FRAME_GIF, "image/gif"),
        "oversized.png": (first_frame_png() + bytes(MAX_IMAGE_BYTES), "image/png"),
    }


# --- scripted behaviour ----------------------------------------------------------------------


class Ending(StrEnum):
    VIDEO = "video"
    FILTERED = "filtered"
    ERROR = "error"
    NEVER = "never"


@dataclass(frozen=True)
class Outcome:
    """How one submitted operation ends, after ``polls`` answers that it is still running."""

    ending: Ending = Ending.VIDEO
    polls: int = 1
    mime_type: str | None = "video/mp4"
    error_code: int = 0
    error_message: str = ""
    filtered_reasons: tuple[str, ...] = ()
    #: The finished video's bytes (None: :func:`sample_mp4`), e.g. something that is no video.
    data: bytes | None = None
    #: Answers with ``done`` the operation gives before it is gone (404), as an operation that
    #: expired between the poll that saw it finish and the fetch of its video; None: never.
    done_answers: int | None = None


def video(
    polls: int = 1,
    mime_type: str | None = "video/mp4",
    *,
    data: bytes | None = None,
    done_answers: int | None = None,
) -> Outcome:
    return Outcome(Ending.VIDEO, polls, mime_type=mime_type, data=data, done_answers=done_answers)


def filtered(reasons: tuple[str, ...] = (RAI_FILTER_REASON,), polls: int = 1) -> Outcome:
    return Outcome(Ending.FILTERED, polls, filtered_reasons=reasons)


def failed(code: int, message: str, polls: int = 1) -> Outcome:
    return Outcome(Ending.ERROR, polls, error_code=code, error_message=message)


def never() -> Outcome:
    return Outcome(Ending.NEVER)


@dataclass(frozen=True)
class Fault:
    """How one API request misbehaves instead of (or before) being answered."""

    status: int = 200
    grpc_status: str = ""
    message: str = ""
    retry_delay: str | None = None
    delay_seconds: float = 0.0
    raw_body: bytes | None = None
    raw_content_type: str = "application/json"
    drop_connection: bool = False


def rate_limited(retry_delay: str | None = None) -> Fault:
    return Fault(
        429,
        "RESOURCE_EXHAUSTED",
        "Quota exceeded for aiplatform.googleapis.com/online_prediction_requests_per_base_model "
        "with base model: veo-3.0-generate-001. Please submit a quota increase request.",
        retry_delay=retry_delay,
    )


def unavailable() -> Fault:
    return Fault(503, "UNAVAILABLE", "The service is currently unavailable.")


def internal() -> Fault:
    return Fault(500, "INTERNAL", "Internal error encountered.")


def permission_denied() -> Fault:
    return Fault(
        403,
        "PERMISSION_DENIED",
        f"Permission 'aiplatform.endpoints.predict' denied on resource "
        f"'//aiplatform.googleapis.com/projects/{PROJECT}/locations/{LOCATION}/publishers/"
        "google/models/veo-3.0-generate-001' (or it may not exist).",
    )


def slow(seconds: float) -> Fault:
    """Answer normally, but only after ``seconds`` (the work is done even if nobody waits)."""
    return Fault(delay_seconds=seconds)


def malformed_json() -> Fault:
    return Fault(200, raw_body=b'{"name": "projects/' + PROJECT.encode() + b"/locat")


def gateway_html() -> Fault:
    return Fault(
        502,
        raw_body=b"<html><body><h1>502 Bad Gateway</h1></body></html>",
        raw_content_type="text/html",
    )


def dropped() -> Fault:
    """Start a response, then close the connection mid-body (a reset, as the client sees it)."""
    return Fault(200, drop_connection=True)


@dataclass
class Recorded:
    """One request as the double saw it, secrets removed."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any
    #: Whether the bearer token was one the double issued (None: no API route).
    authorized: bool | None = None


@dataclass
class _Operation:
    name: str
    model: str
    outcome: Outcome
    samples: int
    polls_seen: int = 0
    done_seen: int = 0
    forgotten: bool = False


def google_error(
    status: int, grpc_status: str, message: str, details: list[Any] | None = None
) -> JSONResponse:
    """Google's standard HTTP error envelope."""
    error: dict[str, Any] = {"code": status, "message": message, "status": grpc_status}
    if details:
        error["details"] = details
    return JSONResponse({"error": error}, status_code=status)


# --- request checks (what Vertex would reject) -----------------------------------------------


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _one_of(*choices: object) -> Callable[[object], bool]:
    return lambda value: isinstance(value, str) and value in choices


_PARAMETER_RULES: Mapping[str, tuple[Callable[[object], bool], str]] = {
    "durationSeconds": (lambda v: _is_int(v) and v in (4, 6, 8), "an integer in {4, 6, 8}"),
    "aspectRatio": (_one_of("16:9", "9:16"), '"16:9" or "9:16"'),
    "resolution": (_one_of("720p", "1080p"), '"720p" or "1080p"'),
    "generateAudio": (lambda v: isinstance(v, bool), "a boolean"),
    "sampleCount": (lambda v: _is_int(v) and 1 <= v <= 4, "an integer from 1 to 4"),
    "storageUri": (lambda v: isinstance(v, str) and v.startswith("gs://"), "a gs:// URI"),
    "negativePrompt": (lambda v: isinstance(v, str), "a string"),
    "seed": (lambda v: _is_int(v) and 0 <= v <= _UINT32_MAX, "a uint32"),
    "personGeneration": (_one_of("allow_adult", "dont_allow", "allow_all"), "a person policy"),
    "enhancePrompt": (lambda v: isinstance(v, bool), "a boolean"),
    "compressionQuality": (_one_of("OPTIMIZED", "LOSSLESS"), '"OPTIMIZED" or "LOSSLESS"'),
    "resizeMode": (_one_of("CROP", "PAD"), '"CROP" or "PAD"'),
    "fps": (lambda v: _is_int(v) and v == 24, "24"),
    "pubsubTopic": (lambda v: isinstance(v, str) and v.startswith("projects/"), "a topic"),
}


def _image_problems(image: object, where: str) -> list[str]:
    if not isinstance(image, dict):
        return [f"{where} must be an object"]
    problems = [
        f"{where}.{key} is not a field"
        for key in image.keys() - {"bytesBase64Encoded", "gcsUri", "mimeType"}
    ]
    if ("bytesBase64Encoded" in image) == ("gcsUri" in image):
        problems.append(f"{where} needs exactly one of bytesBase64Encoded and gcsUri")
    mime_type = image.get("mimeType")
    if mime_type not in _IMAGE_MAGIC:
        problems.append(f"{where}.mimeType must be image/jpeg or image/png, not {mime_type!r}")
    encoded = image.get("bytesBase64Encoded")
    if encoded is not None:
        problems += _image_bytes_problems(encoded, mime_type, where)
    return problems


def _image_bytes_problems(encoded: object, mime_type: object, where: str) -> list[str]:
    try:
        data = base64.b64decode(encoded, validate=True) if isinstance(encoded, str) else None
    except (binascii.Error, ValueError):
        data = None
    if data is None:
        return [f"{where}.bytesBase64Encoded is not base64"]
    if len(data) > MAX_IMAGE_BYTES:
        return [f"{where} is larger than {MAX_IMAGE_BYTES} bytes"]
    magic = _IMAGE_MAGIC.get(mime_type) if isinstance(mime_type, str) else None
    if magic is not None and not data.startswith(magic):
        return [f"{where} bytes are not a {mime_type}"]
    return []


def _instance_problems(instance: object) -> list[str]:
    if not isinstance(instance, dict):
        return ["instances[0] must be an object"]
    problems = [f"instances[0].{key} is not a field" for key in instance.keys() - _INSTANCE_FIELDS]
    prompt = instance.get("prompt")
    if prompt is not None and not isinstance(prompt, str):
        problems.append("instances[0].prompt must be a string")
    if not prompt and "image" not in instance:
        problems.append("instances[0] needs a prompt or an image")
    if "image" in instance:
        problems += _image_problems(instance["image"], "instances[0].image")
    return problems


def _parameter_problems(parameters: object) -> list[str]:
    if not isinstance(parameters, dict):
        return ["parameters must be an object"]
    problems = []
    for name, value in parameters.items():
        rule = _PARAMETER_RULES.get(name)
        if rule is None:
            problems.append(f"parameters.{name} is not a Veo parameter")
        elif not rule[0](value):
            problems.append(f"parameters.{name} must be {rule[1]}, not {value!r}")
    if "generateAudio" not in parameters:
        problems.append("parameters.generateAudio is required for Veo 3")
    return problems


def _predict_problems(body: object) -> list[str]:
    if not isinstance(body, dict):
        return ["the body must be a JSON object"]
    problems = [
        f'Invalid JSON payload received. Unknown name "{key}": Cannot find field.'
        for key in body.keys() - {"instances", "parameters", "labels"}
    ]
    instances = body.get("instances")
    if not isinstance(instances, list) or len(instances) != 1:
        return [*problems, "instances must hold exactly one instance"]
    return (
        problems
        + _instance_problems(instances[0])
        + _parameter_problems(body.get("parameters", {}))
    )


def _redacted_headers(request: Request) -> dict[str, str]:
    headers = dict(request.headers)
    if "authorization" in headers:
        scheme = headers["authorization"].partition(" ")[0]
        headers["authorization"] = f"{scheme} <redacted>"
    return headers


async def _json_body(request: Request) -> Any:
    raw = await request.body()
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return raw.decode(errors="replace")


# --- the double ------------------------------------------------------------------------------


@dataclass
class VertexDouble:
    project: str = PROJECT
    location: str = LOCATION
    base_url: str = ""
    requests: list[Recorded] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    max_in_flight: int = 0
    _tokens: set[str] = field(default_factory=lambda: {TOKEN})
    _outcomes: deque[Outcome] = field(default_factory=deque)
    _faults: deque[tuple[str | None, Fault]] = field(default_factory=deque)
    _operations: dict[str, _Operation] = field(default_factory=dict)
    _in_flight: int = 0

    def __post_init__(self) -> None:
        self.app = Starlette(
            routes=[
                Route("/token", self._token, methods=["POST"]),
                Route("/media/{name}", self._media, methods=["GET"]),
                Route("/{path:path}", self._api, methods=["GET", "POST", "PUT", "DELETE"]),
            ]
        )

    # What tests call.

    def script(self, *outcomes: Outcome) -> None:
        """How the next submitted operations end, in order (then: :func:`video`)."""
        self._outcomes.extend(outcomes)

    def inject(self, *faults: Fault, method: str | None = None) -> None:
        """Make the next API requests (of ``method`` only, if given) misbehave, in order."""
        self._faults.extend((method, fault) for fault in faults)

    def forget(self, operation_name: str) -> None:
        """The operation is gone: fetching it answers 404 from now on."""
        self._operations[operation_name].forgotten = True

    def take_violations(self) -> list[str]:
        taken, self.violations = self.violations, []
        return taken

    def calls(self, method: str) -> list[Recorded]:
        return [r for r in self.requests if r.path.endswith(f":{method}")]

    def image_url(self, name: str) -> str:
        return f"{self.base_url}/media/{name}"

    @property
    def token_uri(self) -> str:
        return f"{self.base_url}/token"

    @property
    def operations(self) -> list[str]:
        return list(self._operations)

    # Routes.

    async def _media(self, request: Request) -> Response:
        name = request.path_params["name"]
        self.requests.append(Recorded("GET", request.url.path, _redacted_headers(request), None))
        found = _media().get(name)
        if found is None:
            return Response(b"not found", status_code=404)
        return Response(found[0], media_type=found[1])

    async def _token(self, request: Request) -> Response:
        form = dict(parse_qsl((await request.body()).decode(errors="replace")))
        recorded = {k: ("<redacted>" if k == "assertion" else str(v)) for k, v in form.items()}
        self.requests.append(Recorded("POST", "/token", _redacted_headers(request), recorded))
        problem = self._grant_problem(form.get("grant_type"), form.get("assertion"))
        if problem:
            self.violations.append(f"token endpoint: {problem}")
            return JSONResponse(
                {"error": "invalid_grant", "error_description": problem}, status_code=400
            )
        token = "ya29.issued-" + secrets.token_urlsafe(24)
        self._tokens.add(token)
        return JSONResponse({"access_token": token, "expires_in": 3599, "token_type": "Bearer"})

    def _grant_problem(self, grant_type: object, assertion: object) -> str | None:
        if grant_type != "urn:ietf:params:oauth:grant-type:jwt-bearer":
            return f"unsupported grant_type {grant_type!r}"
        if not isinstance(assertion, str):
            return "no assertion"
        try:
            claims = google.auth.jwt.decode(
                assertion, certs=_service_account_public_pem(), audience=ASSERTION_AUDIENCE
            )
        except ValueError as error:
            return f"Invalid JWT Signature or claims: {error}"
        if claims.get("iss") != SERVICE_ACCOUNT_EMAIL:
            return f"unknown issuer {claims.get('iss')!r}"
        if CLOUD_PLATFORM not in str(claims.get("scope", "")).split():
            return "the assertion does not ask for the cloud-platform scope"
        return None

    async def _api(self, request: Request) -> Response:
        self._in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self._in_flight)
        try:
            return await self._serve_api(request)
        finally:
            self._in_flight -= 1

    async def _serve_api(self, request: Request) -> Response:
        body = await _json_body(request)
        recorded = Recorded(request.method, request.url.path, _redacted_headers(request), body)
        self.requests.append(recorded)
        recorded.authorized = self._authorized(request)
        if not recorded.authorized:
            return self._reject(
                401,
                "UNAUTHENTICATED",
                "Request had invalid authentication credentials. Expected OAuth 2 access token, "
                "login cookie or other valid authentication credential.",
            )
        match = re.fullmatch(_API_PATH, request.url.path)
        if request.method != "POST" or match is None:
            return self._reject(404, "NOT_FOUND", f"{request.method} {request.url.path}: no route")
        refusal = self._path_refusal(match["project"], match["location"], match["model"])
        if refusal is not None:
            return refusal
        fault = self._next_fault(match["method"])
        if fault is not None:
            answer = await self._misbehave(fault)
            if answer is not None:
                return answer
        if request.headers.get("content-type", "").split(";")[0] != "application/json":
            return self._reject(400, "INVALID_ARGUMENT", "Content-Type must be application/json")
        if match["method"] == "predictLongRunning":
            return self._predict(match["model"], body)
        return self._fetch(request.url.path, body)

    def _authorized(self, request: Request) -> bool:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        return scheme == "Bearer" and token in self._tokens

    def _reject(self, status: int, grpc_status: str, message: str) -> Response:
        self.violations.append(f"{status} {grpc_status}: {message}")
        return google_error(status, grpc_status, message)

    def _path_refusal(self, project: str, location: str, model: str) -> Response | None:
        resource = f"projects/{project}/locations/{location}/publishers/google/models/{model}"
        if project != self.project:
            return self._reject(
                403,
                "PERMISSION_DENIED",
                f"Permission 'aiplatform.endpoints.predict' denied on resource "
                f"'//aiplatform.googleapis.com/{resource}' (or it may not exist).",
            )
        if location != self.location or model not in VEO_MODELS:
            return self._reject(404, "NOT_FOUND", f"Publisher Model `{resource}` not found.")
        return None

    def _next_fault(self, method: str) -> Fault | None:
        for index, (wanted, fault) in enumerate(self._faults):
            if wanted is None or wanted == method:
                del self._faults[index]
                return fault
        return None

    async def _misbehave(self, fault: Fault) -> Response | None:
        """The fault's answer, or None to go on and answer normally (after any delay)."""
        if fault.delay_seconds:
            await asyncio.sleep(fault.delay_seconds)
        if fault.drop_connection:
            return DroppedResponse(b'{"name": ')
        if fault.raw_body is not None:
            return Response(
                fault.raw_body, status_code=fault.status, media_type=fault.raw_content_type
            )
        if fault.status != 200:
            details = None
            if fault.retry_delay is not None:
                details = [
                    {
                        "@type": "type.googleapis.com/google.rpc.RetryInfo",
                        "retryDelay": fault.retry_delay,
                    }
                ]
            return google_error(fault.status, fault.grpc_status, fault.message, details)
        return None

    def _predict(self, model: str, body: Any) -> Response:
        problems = _predict_problems(body)
        if problems:
            return self._reject(400, "INVALID_ARGUMENT", "; ".join(problems))
        name = (
            f"projects/{self.project}/locations/{self.location}/publishers/google/models/"
            f"{model}/operations/{uuid.uuid4()}"
        )
        outcome = self._outcomes.popleft() if self._outcomes else video()
        samples = body.get("parameters", {}).get("sampleCount", 1)
        self._operations[name] = _Operation(name, model, outcome, samples)
        return JSONResponse({"name": name})

    def _fetch(self, path: str, body: Any) -> Response:
        if not isinstance(body, dict) or set(body) != {"operationName"}:
            return self._reject(
                400, "INVALID_ARGUMENT", f"expected {{operationName}}, got {body!r}"
            )
        name = body["operationName"]
        resource = path.split("/", 2)[2].rpartition(":")[0]
        if not isinstance(name, str) or not name.startswith(f"{resource}/operations/"):
            return self._reject(
                400, "INVALID_ARGUMENT", f"operation {name!r} does not belong to {resource}"
            )
        operation = self._operations.get(name)
        if operation is None or operation.forgotten:
            return google_error(404, "NOT_FOUND", f"Operation {name} not found.")
        answer = self._answer(operation)
        if answer.get("done"):
            operation.done_seen += 1
            limit = operation.outcome.done_answers
            operation.forgotten = limit is not None and operation.done_seen >= limit
        return JSONResponse(answer)

    def _answer(self, operation: _Operation) -> dict[str, Any]:
        outcome = operation.outcome
        operation.polls_seen += 1
        if outcome.ending is Ending.NEVER or operation.polls_seen <= outcome.polls:
            return {"name": operation.name}
        answer: dict[str, Any] = {"name": operation.name, "done": True}
        if outcome.ending is Ending.ERROR:
            answer["error"] = {"code": outcome.error_code, "message": outcome.error_message}
            return answer
        response: dict[str, Any] = {"@type": RESPONSE_TYPE, "raiMediaFilteredCount": 0}
        if outcome.ending is Ending.FILTERED:
            response["raiMediaFilteredCount"] = operation.samples
            response["raiMediaFilteredReasons"] = list(outcome.filtered_reasons)
        else:
            data = outcome.data if outcome.data is not None else sample_mp4()
            sample: dict[str, str] = {"bytesBase64Encoded": base64.b64encode(data).decode()}
            if outcome.mime_type is not None:
                sample["mimeType"] = outcome.mime_type
            response["videos"] = [sample] * operation.samples
        answer["response"] = response
        return answer


@asynccontextmanager
async def serve(double: VertexDouble | None = None) -> AsyncIterator[VertexDouble]:
    """Run a double over HTTPS (trust :func:`tests.providers.doubles.https.ca_bundle`)."""
    double = double or VertexDouble()
    async with serve_https(double.app) as url:
        double.base_url = url
        yield double
