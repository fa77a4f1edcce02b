"""``kyma-video dev`` as a newcomer runs it: a subprocess in an empty directory, nothing else
running. The printed key works, a job succeeds, the Temporal UI answers, and Ctrl-C leaves no
process behind."""

import asyncio
import os
import re
import signal
import socket
import sys
from pathlib import Path

import httpx

from tests.support import free_port

BIN = Path(sys.executable).parent


def children_of(pid: int) -> set[int]:
    found = set()
    for status in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = status.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            child = int(status.parent.name)
            found |= {child} | children_of(child)
    return found


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"


def port_open(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


async def finished(http: httpx.AsyncClient, job_id: str, auth: dict[str, str]) -> dict[str, str]:
    async with asyncio.timeout(60):
        while True:
            job: dict[str, str] = (await http.get(f"/v1/jobs/{job_id}", headers=auth)).json()
            if job["status"] in {"succeeded", "failed", "refunded", "expired"}:
                return job
            await asyncio.sleep(0.3)


async def test_the_dev_stack_serves_a_job_end_to_end_and_stops_cleanly(tmp_path: Path):
    api_port, temporal_port, ui_port = free_port(), free_port(), free_port()
    env = {
        **os.environ,
        "KYMA_API_PORT": str(api_port),
        "KYMA_TEMPORAL_ADDRESS": f"127.0.0.1:{temporal_port}",
        "KYMA_TEMPORAL_UI_PORT": str(ui_port),
        "KYMA_POLL_INTERVAL_SECONDS": "0.5",
    }
    env.pop("KYMA_API_KEY", None)
    dev = await asyncio.create_subprocess_exec(
        str(BIN / "kyma-video"),
        "dev",
        cwd=tmp_path,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    assert dev.stdout is not None
    printed = []
    try:
        async with asyncio.timeout(60):
            while not printed or "Ctrl-C stops everything" not in printed[-1]:
                line = (await dev.stdout.readline()).decode()
                assert line, "kyma-video dev exited early:\n" + "".join(printed)
                printed.append(line)
        output = "".join(printed)
        key = re.search(r"\b(kyma_[A-Za-z0-9_-]+)\b", output)
        assert key, output
        assert f"http://127.0.0.1:{api_port}" in output
        assert f"http://127.0.0.1:{ui_port}" in output

        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{api_port}") as http:
            auth = {"Authorization": f"Bearer {key.group(1)}"}
            created = await http.post(
                "/v1/videos/generations",
                json={"model": "kling-3-pro", "prompt": "a tower", "simulate_seconds": 1},
                headers=auth,
            )
            assert created.status_code == 202, created.text
            job = await finished(http, created.json()["job_id"], auth)
            assert job["status"] == "succeeded", job
            video = await http.get(job["output"]["url"])
            assert video.status_code == 200
            assert len(video.content) == job["output"]["size_bytes"]
            assert video.content[4:8] == b"ftyp"
            ui = await http.get(f"http://127.0.0.1:{ui_port}/")
            assert ui.status_code == 200

        # The CLI client finds the saved demo key by itself.
        submit = await asyncio.create_subprocess_exec(
            str(BIN / "kyma-video"),
            "submit",
            "--model",
            "veo-3-fast",
            "--prompt",
            "sea",
            "--duration",
            "4",
            "--param",
            "simulate_seconds=1",
            "--wait",
            cwd=tmp_path,
            env={**env, "KYMA_API_URL": f"http://127.0.0.1:{api_port}"},
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        submitted, _ = await asyncio.wait_for(submit.communicate(), 60)
        assert submit.returncode == 0, submitted.decode()
        assert '"status": "succeeded"' in submitted.decode()
    finally:
        family = children_of(dev.pid)
        if dev.returncode is None:
            dev.send_signal(signal.SIGINT)
        rest = await asyncio.wait_for(dev.stdout.read(), 30)
        code = await asyncio.wait_for(dev.wait(), 30)
    assert code == 0, rest.decode()
    assert b"stopped" in rest
    await asyncio.sleep(0.5)
    assert family, "the dev stack should have run the Temporal server as a child"
    assert not [pid for pid in family if alive(pid)]
    assert not port_open(temporal_port)
    assert not port_open(api_port)
