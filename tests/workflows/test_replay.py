"""Histories recorded from real runs must replay against today's workflow code.

A failure here means a code change would break jobs that are running now: make the change
behind ``workflow.patched`` instead of re-recording. New histories come from
``scripts/record_histories.py``.
"""

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from workflows import VideoJobWorkflow
from workflows.sandbox import workflow_runner

HISTORIES = {
    path.stem: path.read_text()
    for path in sorted((Path(__file__).parent / "histories").glob("*.json"))
}


def test_histories_for_every_terminal_path_are_committed():
    assert set(HISTORIES) >= {"success", "provider_failure", "expiry"}


@pytest.mark.parametrize("name", sorted(HISTORIES))
async def test_recorded_history_replays(name: str):
    history = WorkflowHistory.from_json(name, HISTORIES[name])
    replayer = Replayer(
        workflows=[VideoJobWorkflow],
        workflow_runner=workflow_runner(),
        data_converter=pydantic_data_converter,
    )
    result = await replayer.replay_workflow(history, raise_on_replay_failure=True)
    assert result.replay_failure is None
