"""Running one benchmark on its own: ``python -m bench.<name> [--quick] [--json]``."""

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Callable, Coroutine
from dataclasses import asdict
from typing import Any

from bench.report import Figure, Goal, Section

Benchmark = Callable[[bool], Coroutine[Any, Any, Section]]


def section_to_json(section: Section) -> str:
    return json.dumps(asdict(section))


def section_from_json(text: str) -> Section:
    data = json.loads(text)
    figures = [Figure(**{**f, "goal": Goal(f["goal"])}) for f in data.pop("figures")]
    return Section(figures=figures, **data)


def standalone(benchmark: Benchmark, description: str | None) -> None:
    parser = argparse.ArgumentParser(description=(description or "").strip().splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer samples, same figures")
    parser.add_argument("--json", action="store_true", help="print the section as JSON")
    args = parser.parse_args()
    section = asyncio.run(benchmark(args.quick))
    section.quick = args.quick
    print(section_to_json(section) if args.json else section.text(), flush=True)
    # The Temporal SDK's runtime threads can abort the interpreter at exit
    # (temporalio/sdk-python#300); the figures are printed, so leave without finalizing.
    sys.stderr.flush()
    os._exit(0)
