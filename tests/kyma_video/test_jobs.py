"""A request body becomes a VideoRequest, or a KymaError with the documented code and the field.

Documented limits (product docs): prompt required, at most 4000 characters; duration 1-10
whole seconds, 5 by default; image_url an HTTPS URL; idempotency_key at most 128 characters;
every other top-level field is a pass-through provider param, forwarded unchanged.
"""

import json
from collections.abc import Callable
from typing import Any

import pytest

from kyma_video.errors import ErrorCode, KymaError
from kyma_video.jobs import MAX_PARAMS_JSON_BYTES, VideoRequest

Validator = Callable[[Any], VideoRequest]

URL = "https://example.com/first-frame.png"


def body(**fields: Any) -> dict[str, Any]:
    """A valid body, changed by ``fields`` (a value of ``...`` removes the field)."""
    base: dict[str, Any] = {"model": "kling-3-pro", "prompt": "an hourglass on a desk"}
    base.update(fields)
    return {k: v for k, v in base.items() if v is not ...}


def refusal(validate: Validator, data: Any) -> KymaError:
    with pytest.raises(KymaError) as refused:
        validate(data)
    return refused.value


@pytest.fixture(params=["from_body", "parse"])
def validate(request: pytest.FixtureRequest) -> Validator:
    """Both entry points, for bodies that carry no pass-through params."""
    method: Validator = getattr(VideoRequest, request.param)
    return method


# --- a valid request -------------------------------------------------------------------------


def test_a_minimal_body_gets_the_documented_defaults(validate: Validator) -> None:
    request = validate(body())
    assert request.model == "kling-3-pro"
    assert request.prompt == "an hourglass on a desk"
    assert request.duration == 5
    assert request.image_url is None
    assert request.idempotency_key is None
    assert request.params == {}


def test_a_full_body_is_taken_as_given() -> None:
    request = VideoRequest.from_body(
        body(model="seedance-2-fast", duration=10, image_url=URL, idempotency_key="campaign-7")
    )
    assert (request.model, request.duration, request.image_url, request.idempotency_key) == (
        "seedance-2-fast",
        10,
        URL,
        "campaign-7",
    )


# --- prompt ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "prompt",
    [..., "", " ", "  \n\t ", None, 42, ["a prompt"], "x" * 4001, "é" * 4001],
    ids=["missing", "empty", "space", "whitespace", "null", "number", "list", "4001", "4001-é"],
)
def test_a_missing_empty_blank_non_text_or_overlong_prompt_is_invalid_prompt(
    validate: Validator, prompt: object
) -> None:
    error = refusal(validate, body(prompt=prompt))
    assert (error.code, error.param) == (ErrorCode.INVALID_PROMPT, "prompt")


@pytest.mark.parametrize("prompt", ["x" * 4000, "é" * 4000, "a"], ids=["4000", "4000-é", "1"])
def test_a_prompt_of_up_to_4000_characters_is_accepted(validate: Validator, prompt: str) -> None:
    assert validate(body(prompt=prompt)).prompt == prompt


# --- model -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "model",
    [..., "sora-2", "", "Kling-3-Pro", None, 42, ["kling-3-pro"]],
    ids=["missing", "unknown", "empty", "wrong-case", "null", "number", "list"],
)
def test_an_unknown_missing_or_non_text_model_is_invalid_model(
    validate: Validator, model: object
) -> None:
    error = refusal(validate, body(model=model))
    assert (error.code, error.param) == (ErrorCode.INVALID_MODEL, "model")


@pytest.mark.parametrize(
    "model",
    [
        "kling-2.5-pro",
        "kling-3-pro",
        "kling-3-pro-audio",
        "seedance-2-pro",
        "seedance-2-fast",
        "hailuo-02-512p",
        "hailuo-02-768p",
        "hailuo-02-1080p",
        "veo-3-fast",
        "veo-3",
    ],
)
def test_every_documented_model_is_accepted(validate: Validator, model: str) -> None:
    assert validate(body(model=model)).model == model


# --- duration --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "duration",
    [0, 11, 5.5, "5", True, False, -1, 10.5, 0.999, "five", [5], float("nan"), float("inf")],
    ids=str,
)
def test_a_duration_that_is_not_a_whole_number_from_1_to_10_is_invalid_duration(
    validate: Validator, duration: object
) -> None:
    error = refusal(validate, body(duration=duration))
    assert (error.code, error.param) == (ErrorCode.INVALID_DURATION, "duration")


@pytest.mark.parametrize("duration", range(1, 11))
def test_every_whole_duration_from_1_to_10_is_accepted(validate: Validator, duration: int) -> None:
    assert validate(body(duration=duration)).duration == duration


def test_a_whole_float_duration_is_accepted_as_an_integer(validate: Validator) -> None:
    duration = validate(body(duration=5.0)).duration
    assert duration == 5
    assert type(duration) is int


def test_the_default_duration_is_five_seconds(validate: Validator) -> None:
    assert validate(body()).duration == 5


# --- image_url -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "image_url",
    [
        "http://example.com/a.png",
        "ftp://example.com/a.png",
        "example.com/a.png",
        "",
        "https://",
        42,
        [URL],
        {"url": URL},
        "https://example.com/" + "a" * (4097 - len("https://example.com/")),
    ],
    ids=["http", "ftp", "no-scheme", "empty", "scheme-only", "number", "list", "object", "4097"],
)
def test_an_image_url_that_is_not_a_short_https_url_is_invalid_request(
    validate: Validator, image_url: object
) -> None:
    error = refusal(validate, body(image_url=image_url))
    assert (error.code, error.param) == (ErrorCode.INVALID_REQUEST, "image_url")


def test_an_https_image_url_of_4096_characters_is_accepted(validate: Validator) -> None:
    url = "https://example.com/" + "a" * (4096 - len("https://example.com/"))
    assert len(url) == 4096
    assert validate(body(image_url=url)).image_url == url


# --- idempotency_key -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key", ["k" * 129, "", 42, ["campaign-7"]], ids=["129", "empty", "number", "list"]
)
def test_an_empty_overlong_or_non_text_idempotency_key_is_invalid_request(
    validate: Validator, key: object
) -> None:
    error = refusal(validate, body(idempotency_key=key))
    assert (error.code, error.param) == (ErrorCode.INVALID_REQUEST, "idempotency_key")


@pytest.mark.parametrize("key", ["k" * 128, "k"], ids=["128", "1"])
def test_an_idempotency_key_of_1_to_128_characters_is_accepted(
    validate: Validator, key: str
) -> None:
    assert validate(body(idempotency_key=key)).idempotency_key == key


# --- the body and its pass-through params ----------------------------------------------------


@pytest.mark.parametrize(
    "data", [["model", "prompt"], "kling-3-pro", None, 42], ids=["list", "string", "null", "number"]
)
def test_a_body_that_is_not_an_object_is_invalid_request(validate: Validator, data: object) -> None:
    assert refusal(validate, data).code is ErrorCode.INVALID_REQUEST


def test_unknown_top_level_fields_become_provider_params_unchanged() -> None:
    extra = {
        "seed": 42,
        "aspect_ratio": "9:16",
        "cfg_scale": 0.5,
        "prompt_optimizer": False,
        "negative_prompt": None,
        "elements": [{"frontal_image_url": URL, "reference_image_urls": [URL, URL]}],
        "camera": {"moves": ["pan", {"zoom": 1.5, "ease": [0, 0.25, 1]}], "locked": True},
        "params": {"looks": "like ours", "but": "is a provider field"},
    }
    request = VideoRequest.from_body(body(duration=6, **extra))
    assert request.params == extra
    assert request.duration == 6
    assert request.prompt == "an hourglass on a desk"


def test_our_own_fields_never_leak_into_the_params() -> None:
    request = VideoRequest.from_body(body(duration=7, image_url=URL, idempotency_key="k", seed=1))
    assert request.params == {"seed": 1}


def test_parse_refuses_an_unknown_top_level_field_naming_it() -> None:
    error = refusal(VideoRequest.parse, body(seed=42))
    assert (error.code, error.param) == (ErrorCode.INVALID_REQUEST, "seed")


def test_parse_accepts_params_given_as_params() -> None:
    request = VideoRequest.parse(body(params={"seed": 42, "nested": {"a": [1, 2]}}))
    assert request.params == {"seed": 42, "nested": {"a": [1, 2]}}


@pytest.mark.parametrize("field", ["model", "prompt", "duration", "image_url", "idempotency_key"])
def test_params_given_to_parse_may_not_set_a_request_field(field: str) -> None:
    error = refusal(VideoRequest.parse, body(params={field: "sneaky"}))
    assert error.code is ErrorCode.INVALID_REQUEST


def test_params_larger_than_16_kib_are_invalid_request() -> None:
    error = refusal(VideoRequest.from_body, body(style="x" * (17 * 1024)))
    assert (error.code, error.param) == (ErrorCode.INVALID_REQUEST, "params")


def test_many_small_params_that_add_up_to_more_than_16_kib_are_invalid_request() -> None:
    many = {f"field_{i:04d}": "x" * 100 for i in range(200)}
    error = refusal(VideoRequest.from_body, body(**many))
    assert (error.code, error.param) == (ErrorCode.INVALID_REQUEST, "params")


def test_params_comfortably_under_16_kib_are_accepted() -> None:
    style = "x" * (15 * 1024)
    assert VideoRequest.from_body(body(style=style)).params == {"style": style}


def test_params_of_less_than_16_kib_in_utf8_json_are_accepted_whatever_the_script() -> None:
    extra = {"negative_prompt": "模糊" * 2000}  # 4000 CJK characters, 12 000 bytes
    size = len(json.dumps(extra, ensure_ascii=False, separators=(",", ":")).encode())
    assert size < MAX_PARAMS_JSON_BYTES
    assert VideoRequest.from_body(body(**extra)).params == extra


# --- fingerprint -----------------------------------------------------------------------------


def fingerprint(**fields: Any) -> str:
    return VideoRequest.from_body(body(**fields)).fingerprint()


def test_the_fingerprint_is_stable_across_key_order_at_every_depth() -> None:
    first = VideoRequest.from_body(
        {
            "model": "kling-3-pro",
            "prompt": "p",
            "duration": 6,
            "seed": 1,
            "camera": {"pan": 1, "tilt": {"a": 1, "b": 2}},
        }
    )
    second = VideoRequest.from_body(
        {
            "camera": {"tilt": {"b": 2, "a": 1}, "pan": 1},
            "seed": 1,
            "duration": 6,
            "prompt": "p",
            "model": "kling-3-pro",
        }
    )
    assert first.fingerprint() == second.fingerprint()


def test_the_fingerprint_is_the_same_every_time_it_is_computed() -> None:
    assert fingerprint(seed=3) == fingerprint(seed=3)


def test_the_fingerprint_ignores_the_idempotency_key() -> None:
    assert fingerprint(idempotency_key="a") == fingerprint(idempotency_key="b") == fingerprint()


def test_asking_for_the_default_duration_explicitly_keeps_the_fingerprint() -> None:
    assert fingerprint() == fingerprint(duration=5) == fingerprint(duration=5.0)


@pytest.mark.parametrize(
    "change",
    [
        {"prompt": "an hourglass on a shelf"},
        {"model": "kling-3-pro-audio"},
        {"duration": 6},
        {"image_url": URL},
        {"seed": 42},
        {"camera": {"pan": 2}},
    ],
    ids=["prompt", "model", "duration", "image_url", "new-param", "nested-param"],
)
def test_the_fingerprint_changes_with_what_was_asked_for(change: dict[str, Any]) -> None:
    baseline = fingerprint(camera={"pan": 1})
    assert fingerprint(**{"camera": {"pan": 1}, **change}) != baseline


def test_the_fingerprint_changes_with_a_param_value() -> None:
    assert fingerprint(seed=1) != fingerprint(seed=2)


def test_the_fingerprint_changes_with_the_image_url() -> None:
    assert fingerprint(image_url=URL) != fingerprint(image_url=URL + "?v=2")
