"""deploy/compose.yaml: parses, every dependency and variable resolves, and the kyma-video
services are wired the way the processes expect (no Docker engine is needed to check this)."""

import http.server
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import yaml

from .manifests import (
    COMPOSE,
    COMPOSE_ENV_EXAMPLE,
    DEPLOY,
    ROOT,
    compose,
    env_file,
    interpolate,
    interpolated_names,
    named,
    service_environment,
)

TOP_LEVEL = {"name", "services", "volumes", "networks", "secrets", "configs"}
CONDITIONS = {"service_started", "service_healthy", "service_completed_successfully"}
KYMA_SERVICES = {"migrate": "migrate", "api": "api", "worker": "worker"}


def services() -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = compose()["services"]
    return found


def one_shot(service: dict[str, Any]) -> bool:
    return service.get("restart") == "no"


def built_here(service: dict[str, Any]) -> bool:
    return "build" in service


def seconds(duration: str) -> int:
    match = re.fullmatch(r"(?:(\d+)m)?(?:(\d+)s)?", duration)
    assert match and any(match.groups()), duration
    minutes, secs = (int(group or 0) for group in match.groups())
    return minutes * 60 + secs


def example_variables() -> dict[str, str]:
    return env_file(COMPOSE_ENV_EXAMPLE)


def commented_example_variables() -> set[str]:
    """Optional variables the example documents but leaves commented out."""
    return set(re.findall(r"^#([A-Z][A-Z0-9_]*)=", COMPOSE_ENV_EXAMPLE.read_text(), re.M))


def test_the_file_parses_and_has_only_known_top_level_keys():
    loaded = compose()
    assert loaded["name"] == "kyma-video"
    unknown = {key for key in loaded if key not in TOP_LEVEL and not key.startswith("x-")}
    assert not unknown


def test_every_dependency_exists_and_its_condition_can_be_met():
    for name, service in services().items():
        for target, dependency in (service.get("depends_on") or {}).items():
            assert target in services(), f"{name} depends on unknown service {target}"
            condition = dependency["condition"]
            assert condition in CONDITIONS, f"{name} -> {target}: {condition}"
            if condition == "service_healthy":
                assert "healthcheck" in services()[target], f"{target} has no healthcheck"
            if condition == "service_completed_successfully":
                assert one_shot(services()[target]), f"{target} is not a one-shot"


def test_the_dependency_graph_has_no_cycle():
    state: dict[str, str] = {}

    def visit(name: str) -> None:
        assert state.get(name) != "visiting", f"dependency cycle through {name}"
        if state.get(name) == "done":
            return
        state[name] = "visiting"
        for target in services()[name].get("depends_on") or {}:
            visit(target)
        state[name] = "done"

    for name in services():
        visit(name)


def test_every_service_built_from_the_dockerfile_has_a_healthcheck_or_is_one_shot():
    built = {name: service for name, service in services().items() if built_here(service)}
    assert set(built) == set(KYMA_SERVICES)
    for name, service in built.items():
        assert service["build"] == {"context": "..", "dockerfile": "deploy/Dockerfile"}
        assert (COMPOSE.parent / service["build"]["context"]).resolve() == ROOT
        assert one_shot(service) or "healthcheck" in service, name
        assert service["image"] == "kyma-video:local"


def test_every_long_running_service_restarts_and_every_one_shot_does_not():
    for name, service in services().items():
        assert service.get("restart") in {"no", "unless-stopped"}, name


def test_every_other_image_is_pinned_to_a_version():
    for name, service in services().items():
        if built_here(service):
            continue
        repository, _, tag = service["image"].rpartition(":")
        assert repository and tag and tag != "latest", f"{name}: {service['image']}"


def test_the_kyma_video_services_run_their_commands_in_production_mode():
    for name, command in KYMA_SERVICES.items():
        service = services()[name]
        assert service["command"] == [command]
        environment = service_environment(service, example_variables())
        assert environment["KYMA_ENVIRONMENT"] == "production"
        # The image is read-only at runtime; only /tmp is writable.
        assert service["read_only"] is True
        assert service["tmpfs"] == ["/tmp"]


def test_the_worker_drains_before_it_is_killed():
    worker = services()["worker"]
    environment = service_environment(worker, example_variables())
    drain = int(environment["KYMA_WORKER_GRACEFUL_SHUTDOWN_SECONDS"])
    assert seconds(worker["stop_grace_period"]) >= drain + 15


def test_the_api_and_worker_wait_for_migrations_search_attributes_and_storage():
    for name in ("api", "worker"):
        depends = services()[name]["depends_on"]
        for one_shot_service in ("migrate", "temporal-search-attributes", "minio-setup"):
            assert depends[one_shot_service]["condition"] == "service_completed_successfully"
    assert services()["migrate"]["depends_on"]["ledger-db"]["condition"] == "service_healthy"


def test_temporal_and_the_ledger_use_separate_databases():
    temporal = services()["temporal"]["environment"]
    assert temporal["POSTGRES_SEEDS"] == "temporal-db"
    assert temporal["DB"] == "postgres12"
    url = service_environment(services()["api"], example_variables())["KYMA_DATABASE_URL"]
    assert url.startswith("postgresql+asyncpg://") and "@ledger-db:5432/" in url
    assert services()["temporal-db"]["volumes"] != services()["ledger-db"]["volumes"]


def test_the_temporal_dynamic_config_is_mounted_where_the_server_reads_it():
    temporal = services()["temporal"]
    [mount] = temporal["volumes"]
    source, target, mode = mount.split(":")
    assert (DEPLOY / source).is_file()
    assert target == temporal["environment"]["DYNAMIC_CONFIG_FILE_PATH"]
    assert mode == "ro"
    assert yaml.safe_load((DEPLOY / source).read_text())


def test_the_search_attribute_one_shot_runs_the_kubernetes_job_script():
    [compose_script] = services()["temporal-search-attributes"]["command"]
    job = named("Job", "kyma-video-register-search-attributes")
    [job_script] = job["spec"]["template"]["spec"]["containers"][0]["args"]
    assert interpolate(compose_script, {}) == job_script
    assert (
        services()["temporal-search-attributes"]["image"]
        == (job["spec"]["template"]["spec"]["containers"][0]["image"])
    )


def test_the_bucket_is_public_only_under_the_video_prefix():
    [script] = services()["minio-setup"]["command"]
    environment = service_environment(services()["worker"], example_variables())
    bucket, prefix = environment["KYMA_S3_BUCKET"], environment["KYMA_S3_PREFIX"]
    assert f"mc mb --ignore-existing local/{bucket}\n" in script
    assert f"mc anonymous set download local/{bucket}/{prefix.rstrip('/')}\n" in script
    assert environment["KYMA_BLOB_PUBLIC_BASE_URL"].endswith(f"/{bucket}")


# --------------------------------------------------------------------- variables & secrets


def test_every_dollar_is_an_interpolation_or_escaped():
    """Compose interpolates `$NAME` too: a shell `$` in a command must be written `$$`."""
    text = COMPOSE.read_text()
    stray = re.findall(r".*\$(?![${]).*", text.replace("$$", ""))
    assert not stray, stray


def test_every_interpolated_variable_is_in_the_env_file_example():
    used = interpolated_names(COMPOSE.read_text())
    assert used <= set(example_variables()), used - set(example_variables())


def test_every_variable_of_the_env_file_example_is_used():
    text = COMPOSE.read_text()
    passed_through = {
        key
        for service in services().values()
        for key, value in (service.get("environment") or {}).items()
        if value is None
    }
    documented = set(example_variables()) | commented_example_variables()
    assert documented == interpolated_names(text) | passed_through


def test_the_env_file_example_holds_placeholders_and_the_real_one_is_ignored():
    not_secret = {"MINIO_ROOT_USER", "S3_ACCESS_KEY_ID"}
    for key, value in example_variables().items():
        if key not in not_secret:
            assert value.startswith("CHANGE-ME"), f"{key} looks like a real value"
    assert "compose.env" in (DEPLOY / ".gitignore").read_text().split()


def test_the_compose_file_fails_loudly_without_the_env_file():
    for name in interpolated_names(COMPOSE.read_text()):
        with pytest.raises(KeyError):
            interpolate("${" + name + ":?missing}", {})
    with pytest.raises(KeyError, match=r"compose\.env"):
        service_environment(services()["api"], {})


def test_optional_provider_credentials_are_unset_unless_given():
    worker = services()["worker"]
    environment = service_environment(worker, example_variables())
    assert "FAL_KEY" not in environment
    environment = service_environment(worker, {**example_variables(), "FAL_KEY": "secret"})
    assert environment["FAL_KEY"] == "secret"
    # The api and migrate services never see provider credentials.
    for name in ("api", "migrate"):
        assert "FAL_KEY" not in (services()[name].get("environment") or {})


# ----------------------------------------------------------------------------- healthchecks


class _Answer(http.server.BaseHTTPRequestHandler):
    path_to_answer = "/"

    def do_GET(self) -> None:
        self.send_response(200 if self.path == self.path_to_answer else 404)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def answering(path: str) -> Iterator[int]:
    handler = type("Handler", (_Answer,), {"path_to_answer": path})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(
    ("name", "port", "path"), [("api", 8000, "/readyz"), ("worker", 9464, "/metrics")]
)
def test_the_kyma_video_healthchecks_work(name: str, port: int, path: str):
    """Run each healthcheck command (with this interpreter) against a stand-in server."""
    test = services()[name]["healthcheck"]["test"]
    assert test[:3] == ["CMD", "python", "-c"]
    code = test[3]
    assert f"http://127.0.0.1:{port}{path}" in code
    with answering(path) as stand_in:
        result = subprocess.run(
            [sys.executable, "-c", code.replace(f":{port}/", f":{stand_in}/")],
            capture_output=True,
            timeout=30,
        )
    assert result.returncode == 0, result.stderr.decode()
    with answering("/elsewhere") as stand_in:
        result = subprocess.run(
            [sys.executable, "-c", code.replace(f":{port}/", f":{stand_in}/")],
            capture_output=True,
            timeout=30,
        )
    assert result.returncode != 0
    environment = service_environment(services()[name], example_variables())
    if name == "worker":
        assert environment["KYMA_WORKER_METRICS_ADDRESS"] == f"0.0.0.0:{port}"
    else:
        assert environment["KYMA_API_PORT"] == str(port)
        assert environment["KYMA_API_HOST"] == "0.0.0.0"
