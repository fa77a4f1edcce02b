"""The catalog agrees with the published product documentation and the providers' references.

Published prices: the product's "Video Generation" page (five fal models, per second and for the
default 5 s clip). Endpoint ids, image fields, durations and audio switches: sections 2, 3.2 and
4.2 of ``shared/reference/providers.md``. Other prices: the README's model table.
"""

from decimal import ROUND_HALF_UP, Decimal

import pytest

from kyma_video.errors import ErrorCode, KymaError
from kyma_video.money import USD_QUANTUM
from providers.catalog import (
    CATALOG,
    DEFAULT_DURATION,
    MARKUP,
    MAX_DURATION,
    MIN_DURATION,
    Audio,
    InputMode,
    ProviderName,
    get_model,
)

ALL_MODELS = sorted(CATALOG)

FAL_MODELS = [
    "kling-2.5-pro",
    "kling-3-pro",
    "kling-3-pro-audio",
    "seedance-2-pro",
    "seedance-2-fast",
]
MINIMAX_MODELS = ["hailuo-02-512p", "hailuo-02-768p", "hailuo-02-1080p"]
VERTEX_MODELS = ["veo-3-fast", "veo-3"]

#: The product page's "Cost / sec" column, exactly.
PUBLISHED_RATE = {
    "kling-2.5-pro": Decimal("0.0945"),
    "kling-3-pro": Decimal("0.1512"),
    "kling-3-pro-audio": Decimal("0.2268"),
    "seedance-2-pro": Decimal("0.40959"),
    "seedance-2-fast": Decimal("0.326565"),
}

#: The product page's "Default 5s clip" column. The page prints seedance-2-fast as $1.63283,
#: a display rounding of the exact 0.326565 x 5 = 1.632825.
PUBLISHED_FIVE_SECOND_PRICE = {
    "kling-2.5-pro": Decimal("0.4725"),
    "kling-3-pro": Decimal("0.7560"),
    "kling-3-pro-audio": Decimal("1.1340"),
    "seedance-2-pro": Decimal("2.04795"),
    "seedance-2-fast": Decimal("1.632825"),
}

#: The README's model table for the models the product page does not price.
README_RATE_AND_FIVE_SECOND_PRICE = {
    "hailuo-02-512p": (Decimal("0.022545"), Decimal("0.112725")),
    "hailuo-02-768p": (Decimal("0.063045"), Decimal("0.315225")),
    "hailuo-02-1080p": (Decimal("0.110295"), Decimal("0.551475")),
    "veo-3-fast": (Decimal("0.135"), Decimal("0.675")),
    "veo-3": (Decimal("0.54"), Decimal("2.70")),
}

#: providers.md 2.1 (fal), 3.2 (MiniMax), 4.1/4.2 (Vertex): (text-to-video, image-to-video).
REFERENCE_ENDPOINTS = {
    "kling-2.5-pro": (
        "fal-ai/kling-video/v2.5-turbo/pro/text-to-video",
        "fal-ai/kling-video/v2.5-turbo/pro/image-to-video",
    ),
    "kling-3-pro": (
        "fal-ai/kling-video/v3/pro/text-to-video",
        "fal-ai/kling-video/v3/pro/image-to-video",
    ),
    "kling-3-pro-audio": (
        "fal-ai/kling-video/v3/pro/text-to-video",
        "fal-ai/kling-video/v3/pro/image-to-video",
    ),
    "seedance-2-pro": (
        "bytedance/seedance-2.0/text-to-video",
        "bytedance/seedance-2.0/image-to-video",
    ),
    "seedance-2-fast": (
        "bytedance/seedance-2.0/fast/text-to-video",
        "bytedance/seedance-2.0/fast/image-to-video",
    ),
    "hailuo-02-512p": (None, "MiniMax-Hailuo-02"),
    "hailuo-02-768p": ("MiniMax-Hailuo-02", "MiniMax-Hailuo-02"),
    "hailuo-02-1080p": ("MiniMax-Hailuo-02", "MiniMax-Hailuo-02"),
    "veo-3-fast": ("veo-3.0-fast-generate-001", "veo-3.0-fast-generate-001"),
    "veo-3": ("veo-3.0-generate-001", "veo-3.0-generate-001"),
}

REFERENCE_IMAGE_FIELD = {
    "kling-2.5-pro": "image_url",
    "kling-3-pro": "start_image_url",
    "kling-3-pro-audio": "start_image_url",
    "seedance-2-pro": "image_url",
    "seedance-2-fast": "image_url",
    "hailuo-02-512p": "first_frame_image",
    "hailuo-02-768p": "first_frame_image",
    "hailuo-02-1080p": "first_frame_image",
    "veo-3-fast": "image",
    "veo-3": "image",
}

#: providers.md 2.2-2.4 (fal duration enums), 3.2 (Hailuo-02 resolution/duration matrix),
#: 4.2 (Veo 3.x durationSeconds).
REFERENCE_DURATIONS = {
    "kling-2.5-pro": (5, 10),
    "kling-3-pro": tuple(range(3, 16)),
    "kling-3-pro-audio": tuple(range(3, 16)),
    "seedance-2-pro": tuple(range(4, 16)),
    "seedance-2-fast": tuple(range(4, 16)),
    "hailuo-02-512p": (6, 10),
    "hailuo-02-768p": (6, 10),
    "hailuo-02-1080p": (6,),
    "veo-3-fast": (4, 6, 8),
    "veo-3": (4, 6, 8),
}

DOCUMENTED_AUDIO = {
    "kling-2.5-pro": Audio.NONE,
    "kling-3-pro": Audio.NONE,
    "kling-3-pro-audio": Audio.NATIVE,
    "seedance-2-pro": Audio.BUNDLED,
    "seedance-2-fast": Audio.BUNDLED,
    "hailuo-02-512p": Audio.NONE,
    "hailuo-02-768p": Audio.NONE,
    "hailuo-02-1080p": Audio.NONE,
    "veo-3-fast": Audio.NONE,
    "veo-3": Audio.NATIVE,
}

REQUESTABLE_DURATIONS = range(MIN_DURATION, MAX_DURATION + 1)


def decimal_places(value: Decimal) -> int:
    exponent = value.normalize().as_tuple().exponent
    assert isinstance(exponent, int)
    return max(0, -exponent)


# --- the catalog's shape ---------------------------------------------------------------------


def test_the_catalog_sells_exactly_the_ten_documented_models() -> None:
    assert set(CATALOG) == set(FAL_MODELS + MINIMAX_MODELS + VERTEX_MODELS)


def test_every_catalog_entry_is_filed_under_its_own_id() -> None:
    for model_id, spec in CATALOG.items():
        assert spec.id == model_id


@pytest.mark.parametrize(
    ("models", "provider"),
    [
        (FAL_MODELS, ProviderName.FAL),
        (MINIMAX_MODELS, ProviderName.MINIMAX),
        (VERTEX_MODELS, ProviderName.VERTEX),
    ],
)
def test_each_model_is_routed_to_its_documented_provider(
    models: list[str], provider: ProviderName
) -> None:
    assert {model: get_model(model).provider for model in models} == dict.fromkeys(models, provider)


def test_customers_ask_for_one_to_ten_seconds_and_five_by_default() -> None:
    assert (MIN_DURATION, MAX_DURATION, DEFAULT_DURATION) == (1, 10, 5)


# --- prices ----------------------------------------------------------------------------------


@pytest.mark.parametrize("model", FAL_MODELS)
def test_the_fal_models_cost_exactly_the_published_rate_per_second(model: str) -> None:
    rate = get_model(model).per_second_usd
    assert isinstance(rate, Decimal)
    assert rate == PUBLISHED_RATE[model]


@pytest.mark.parametrize("model", FAL_MODELS)
def test_a_default_five_second_fal_clip_costs_exactly_the_published_price(model: str) -> None:
    assert get_model(model).price_for(DEFAULT_DURATION) == PUBLISHED_FIVE_SECOND_PRICE[model]


def test_the_published_seedance_fast_price_is_a_display_rounding_of_the_exact_charge() -> None:
    exact = get_model("seedance-2-fast").price_for(5)
    assert exact == Decimal("1.632825")
    assert exact.quantize(Decimal("0.00001"), rounding=ROUND_HALF_UP) == Decimal("1.63283")


@pytest.mark.parametrize("model", sorted(README_RATE_AND_FIVE_SECOND_PRICE))
def test_the_other_models_cost_what_the_readme_table_says(model: str) -> None:
    rate, five_seconds = README_RATE_AND_FIVE_SECOND_PRICE[model]
    spec = get_model(model)
    assert spec.per_second_usd == rate
    assert spec.price_for(5) == five_seconds


def test_the_markup_is_thirty_five_percent() -> None:
    assert Decimal("1.35") == MARKUP


@pytest.mark.parametrize("model", ALL_MODELS)
def test_every_rate_is_the_provider_cost_times_the_markup_exactly(model: str) -> None:
    spec = get_model(model)
    assert spec.per_second_usd == spec.provider_usd_per_second * Decimal("1.35")


@pytest.mark.parametrize("model", ALL_MODELS)
def test_every_rate_is_a_decimal_of_at_most_six_decimal_places(model: str) -> None:
    rate = get_model(model).per_second_usd
    assert isinstance(rate, Decimal)
    assert rate > 0
    assert decimal_places(rate) <= 6
    assert rate == rate.quantize(USD_QUANTUM)


@pytest.mark.parametrize("model", ALL_MODELS)
def test_every_price_is_the_rate_times_the_seconds_without_rounding(model: str) -> None:
    spec = get_model(model)
    for seconds in REQUESTABLE_DURATIONS:
        assert spec.price_for(seconds) == spec.per_second_usd * seconds


def test_only_the_prices_the_reference_marks_unverified_are_flagged_for_checking() -> None:
    unverified = {model for model, spec in CATALOG.items() if not spec.price_verified}
    assert unverified == {"hailuo-02-512p", "hailuo-02-768p", "hailuo-02-1080p", "veo-3-fast"}


# --- endpoints and request fields ------------------------------------------------------------


@pytest.mark.parametrize("model", ALL_MODELS)
def test_text_to_video_goes_to_the_reference_endpoint(model: str) -> None:
    expected, _ = REFERENCE_ENDPOINTS[model]
    spec = get_model(model)
    assert spec.text_to_video == expected
    if expected is not None:
        assert spec.endpoint(with_image=False) == expected


@pytest.mark.parametrize("model", ALL_MODELS)
def test_image_to_video_goes_to_the_reference_endpoint(model: str) -> None:
    _, expected = REFERENCE_ENDPOINTS[model]
    spec = get_model(model)
    assert spec.image_to_video == expected
    assert spec.endpoint(with_image=True) == expected


@pytest.mark.parametrize("model", ALL_MODELS)
def test_the_first_frame_is_sent_in_the_providers_own_field(model: str) -> None:
    assert get_model(model).image_field == REFERENCE_IMAGE_FIELD[model]


def test_kling_3_audio_and_silent_share_endpoints_and_differ_only_in_the_audio_switch() -> None:
    silent, audio = get_model("kling-3-pro"), get_model("kling-3-pro-audio")
    assert (silent.text_to_video, silent.image_to_video) == (
        audio.text_to_video,
        audio.image_to_video,
    )
    assert silent.fixed_params["generate_audio"] is False
    assert audio.fixed_params["generate_audio"] is True


def test_hailuo_512p_refuses_text_to_video_and_asks_for_an_image_url() -> None:
    spec = get_model("hailuo-02-512p")
    with pytest.raises(KymaError) as refused:
        spec.endpoint(with_image=False)
    assert refused.value.code is ErrorCode.INVALID_REQUEST
    assert refused.value.param == "image_url"


def test_hailuo_512p_accepts_image_to_video() -> None:
    spec = get_model("hailuo-02-512p")
    assert spec.endpoint(with_image=True) == "MiniMax-Hailuo-02"
    assert spec.input_modes == (InputMode.IMAGE,)


@pytest.mark.parametrize("model", [m for m in ALL_MODELS if m != "hailuo-02-512p"])
def test_every_other_model_accepts_both_text_and_image(model: str) -> None:
    assert get_model(model).input_modes == (InputMode.TEXT, InputMode.IMAGE)


@pytest.mark.parametrize(
    ("model", "resolution"),
    [("hailuo-02-512p", "512P"), ("hailuo-02-768p", "768P"), ("hailuo-02-1080p", "1080P")],
)
def test_minimax_models_send_their_resolution_in_minimax_spelling(
    model: str, resolution: str
) -> None:
    spec = get_model(model)
    assert spec.resolution == resolution
    assert spec.fixed_params["resolution"] == resolution


@pytest.mark.parametrize("model", ["seedance-2-pro", "seedance-2-fast"])
def test_seedance_models_pin_the_720p_resolution_they_are_priced_at(model: str) -> None:
    assert get_model(model).fixed_params["resolution"] == "720p"


@pytest.mark.parametrize(
    ("model", "resolution", "generate_audio"),
    [("veo-3-fast", "720p", False), ("veo-3", "1080p", True)],
)
def test_veo_models_always_send_resolution_and_the_audio_switch(
    model: str, resolution: str, generate_audio: bool
) -> None:
    spec = get_model(model)
    assert spec.resolution == resolution
    assert spec.fixed_params["resolution"] == resolution
    assert spec.fixed_params["generateAudio"] is generate_audio


def test_fixed_params_cannot_be_changed_through_the_catalog() -> None:
    with pytest.raises(TypeError):
        get_model("kling-3-pro").fixed_params["generate_audio"] = True  # type: ignore[index]


# --- audio -----------------------------------------------------------------------------------


@pytest.mark.parametrize("model", ALL_MODELS)
def test_each_model_has_its_documented_audio(model: str) -> None:
    assert get_model(model).audio is DOCUMENTED_AUDIO[model]


# --- durations -------------------------------------------------------------------------------


@pytest.mark.parametrize("model", ALL_MODELS)
def test_each_model_accepts_the_reference_durations(model: str) -> None:
    assert get_model(model).accepted_durations == REFERENCE_DURATIONS[model]


@pytest.mark.parametrize("model", ALL_MODELS)
@pytest.mark.parametrize("requested", REQUESTABLE_DURATIONS)
def test_upstream_duration_is_the_smallest_accepted_duration_covering_the_request(
    model: str, requested: int
) -> None:
    spec = get_model(model)
    sent = spec.upstream_duration(requested)
    assert sent in spec.accepted_durations
    covering = [d for d in spec.accepted_durations if d >= requested]
    if covering:
        assert sent >= requested
        assert sent == min(covering)
    else:
        assert sent == max(spec.accepted_durations)


@pytest.mark.parametrize(
    ("model", "requested", "sent"),
    [
        ("kling-2.5-pro", 7, 10),
        ("kling-2.5-pro", 3, 5),
        ("kling-2.5-pro", 5, 5),
        ("kling-2.5-pro", 10, 10),
        ("kling-3-pro", 1, 3),
        ("kling-3-pro", 7, 7),
        ("kling-3-pro-audio", 2, 3),
        ("seedance-2-pro", 2, 4),
        ("seedance-2-fast", 2, 4),
        ("seedance-2-fast", 9, 9),
        ("veo-3", 10, 8),
        ("veo-3-fast", 10, 8),
        ("veo-3", 5, 6),
        ("veo-3-fast", 1, 4),
        ("hailuo-02-768p", 7, 10),
        ("hailuo-02-512p", 3, 6),
    ],
)
def test_upstream_duration_spot_checks(model: str, requested: int, sent: int) -> None:
    assert get_model(model).upstream_duration(requested) == sent


@pytest.mark.parametrize("requested", REQUESTABLE_DURATIONS)
def test_hailuo_1080p_is_always_asked_for_six_seconds(requested: int) -> None:
    assert get_model("hailuo-02-1080p").upstream_duration(requested) == 6


# --- lookup ----------------------------------------------------------------------------------


@pytest.mark.parametrize("model", ALL_MODELS)
def test_get_model_finds_every_catalog_model(model: str) -> None:
    assert get_model(model) is CATALOG[model]


@pytest.mark.parametrize("model", ["sora-2", "", "KLING-3-PRO", "kling-3-pro ", "veo-3.1"])
def test_an_unknown_model_is_refused_as_invalid_model_naming_the_model_field(model: str) -> None:
    with pytest.raises(KymaError) as refused:
        get_model(model)
    assert refused.value.code is ErrorCode.INVALID_MODEL
    assert refused.value.param == "model"
