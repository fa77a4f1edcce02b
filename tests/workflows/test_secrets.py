"""No provider secret reaches workflow history, logs or a job's error message, on success or
on failure (the failure paths are where secrets usually leak: error bodies, echoed headers)."""

import logging

import pytest

from kyma_video.errors import JobStatus
from tests.providers.doubles.fal import FalQueueDouble, Operation
from tests.providers.doubles.fal import Fault as FalFault
from tests.providers.doubles.minimax import Endpoint, Fault, MiniMaxDouble
from tests.providers.doubles.vertex import TOKEN, VertexDouble, permission_denied
from tests.workflows.conftest import FAL_KEY, MINIMAX_KEY
from tests.workflows.harness import JobHarness

SECRETS = {"MiniMax API key": MINIMAX_KEY, "Vertex access token": TOKEN, "fal key": FAL_KEY}


async def test_no_secret_appears_in_histories_logs_or_job_errors(
    jobs: JobHarness,
    minimax: MiniMaxDouble,
    vertex: VertexDouble,
    fal: FalQueueDouble,
    caplog: pytest.LogCaptureFixture,
):
    caplog.set_level(logging.DEBUG)
    minimax.inject(Endpoint.CREATE, Fault.base_resp(1004))  # MiniMax's "wrong key" answer
    vertex.inject(permission_denied())
    fal.inject(Operation.SUBMIT, FalFault.http(401, {"detail": "Unauthorized"}))
    evidence: list[str] = []
    async with jobs.worker():
        for model in (*("hailuo-02-768p", "veo-3", "kling-3-pro") * 2,):
            handle, _ = await jobs.start_and_admit(jobs.request(model=model))
            job = (await handle.result()).job
            evidence.append(job.model_dump_json())
            evidence.append((await handle.fetch_history()).to_json())
    statuses = [job for job in evidence if '"status":"' in job]
    assert any('"status":"failed"' in s for s in statuses)
    assert any('"status":"succeeded"' in s for s in statuses)
    evidence.append(caplog.text)
    everything = "\n".join(evidence)
    assert JobStatus.SUCCEEDED.value in everything
    for provider in ("minimax", "vertex", "fal"):
        assert f'"provider":"{provider}"' in everything
    for what, secret in SECRETS.items():
        assert secret not in everything, f"the {what} leaked"
