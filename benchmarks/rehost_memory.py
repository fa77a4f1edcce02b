"""Show that rehosting memory stays flat as videos grow.

Ingests synthetic videos of 16, 64 and 256 MiB (a valid ftyp + moov header, then an mdat
whose payload is generated on the fly, 1 MiB at a time) into the local store and into the S3
store on a moto server, and prints each run's peak memory growth. If anything buffered the
video, the 256 MiB run would grow about 16x more than the 16 MiB one; flat memory shows up
as a largest/smallest ratio near 1.

Each run is a fresh child process, so its peak resident set (VmHWM) is its own. moto runs in
a separate process too: it keeps the uploaded parts in memory, which must not be counted as
ours.

    python -m benchmarks.rehost_memory [--sizes 16 64 256]     # from the repository root
"""

import argparse
import asyncio
import json
import os
import random
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path

import boto3

from blob import BlobStore, LocalBlobStore, S3BlobStore, ingest_video

MIB = 1024 * 1024
BUCKET = "rehost-benchmark"
REPO_ROOT = Path(__file__).resolve().parent.parent
FAKE_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "benchmark",
    "AWS_SECRET_ACCESS_KEY": "benchmark",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
}


def _box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I4s", 8 + len(payload), kind) + payload


def video_header(payload_bytes: int, seconds: int) -> bytes:
    """ftyp, a moov with an mvhd and one video track, and the header of a big mdat."""
    ftyp = _box(b"ftyp", b"isom\x00\x00\x02\x00isomiso2avc1mp41")
    mvhd = _box(b"mvhd", bytes(4) + struct.pack(">IIII", 0, 0, 1000, seconds * 1000) + bytes(80))
    hdlr = _box(b"hdlr", bytes(8) + b"vide" + bytes(12) + b"VideoHandler\x00")
    moov = _box(b"moov", mvhd + _box(b"trak", _box(b"mdia", hdlr)))
    return ftyp + moov + struct.pack(">I4s", 8 + payload_bytes, b"mdat")


async def synthetic_video(size_mib: int) -> AsyncIterator[bytes]:
    yield video_header(size_mib * MIB, seconds=5)
    rng = random.Random(size_mib)
    for _ in range(size_mib):
        yield rng.randbytes(MIB)  # a fresh object per chunk, like a real download


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


@contextmanager
def peak_rss_growth() -> Iterator[dict[str, float]]:
    """Peak RSS above the starting RSS, in MiB: the kernel's high-water mark after resetting
    it, cross-checked by sampling (if the reset is not permitted, sampling alone)."""
    result: dict[str, float] = {}
    start = _status_kib("VmRSS")
    try:
        Path("/proc/self/clear_refs").write_text("5")
        kernel = True
    except OSError:
        kernel = False
    sampled = start
    done = threading.Event()

    def sample() -> None:
        nonlocal sampled
        while not done.wait(0.005):
            sampled = max(sampled, _status_kib("VmRSS"))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield result
    finally:
        done.set()
        sampler.join()
        peak = max(sampled, _status_kib("VmHWM") if kernel else 0)
        result["rss_growth_mib"] = (peak - start) / 1024


async def _ingest_once(
    store_kind: str, size_mib: int, endpoint: str, directory: str
) -> dict[str, float]:
    store: BlobStore = (
        LocalBlobStore(Path(directory), "http://files.local")
        if store_kind == "local"
        else S3BlobStore(bucket=BUCKET, public_base_url="http://cdn.local", endpoint_url=endpoint)
    )
    key = f"bench-{size_mib}.mp4"
    tracemalloc.start()
    started = time.perf_counter()
    with peak_rss_growth() as memory:
        stored = await ingest_video(
            store, key, synthetic_video(size_mib), max_bytes=(size_mib + 1) * MIB
        )
    elapsed = time.perf_counter() - started
    _, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert stored.size_bytes > size_mib * MIB
    await store.delete(key)
    return {
        **memory,
        "tracemalloc_peak_mib": traced_peak / MIB,
        "seconds": elapsed,
        "mib_per_second": size_mib / elapsed,
    }


def child(args: argparse.Namespace) -> None:
    result = asyncio.run(_ingest_once(args.store, args.size, args.endpoint, args.dir))
    print(json.dumps(result))


@contextmanager
def moto_process() -> Iterator[str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError("moto server did not start") from None
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=10)


def parent(sizes: list[int]) -> None:
    os.environ.update(FAKE_AWS_ENV)
    os.environ.pop("AWS_PROFILE", None)
    rows: dict[str, list[tuple[int, dict[str, float]]]] = {}
    with moto_process() as endpoint, tempfile.TemporaryDirectory() as directory:
        boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket=BUCKET)
        print(f"{'store':<6} {'size':>8} {'seconds':>8} {'MiB/s':>7} "
              f"{'peak RSS growth':>16} {'tracemalloc peak':>17}")  # fmt: skip
        for store in ("local", "s3"):
            for size in sizes:
                output = subprocess.run(
                    [sys.executable, "-m", "benchmarks.rehost_memory", "--child", "--store", store,
                     "--size", str(size), "--endpoint", endpoint, "--dir", directory],
                    check=True, capture_output=True, text=True, cwd=REPO_ROOT,
                ).stdout  # fmt: skip
                result = json.loads(output.strip().splitlines()[-1])
                rows.setdefault(store, []).append((size, result))
                print(
                    f"{store:<6} {size:>4} MiB {result['seconds']:>8.2f} "
                    f"{result['mib_per_second']:>7.1f} {result['rss_growth_mib']:>12.1f} MiB "
                    f"{result['tracemalloc_peak_mib']:>13.1f} MiB",
                    flush=True,
                )
    print()
    for store, results in rows.items():
        (small, first), (large, last) = results[0], results[-1]
        line = (
            f"{store}: {large} MiB vs {small} MiB ({large // small}x the data): peak RSS growth "
            f"x{last['rss_growth_mib'] / first['rss_growth_mib']:.2f}, tracemalloc peak "
            f"x{last['tracemalloc_peak_mib'] / first['tracemalloc_peak_mib']:.2f}"
        )
        if len(results) > 2:
            # The smallest run may not fill the upload pipeline (16 MiB is two 8 MiB parts);
            # the step between the two largest shows whether growth has levelled off.
            middle, previous = results[-2]
            line += (
                f"; vs {middle} MiB: peak RSS growth "
                f"x{last['rss_growth_mib'] / previous['rss_growth_mib']:.2f}"
            )
        print(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[16, 64, 256], metavar="MIB")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--store", choices=["local", "s3"], help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--endpoint", help=argparse.SUPPRESS)
    parser.add_argument("--dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
    else:
        parent(sorted(args.sizes))


if __name__ == "__main__":
    main()
