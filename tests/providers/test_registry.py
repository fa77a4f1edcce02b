"""Routing: a model goes to its real provider once that provider's credentials are set, to the
simulated provider otherwise (when enabled), and nowhere if neither."""

import pytest
from pydantic import SecretStr

from kyma_video.errors import ErrorCode, KymaError
from kyma_video.settings import Settings
from providers.catalog import ProviderName, get_model
from providers.registry import build_registry


def test_with_no_credentials_everything_stays_simulated():
    registry = build_registry(Settings(simulated_provider=True))
    assert registry.names() == [ProviderName.SIMULATED]
    assert registry.route(get_model("hailuo-02-768p")).name is ProviderName.SIMULATED


def test_a_configured_provider_serves_its_models_and_only_those():
    settings = Settings(simulated_provider=True, minimax_api_key=SecretStr("mm-key"))
    registry = build_registry(settings)
    assert set(registry.names()) == {ProviderName.MINIMAX, ProviderName.SIMULATED}
    assert registry.route(get_model("hailuo-02-1080p")).name is ProviderName.MINIMAX
    assert registry.route(get_model("kling-3-pro")).name is ProviderName.SIMULATED


def test_a_fal_key_routes_the_kling_and_seedance_models_to_fal():
    registry = build_registry(Settings(simulated_provider=False, fal_key=SecretStr("fal-key")))
    assert registry.names() == [ProviderName.FAL]
    for model in ("kling-2.5-pro", "kling-3-pro", "kling-3-pro-audio", "seedance-2-pro"):
        assert registry.route(get_model(model)).name is ProviderName.FAL


def test_a_vertex_project_routes_the_veo_models_to_vertex():
    registry = build_registry(Settings(simulated_provider=False, vertex_project="kyma-test"))
    assert registry.names() == [ProviderName.VERTEX]
    assert registry.route(get_model("veo-3")).name is ProviderName.VERTEX


def test_without_a_provider_a_model_is_not_available():
    registry = build_registry(Settings(simulated_provider=False))
    with pytest.raises(KymaError) as raised:
        registry.route(get_model("veo-3"))
    assert raised.value.code is ErrorCode.INVALID_MODEL
