"""Run the benchmark suite and write ``docs/benchmarks.md``.

Each benchmark runs in a fresh process of its own (``python -m bench.<name> --json``), so
one benchmark's servers, caches and memory never colour the next one's figures.
"""

import argparse
import subprocess
import sys
import time
from pathlib import Path

from bench._cli import section_from_json
from bench.report import Section, document

#: In report order: (module, what it measures).
BENCHMARKS = [
    ("admission", "POST latency against a bare update-with-start"),
    ("throughput", "jobs/s end to end against a bare workflow"),
    ("history", "events per job for 10 s, 2 min and 9 min upstreams"),
    ("in_flight", "1,000 waiting jobs in one worker: RSS and CPU"),
    ("rehost", "MB/s and RSS against raw boto3 upload_file"),
    ("job_reads", "GET /v1/jobs/{id} against a trivial endpoint"),
    ("completion_lag", "upstream done → succeeded, minus rehost"),
]
REPO_ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description="Run kyma-video's benchmarks.")
    parser.add_argument("names", nargs="*", metavar="NAME", help="a subset (default: all)")
    parser.add_argument("--quick", action="store_true", help="fewer samples (under 2 minutes)")
    parser.add_argument(
        "--output",
        type=Path,
        default=REPO_ROOT / "docs" / "benchmarks.md",
        help="where to write the report (default: docs/benchmarks.md)",
    )
    args = parser.parse_args()
    known = [name for name, _ in BENCHMARKS]
    unknown = sorted(set(args.names) - set(known))
    if unknown:
        parser.error(f"unknown benchmark(s) {unknown}; choose from {known}")
    chosen = [name for name in known if not args.names or name in args.names]
    sections: list[Section] = []
    started = time.monotonic()
    for name in chosen:
        command = [sys.executable, "-m", f"bench.{name}", "--json"]
        if args.quick:
            command.append("--quick")
        print(f"running bench.{name} ...", file=sys.stderr, flush=True)
        began = time.monotonic()
        done = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, check=False)
        print(f"bench.{name} took {time.monotonic() - began:.0f} s", file=sys.stderr, flush=True)
        if done.returncode != 0:
            sys.stderr.write(done.stderr)
            raise SystemExit(f"bench.{name} failed with exit code {done.returncode}")
        section = section_from_json(done.stdout.strip().splitlines()[-1])
        print(section.text(), flush=True)
        sections.append(section)
    print(f"all done in {time.monotonic() - started:.0f} s", file=sys.stderr)
    invoked = "python -m bench" + (" --quick" if args.quick else "")
    if args.names:
        invoked += " " + " ".join(chosen)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(document(sections, command=invoked, quick=args.quick))
    print(f"wrote {args.output}", file=sys.stderr)


if __name__ == "__main__":
    main()
