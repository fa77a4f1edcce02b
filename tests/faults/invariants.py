"""What must hold after any fault: the checks every scenario in ``tests/faults`` ends with.

A fault scenario injects trouble, lets the system recover, then calls :func:`assert_nothing_lost`
with what it can observe (the ledger, Temporal, the provider double's submission log, the blob
store's keys). The checks are the project's promises, stated once:

* every job is terminal, or still running in Temporal (correctly progressing);
* each job has exactly one hold and at most one settlement (exactly one once it is terminal),
  and only ``succeeded`` jobs are charged;
* every balance equals the sum of its ledger entries and is never negative;
* no upstream job was submitted twice once its id had been recorded;
* no blob object belongs to a job that did not succeed (orphans are returned for cleanup when
  a scenario tolerates them).
"""

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from temporalio.client import Client, WorkflowExecutionStatus

from kyma_video.errors import JobStatus
from ledger import EntryKind, JobRecord, Ledger

SETTLEMENTS = frozenset({EntryKind.USAGE, EntryKind.HOLD_RELEASE})


@dataclass
class Findings:
    """What the checks saw, for scenario-specific asserts on top of the invariants."""

    jobs: dict[str, JobRecord] = field(default_factory=dict)
    running: set[str] = field(default_factory=set)
    orphans: list[str] = field(default_factory=list)

    def statuses(self) -> Counter[JobStatus]:
        return Counter(job.status for job in self.jobs.values())


async def assert_nothing_lost(
    ledger: Ledger,
    account_ids: Iterable[str],
    *,
    temporal: Client | None = None,
    submissions: Mapping[str, int] | None = None,
    resubmission_allowed: Iterable[str] = (),
    blob_keys: Iterable[str] | None = None,
    tolerate_orphans: bool = False,
) -> Findings:
    """Assert the invariants above over every job of ``account_ids``; return what was seen.

    Args:
        temporal: When given, a job that is not terminal in the ledger must have a running
            workflow (it is still progressing, not stranded), and a terminal job's workflow
            must have closed.
        submissions: Upstream submissions counted by the provider double, by job id. Each job
            that reached the provider was submitted exactly once, except the jobs in
            ``resubmission_allowed`` (a crash between the provider's accept and the id being
            recorded may legitimately resubmit).
        blob_keys: Every object key in the job's blob store; keys that belong to no
            succeeded job are orphans.
        tolerate_orphans: Return orphans in :attr:`Findings.orphans` instead of failing.
    """
    findings = Findings()
    for account_id in account_ids:
        stored, summed = await ledger.audit(account_id)
        assert stored == summed, f"{account_id}: balance {stored} != sum of entries {summed}"
        assert stored >= 0, f"{account_id}: negative balance {stored}"
        for job in await ledger.jobs_for_account(account_id):
            findings.jobs[job.id] = job
            await _assert_settled_once(ledger, job)

    if temporal is not None:
        for job in findings.jobs.values():
            description = await temporal.get_workflow_handle(job.id).describe()
            running = description.status is WorkflowExecutionStatus.RUNNING
            if running:
                findings.running.add(job.id)
            if job.status.is_terminal:
                assert not running, f"{job.id} is {job.status} but its workflow still runs"
            else:
                assert running, (
                    f"{job.id} is stranded: {job.status} in the ledger, workflow "
                    f"{description.status.name if description.status else 'unknown'}"
                )

    if submissions is not None:
        allowed = set(resubmission_allowed)
        for job_id, count in submissions.items():
            if job_id in allowed:
                continue
            assert count <= 1, f"{job_id} was submitted upstream {count} times"

    if blob_keys is not None:
        published = {job.output_key for job in findings.jobs.values() if job.output_key}
        succeeded = {
            job.output_key
            for job in findings.jobs.values()
            if job.status is JobStatus.SUCCEEDED and job.output_key
        }
        assert published == succeeded, "a job that did not succeed still names an output"
        findings.orphans = sorted(key for key in blob_keys if key not in succeeded)
        if not tolerate_orphans:
            assert findings.orphans == [], f"orphaned blob objects: {findings.orphans}"
    return findings


async def _assert_settled_once(ledger: Ledger, job: JobRecord) -> None:
    kinds = Counter(entry.kind for entry in await ledger.entries_for_job(job.id))
    holds = kinds[EntryKind.HOLD]
    settlements = sum(kinds[kind] for kind in SETTLEMENTS)
    assert holds == 1, f"{job.id} has {holds} holds: {dict(kinds)}"
    if job.status.is_terminal:
        assert settlements == 1, f"{job.id} is {job.status} with {settlements} settlements"
    else:
        assert settlements == 0, f"{job.id} is {job.status} yet settled {dict(kinds)}"
    if job.status is JobStatus.SUCCEEDED:
        assert kinds[EntryKind.USAGE] == 1, f"{job.id} succeeded without a usage entry"
        assert job.charged_amount is not None
    else:
        assert kinds[EntryKind.USAGE] == 0, f"{job.id} is {job.status} but was charged"
