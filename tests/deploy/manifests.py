"""Loading what deploy/ holds, for the tests beside this module."""

import re
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
DOCKERFILE = DEPLOY / "Dockerfile"
COMPOSE = DEPLOY / "compose.yaml"
COMPOSE_ENV_EXAMPLE = DEPLOY / "compose.env.example"

#: The namespace every kyma-video resource lives in.
NAMESPACE = "kyma-video"

#: `$$` (a literal `$`), or `${NAME}`, `${NAME:-default}`, `${NAME:?message}` (and the forms
#: without the colon).
_INTERPOLATION = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")


def manifest_files() -> list[Path]:
    return sorted(K8S.glob("*.yaml"))


def resource_files() -> list[Path]:
    """The manifests kustomize applies: everything but the kustomization and examples."""
    return [
        path
        for path in manifest_files()
        if path.name != "kustomization.yaml" and not path.name.endswith(".example.yaml")
    ]


def load_documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def resources() -> list[dict[str, Any]]:
    return [doc for path in resource_files() for doc in load_documents(path)]


def of_kind(kind: str) -> list[dict[str, Any]]:
    return [doc for doc in resources() if doc["kind"] == kind]


def named(kind: str, name: str) -> dict[str, Any]:
    [doc] = [doc for doc in of_kind(kind) if doc["metadata"]["name"] == name]
    return doc


def config_map() -> dict[str, str]:
    data: dict[str, str] = named("ConfigMap", "kyma-video-config")["data"]
    return data


def example_secrets() -> dict[str, dict[str, str]]:
    """Secret name -> its documented keys and placeholder values."""
    return {
        doc["metadata"]["name"]: doc["stringData"]
        for doc in load_documents(K8S / "secret.example.yaml")
    }


def pod_specs() -> list[tuple[str, dict[str, Any]]]:
    """(workload name, pod spec) of every Deployment and Job."""
    return [
        (doc["metadata"]["name"], doc["spec"]["template"]["spec"])
        for doc in resources()
        if doc["kind"] in {"Deployment", "Job"}
    ]


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return loaded


def env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines of a dotenv file, comments and blank lines skipped."""
    values = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        assert sep, f"not KEY=VALUE: {line!r}"
        values[key.strip()] = value.strip()
    return values


def interpolated_names(text: str) -> set[str]:
    return {match.group(1) for match in _INTERPOLATION.finditer(text) if match.group(1)}


def interpolate(text: str, variables: dict[str, str]) -> str:
    """Compose's variable interpolation, for the forms compose.yaml uses."""

    def replace(match: re.Match[str]) -> str:
        name, operator, argument = match.groups()
        if name is None:
            return "$"
        value = variables.get(name)
        unset = value is None or (operator is not None and operator.startswith(":") and not value)
        if operator and operator.endswith("-") and unset:
            return argument or ""
        if operator and operator.endswith("?") and unset:
            raise KeyError(f"{name}: {argument}")
        return value or ""

    return _INTERPOLATION.sub(replace, text)


def service_environment(service: dict[str, Any], variables: dict[str, str]) -> dict[str, str]:
    """A compose service's container environment with `variables` (the env file) applied;
    a variable without a value is passed through from them, or left unset."""
    environment: dict[str, str] = {}
    for key, value in (service.get("environment") or {}).items():
        if value is None:
            if key in variables:
                environment[key] = variables[key]
            continue
        environment[key] = interpolate(str(value), variables)
    return environment
