"""Every KYMA_* variable deploy/ names is a real setting, and the production configuration
deploy/ ships (Kubernetes ConfigMap + Secret keys, compose environment) passes Settings'
production validation: PostgreSQL, S3, no simulated provider."""

import os
import re

import pytest
from pydantic import ValidationError

from kyma_video.settings import Environment, Settings

from .manifests import (
    COMPOSE_ENV_EXAMPLE,
    DEPLOY,
    compose,
    config_map,
    env_file,
    example_secrets,
    service_environment,
)

#: Files under deploy/ that are not text.
BINARY_SUFFIXES = {".png", ".jpg", ".gz"}


def setting_variables() -> set[str]:
    prefix = Settings.model_config.get("env_prefix", "")
    return {f"{prefix}{name}".upper() for name in Settings.model_fields}


def deploy_files() -> list[str]:
    return [
        str(path.relative_to(DEPLOY))
        for path in sorted(DEPLOY.rglob("*"))
        if path.is_file() and path.suffix not in BINARY_SUFFIXES
    ]


@pytest.mark.parametrize("relative", deploy_files())
def test_every_kyma_variable_named_in_deploy_is_a_setting(relative: str):
    text = (DEPLOY / relative).read_text()
    named = set(re.findall(r"\bKYMA_[A-Z0-9_]+\b", text))
    unknown = named - setting_variables()
    assert not unknown, f"{relative} names variables no setting reads: {sorted(unknown)}"


def test_the_files_checked_include_every_kind_of_deploy_file():
    checked = deploy_files()
    for expected in (
        "Dockerfile",
        "compose.yaml",
        "compose.env.example",
        "k8s/configmap.yaml",
        "k8s/secret.example.yaml",
        "temporal/register-search-attributes.sh",
    ):
        assert expected in checked


def settings_from(environment: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings as a process with exactly `environment` (and no other KYMA_*) reads them."""
    for key in list(os.environ):
        if key.startswith("KYMA_"):
            monkeypatch.delenv(key)
    for key, value in environment.items():
        monkeypatch.setenv(key, value)
    return Settings()


def test_the_configmap_holds_only_settings():
    assert set(config_map()) <= setting_variables()


def test_the_kubernetes_configuration_passes_production_validation(
    monkeypatch: pytest.MonkeyPatch,
):
    environment = {**config_map(), **example_secrets()["kyma-video-secrets"]}
    settings = settings_from(environment, monkeypatch)
    assert settings.environment is Environment.PRODUCTION
    assert settings.resolved_database_url.startswith("postgresql+asyncpg://")
    assert settings.s3_bucket
    assert not settings.simulated_provider
    assert settings.worker_metrics_address == "0.0.0.0:9464"


def test_without_the_secret_the_configmap_alone_is_refused(monkeypatch: pytest.MonkeyPatch):
    """Shows the check above exercises the production validator: the database URL (with its
    password) lives only in the Secret."""
    with pytest.raises(ValidationError, match="KYMA_DATABASE_URL"):
        settings_from(config_map(), monkeypatch)


def test_the_migration_job_has_everything_production_settings_need(
    monkeypatch: pytest.MonkeyPatch,
):
    """The job receives the ConfigMap plus only KYMA_DATABASE_URL from the Secret."""
    secret = example_secrets()["kyma-video-secrets"]
    environment = {**config_map(), "KYMA_DATABASE_URL": secret["KYMA_DATABASE_URL"]}
    settings_from(environment, monkeypatch)


@pytest.mark.parametrize("service", ["migrate", "api", "worker"])
def test_the_compose_services_pass_production_validation(
    service: str, monkeypatch: pytest.MonkeyPatch
):
    variables = env_file(COMPOSE_ENV_EXAMPLE)
    environment = service_environment(compose()["services"][service], variables)
    settings = settings_from(
        {key: value for key, value in environment.items() if key.startswith("KYMA_")},
        monkeypatch,
    )
    assert settings.environment is Environment.PRODUCTION
    assert settings.s3_endpoint_url == "http://minio:9000"
    assert "ledger-db" in settings.resolved_database_url
