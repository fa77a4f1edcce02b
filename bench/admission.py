"""Admission latency: ``POST /v1/videos/generations`` at 1, 20 and 100 concurrent clients, against
a bare update-with-start on the same Temporal server.

Subject: the real API process (uvicorn, as ``kyma-video api`` runs it) and the real worker
process, on a fresh PostgreSQL ledger and a Temporal dev server, with the simulated provider. A
POST authenticates the key, counts the request against the rate limit, and update-with-starts
the job's workflow, whose ``admit`` update runs the ``place_hold`` activity (one ledger
transaction) and answers 202.

Floor: from the same benchmark process, a Temporal client update-with-starts a no-op workflow
whose update runs one no-op activity (``FloorJob`` of ``bench.floor_workflows`` with no activity
after the admission's), served by the floor worker in its own process with the product worker's
options. That is the Temporal work an admission cannot avoid (start, workflow task, activity
task, workflow task, update result), with the same id policies and data converter; what the
product adds on top is the HTTP hop, authentication, the rate-limit counter, the hold
transaction, and what its workflow does around them. The target is p50 ≤ 1.3× and p99 ≤ 1.5×
the floor's.

Load: N clients, each with its own keep-alive connection and its own account and API key,
sending requests one after another (every request a fresh idempotency key). One account's
admissions are serialised on its balance row by design, which is not what this figure is
about. Floor rounds and subject rounds alternate (floor first in one round, subject first in
the next), so a load spike on the machine hits both; a warm-up request per client and side is
discarded. The CPU every process spends per request is read (psutil) over the same rounds, so
the section shows where a difference comes from.

Read the figures as ratios: the raw milliseconds are this machine's, with everything (Temporal,
PostgreSQL, API, worker, floor worker, load generator) sharing its cores. Once the clients
saturate the machine (20 and 100 clients on 2 cores), latency is clients / throughput, and the
ratio approaches the ratio of total CPU per admission.
"""
import asyncio
import contextlib
import json
import statistics
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx
import psutil  # type: ignore[import-untyped]
from sqlalchemy import text
from temporalio.client import Client, WithStartWorkflowOperation
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.testing import WorkflowEnvironment

from bench._cli import standalone
from bench.floor_workflows import FloorJobWorkflow, floor_worker_process
from bench.report import Figure, Goal, Section, p50_p99
from bench.stack import (
    compiled_bytecode,
    free_port,
    kyma_process,
    postgres_database,
    temporal_dev_server,
)
from ledger import Ledger

COMMAND = "python -m bench.admission"
SUBJECT, FLOOR = "POST", "floor"
LEVELS = (1, 20, 100)
#: Far above anything the benchmark sends, so the limits are checked (the product's cost) but
#: never refuse.
UNLIMITED_TIER = {"requests_per_minute": 1_000_000_000, "jobs_in_flight": 1_000_000_000}
MODEL = "kling-2.5-pro"
PROMPT = "a benchmark of admission latency"


@dataclass(frozen=True)
class Plan:
    """Per concurrency level: requests per client per round, and measured rounds per side."""

    per_client: int
    rounds: int


FULL = {1: Plan(20, 8), 20: Plan(6, 6), 100: Plan(2, 6)}
QUICK = {1: Plan(8, 2), 20: Plan(2, 2), 100: Plan(1, 1)}


@dataclass(frozen=True)
class Tenant:
    """A funded account with one API key."""

    account_id: str
    key_id: str
    headers: dict[str, str]


@dataclass
class KymaStack:
    """The running API (``base_url``), its ledger, the Temporal client when Temporal runs, and
    every process started, by role (for CPU accounting)."""

    base_url: str
    ledger: Ledger
    temporal: Client | None
    processes: dict[str, psutil.Process]

    async def tenants(self, count: int) -> list[Tenant]:
        """``count`` funded accounts, each with a key."""

        async def one(index: int) -> Tenant:
            account = await self.ledger.create_account(
                f"bench-{index}", balance=Decimal(1_000_000)
            )
            key, plaintext = await self.ledger.create_api_key(account.id)
            return Tenant(account.id, key.id, {"Authorization": f"Bearer {plaintext}"})

        return list(await asyncio.gather(*(one(i) for i in range(count))))

    async def database_backends(self) -> list[psutil.Process]:
        """The PostgreSQL server processes serving this run's database right now."""
        async with self.ledger.engine.connect() as connection:
            pids = await connection.scalars(
                text(
                    "SELECT pid FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            )
            return [psutil.Process(pid) for pid in pids if psutil.pid_exists(pid)]


class CpuMeter:
    """CPU seconds (user + system) each process of the stack spends, counted per side (floor or
    subject) over the rounds measured, so a reader sees where a difference comes from.

    PostgreSQL is the sum over the backends serving the run's database at the start and end of
    each round (pooled connections live for the whole run)."""

    def __init__(self, stack: KymaStack) -> None:
        self._stack = stack
        self.seconds: dict[str, dict[str, float]] = {}
        self.requests: dict[str, int] = {}

    async def _read(self) -> dict[str, float]:
        readings = {name: _cpu(process) for name, process in self._stack.processes.items()}
        readings["PostgreSQL"] = sum(map(_cpu, await self._stack.database_backends()))
        readings["load generator"] = _cpu(psutil.Process())
        return readings

    @contextlib.asynccontextmanager
    async def counting(self, side: str) -> AsyncIterator[None]:
        """Count the CPU spent inside the block for ``side`` (requests: :meth:`add`)."""
        before = await self._read()
        yield
        after = await self._read()
        totals = self.seconds.setdefault(side, {})
        for name, value in after.items():
            totals[name] = totals.get(name, 0.0) + max(0.0, value - before.get(name, value))

    def add(self, side: str, requests: int) -> None:
        self.requests[side] = self.requests.get(side, 0) + requests

    def per_request_ms(self, side: str, roles: Mapping[str, str] | None = None) -> dict[str, float]:
        """CPU ms per request of ``side`` by process (``roles`` renames some: the floor's
        worker is shown as the worker); processes under 0.05 ms are left out."""
        count = self.requests.get(side, 0)
        shown: dict[str, float] = {}
        for name, seconds in self.seconds.get(side, {}).items():
            if count and seconds * 1000 / count >= 0.05:
                role = (roles or {}).get(name, name)
                shown[role] = shown.get(role, 0.0) + seconds * 1000 / count
        return shown

    def note(
        self,
        subject: str,
        floor: str,
        floor_roles: Mapping[str, str] | None = None,
        heading: str = "",
    ) -> str:
        """One line: CPU ms per request by process, subject then floor."""
        mine, theirs = self.per_request_ms(subject), self.per_request_ms(floor, floor_roles)
        parts = []
        for name in sorted(set(mine) | set(theirs), key=lambda n: -mine.get(n, 0.0)):
            floor_part = f" / {theirs[name]:.2f}" if name in theirs else ""
            parts.append(f"{name} {mine.get(name, 0.0):.2f}{floor_part}")
        total = sum(mine.values()), sum(theirs.values())
        return (
            f"{heading}CPU ms per request, {subject} / {floor} (measured rounds): "
            + "; ".join(parts)
            + f"; total {total[0]:.2f} / {total[1]:.2f}."
        )


def _cpu(process: psutil.Process) -> float:
    try:
        times = process.cpu_times()
    except psutil.Error:
        return 0.0
    return float(times.user + times.system)


def settings_env(database_url: str, address: str, blob_dir: str, port: int) -> dict[str, str]:
    """``KYMA_*`` for the API and worker processes.

    The tier limits are effectively unlimited (still checked on every request). The simulated
    upstream runs for an hour and the simulated provider's task queue is rate-limited to one
    call per thousand seconds, so an admitted job's pipeline (submit, poll, rehost) stays parked
    in Temporal for the whole run: these benchmarks measure admission and reads, not the
    concurrent work of earlier jobs (that is the throughput benchmark's subject).
    """
    return {
        "KYMA_ENVIRONMENT": "development",
        "KYMA_DATABASE_URL": database_url,
        "KYMA_TEMPORAL_ADDRESS": address,
        "KYMA_TASK_QUEUE": f"bench-{uuid.uuid4().hex[:12]}",
        "KYMA_BLOB_BACKEND": "local",
        "KYMA_BLOB_DIR": blob_dir,
        "KYMA_SIMULATED_PROVIDER": "true",
        "KYMA_SIMULATED_MIN_SECONDS": "3600",
        "KYMA_PROVIDER_LIMITS": json.dumps({"simulated": {"requests_per_second": 0.001}}),
        "KYMA_TIERS": json.dumps({"default": UNLIMITED_TIER}),
        "KYMA_API_HOST": "127.0.0.1",
        "KYMA_API_PORT": str(port),
    }


async def _enter_together(
    stack: contextlib.ExitStack,
    managers: list[contextlib.AbstractContextManager[subprocess.Popen[bytes]]],
) -> list[subprocess.Popen[bytes]]:
    """Start several processes at once (each waits for its own readiness in a thread); what
    each manager gave, in order."""
    results = await asyncio.gather(
        *(asyncio.to_thread(manager.__enter__) for manager in managers), return_exceptions=True
    )
    for manager, result in zip(managers, results, strict=True):
        if not isinstance(result, BaseException):
            stack.push(manager)
    started = []
    for result in results:
        if isinstance(result, BaseException):
            raise result
        started.append(result)
    return started


def _dev_server_process() -> psutil.Process:
    """The ``temporal server start-dev`` process this benchmark process started."""
    for child in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            if "start-dev" in child.cmdline():
                return child
    raise RuntimeError("no Temporal dev server among this process's children")


@contextlib.asynccontextmanager
async def kyma_stack(
    *, temporal: bool = True, floor_task_queue: str | None = None
) -> AsyncIterator[KymaStack]:
    """A fresh PostgreSQL ledger and the API process; with ``temporal``, a Temporal dev server
    and the worker process too (and, if asked, the floor worker on ``floor_task_queue``).
    Without Temporal the API still starts (it connects to Temporal lazily) and serves reads."""
    async with contextlib.AsyncExitStack() as servers:
        client: Client | None = None
        address = f"127.0.0.1:{free_port()}"  # nothing listens there unless Temporal runs
        if temporal:
            # Both start at once; both finish starting before a failure of either is raised,
            # so whichever did start is in the stack and stopped.
            started_database, started_temporal = await asyncio.gather(
                servers.enter_async_context(postgres_database()),
                servers.enter_async_context(temporal_dev_server()),
                return_exceptions=True,
            )
            for outcome in (started_database, started_temporal):
                if isinstance(outcome, BaseException):
                    raise outcome
            assert isinstance(started_database, str)
            assert isinstance(started_temporal, WorkflowEnvironment)
            database_url, env = started_database, started_temporal
            client, address = env.client, env.client.service_client.config.target_host
        else:
            database_url = await servers.enter_async_context(postgres_database())
        ledger = Ledger.from_url(database_url)
        servers.push_async_callback(ledger.close)
        blobs = servers.enter_context(tempfile.TemporaryDirectory())
        servers.enter_context(compiled_bytecode())
        port = free_port()
        kyma_env = settings_env(database_url, address, blobs, port)
        roles: dict[str, contextlib.AbstractContextManager[subprocess.Popen[bytes]]] = {
            "API": kyma_process("api", kyma_env, wait_port=port)
        }
        if temporal:
            roles["worker"] = kyma_process("worker", kyma_env, ready=b"worker polling")
        if floor_task_queue is not None:
            floor_env = {**kyma_env, "KYMA_TASK_QUEUE": floor_task_queue}
            roles["floor worker"] = floor_worker_process(floor_env)
        started = await _enter_together(
            servers.enter_context(contextlib.ExitStack()), list(roles.values())
        )
        processes = {
            role: psutil.Process(process.pid)
            for role, process in zip(roles, started, strict=True)
        }
        if temporal:
            processes["Temporal server"] = _dev_server_process()
        yield KymaStack(f"http://127.0.0.1:{port}", ledger, client, processes)


@contextlib.asynccontextmanager
async def http_clients(base_url: str, count: int) -> AsyncIterator[list[httpx.AsyncClient]]:
    """One HTTP client per caller, each with its one keep-alive connection, as independent
    callers would have. (One shared client's pool costs the load generator time per request
    that grows with the number of connections: at 50 it was 4 ms, the load generator and not
    the server set the pace.)"""
    async with contextlib.AsyncExitStack() as stack:
        yield [
            await stack.enter_async_context(
                httpx.AsyncClient(
                    base_url=base_url,
                    timeout=60,
                    limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
                )
            )
            for _ in range(count)
        ]


class KeepAliveRace:
    """Counts requests sent a second time because the server closed the connection under them.

    uvicorn closes a keep-alive connection after 5 s idle (a caller's connection idles while
    the other side's round runs), and a request can be sent just as that close arrives. Every
    request here is safe to repeat (reads, and admissions carrying their idempotency key), so
    it is sent once more; its latency includes both tries."""

    resent = 0

    @classmethod
    async def send(
        cls, client: httpx.AsyncClient, method: str, url: str, **options: Any
    ) -> httpx.Response:
        try:
            return await client.request(method, url, **options)
        except (httpx.ReadError, httpx.WriteError, httpx.RemoteProtocolError):
            cls.resent += 1
            return await client.request(method, url, **options)


async def closed_loop(
    clients: int, per_client: int, request: Callable[[int], Awaitable[None]]
) -> list[float]:
    """``clients`` callers each sending ``per_client`` requests back to back; the latencies in
    milliseconds."""
    latencies: list[float] = []

    async def caller(index: int) -> None:
        for _ in range(per_client):
            started = time.perf_counter()
            await request(index)
            latencies.append((time.perf_counter() - started) * 1000)

    await asyncio.gather(*(caller(i) for i in range(clients)))
    return latencies


def video_admission(
    http: list[httpx.AsyncClient], tenants: list[Tenant]
) -> Callable[[int], Awaitable[None]]:
    async def post(index: int) -> None:
        response = await KeepAliveRace.send(
            http[index],
            "POST",
            "/v1/videos/generations",
            headers=tenants[index].headers,
            json={
                "model": MODEL,
                "prompt": PROMPT,
                "duration": 5,
                "idempotency_key": uuid.uuid4().hex,
            },
        )
        if response.status_code != 202:
            raise RuntimeError(f"admission answered {response.status_code}: {response.text}")

    return post


def floor_admission(temporal: Client, task_queue: str) -> Callable[[int], Awaitable[None]]:
    async def admit(_: int) -> None:
        job_id = f"floor-{uuid.uuid4().hex}"
        await temporal.execute_update_with_start_workflow(
            FloorJobWorkflow.admit,
            start_workflow_operation=WithStartWorkflowOperation(
                FloorJobWorkflow.run,
                0,  # no activity after the admission's one
                id=job_id,
                task_queue=task_queue,
                # The product's policies (kyma_video.client), so the server does the same checks.
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
            ),
        )

    return admit


async def interleaved(
    clients: int,
    plan: Plan,
    floor: Callable[[int], Awaitable[None]],
    subject: Callable[[int], Awaitable[None]],
    meter: CpuMeter,
) -> tuple[list[float], list[float]]:
    """A warm-up request from every client on each side (discarded: it opens connections),
    then measured rounds alternating which side goes first; the latencies (ms) of the floor
    and of the subject."""
    await closed_loop(clients, 1, floor)
    await closed_loop(clients, 1, subject)
    samples: dict[str, list[float]] = {FLOOR: [], SUBJECT: []}
    sides = [(FLOOR, floor), (SUBJECT, subject)]
    for round_number in range(plan.rounds):
        for side, request in sides if round_number % 2 == 0 else reversed(sides):
            async with meter.counting(side):
                samples[side] += await closed_loop(clients, plan.per_client, request)
            meter.add(side, clients * plan.per_client)
    return samples[FLOOR], samples[SUBJECT]


def figures_for(clients: int, floor_ms: list[float], subject_ms: list[float]) -> list[Figure]:
    f50, f99 = p50_p99(floor_ms)
    s50, s99 = p50_p99(subject_ms)
    raw = (
        f"POST p50 {s50:.1f} / p99 {s99:.1f} ms; floor p50 {f50:.1f} / p99 {f99:.1f} ms; "
        f"n = {len(subject_ms)} + {len(floor_ms)}"
    )
    floor_name = "bare update-with-start"
    return [
        Figure(f"p50, {clients} client{'s' * (clients > 1)}", s50, "ms", 1.3, Goal.AT_MOST,
               floor=f50, floor_name=floor_name, raw=raw),
        Figure(f"p99, {clients} client{'s' * (clients > 1)}", s99, "ms", 1.5, Goal.AT_MOST,
               floor=f99, floor_name=floor_name, raw=raw),
    ]  # fmt: skip


def mean_rate(clients: int, samples: list[float]) -> float:
    """Requests per second a closed loop of ``clients`` sustains at these latencies."""
    return clients * 1000 / statistics.fmean(samples)


async def run(quick: bool) -> Section:
    plans: Mapping[int, Plan] = QUICK if quick else FULL
    floor_queue = f"bench-floor-{uuid.uuid4().hex[:12]}"
    section = Section(1, "Admission latency", COMMAND + (" --quick" if quick else ""))
    cpu_notes = []
    async with kyma_stack(floor_task_queue=floor_queue) as stack:
        assert stack.temporal is not None
        tenants = await stack.tenants(max(LEVELS))
        async with http_clients(stack.base_url, max(LEVELS)) as http:
            subject = video_admission(http, tenants)
            floor = floor_admission(stack.temporal, floor_queue)
            rates = []
            for clients in LEVELS:
                meter = CpuMeter(stack)
                floor_ms, subject_ms = await interleaved(
                    clients, plans[clients], floor, subject, meter
                )
                section.figures += figures_for(clients, floor_ms, subject_ms)
                cpu_notes.append(
                    meter.note(SUBJECT, FLOOR, {"floor worker": "worker"}, f"{clients} clients: ")
                )
                rates.append(
                    f"{clients}: {mean_rate(clients, subject_ms):.0f} vs "
                    f"{mean_rate(clients, floor_ms):.0f}"
                )
    section.notes += [
        "Floor: the same benchmark process update-with-starts a no-op workflow whose update runs "
        "one no-op activity (`FloorJob` in `bench/floor_workflows.py`, 0 activities after "
        "admission), served by its own worker process with the product worker's options, on the "
        "same Temporal dev server; floor and POST rounds alternate, warm-up requests discarded.",
        "Each client is its own account and API key and sends requests back to back, each with a "
        "fresh idempotency key. The tier limits are set far above the load "
        "(`KYMA_TIERS` requests_per_minute and jobs_in_flight 1,000,000,000): the counters are "
        "still written and checked on every request, they just never refuse.",
        "An admitted job's pipeline is parked for the run (the simulated provider's task queue is "
        "rate-limited to 0.001 calls/s and its upstream takes an hour), so the figure is "
        "admission alone, not admission competing with earlier jobs' submits and polls. The "
        "commands the workflow issues in the same workflow task as the admission (schedule the "
        "submit, start the deadline timer, upsert search attributes) are counted: they delay "
        "the update's answer.",
        "Processes get compiled bytecode (`bench.stack.compiled_bytecode`), as an installed "
        "package has: without it Temporal's workflow sandbox recompiles the workflow module's "
        "source for every workflow run.",
        "Admissions/s sustained (clients: POST vs floor): " + "; ".join(rates) + ".",
        *cpu_notes,
    ]
    if not section.met:
        section.notes.append(
            "Why a target is missed (py-spy of the worker and the API under this benchmark's "
            "load; the CPU lines above are this run's): the product worker spends about twice "
            "the floor worker's CPU per "
            "admission. Temporal's workflow sandbox imports `workflows/video_job.py` afresh for "
            "every run (its `@workflow.defn` class processing and the import are ~15% of the "
            "worker's CPU; the floor's module is smaller), the hold is one ledger transaction "
            "of six statements (~12%), and the job's payloads are larger pydantic models. The "
            "Temporal server does 10-20% more per admission: three search attributes at start, "
            "two upserted at admission, and the job's next commands in the same workflow task. "
            "The API's own part is small (the Temporal client call is most of it). At 1 client "
            "both sides wait mostly on the dev server: the activity round trip inside an update "
            "takes either ~30 or ~100 ms there even with nothing else running (both modes show "
            "in the floor itself; SDK-side, fewer activity pollers make ~100 ms the rule), so "
            "the 1-client ratio mostly says which mode each side met. Once the machine "
            "saturates (20 and 100 clients here) the ratio approaches the CPU ratio."
        )
    if KeepAliveRace.resent:
        section.notes.append(
            f"{KeepAliveRace.resent} request(s) met a keep-alive connection the server had just "
            "closed as idle and were sent again (see `KeepAliveRace`)."
        )
    return section


if __name__ == "__main__":
    standalone(run, __doc__)
