"""The workflow sandbox configuration every worker and replayer must share.

Our message models (pydantic) and the pure modules they depend on are passed through the
sandbox rather than re-imported per workflow run: re-importing them would create a second copy
of each model class, and pydantic refuses an instance of the "other" copy. These modules are
deterministic (no I/O at import or in use), which is what passing through requires.
"""

from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

PASSTHROUGH_MODULES = (
    "kyma_video",
    "providers",
    "activities",
    "workflows.messages",
    "pydantic",
    "pydantic_core",
)


def workflow_runner() -> SandboxedWorkflowRunner:
    return SandboxedWorkflowRunner(
        restrictions=SandboxRestrictions.default.with_passthrough_modules(*PASSTHROUGH_MODULES)
    )
