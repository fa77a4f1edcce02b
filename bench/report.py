"""Benchmark figures and the report they make: every figure stands next to a floor measured in
the same run on the same machine, as a ratio, with its raw readings beside it.

A benchmark returns a :class:`Section`; ``python -m bench`` collects the sections of one run,
prints them and writes ``docs/benchmarks.md`` with the machine described at the top. A target
that is missed is reported as missed, never hidden: its section carries the explanation.
"""

import os
import platform
import statistics
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum


class Goal(StrEnum):
    """Which way the ratio must go for the target to be met."""

    AT_MOST = "≤"
    AT_LEAST = "≥"


@dataclass(frozen=True)
class Figure:
    """One measured figure, its floor and its target.

    ``value`` and ``floor`` are in ``unit``; the ratio is ``value / floor``. Figures without a
    floor (e.g. an absolute ceiling such as RSS ≤ 300 MB) give ``floor=None`` and are judged
    against ``target`` directly.
    """

    name: str
    value: float
    unit: str
    target: float
    goal: Goal
    floor: float | None = None
    floor_name: str = ""
    raw: str = ""

    @property
    def ratio(self) -> float | None:
        if self.floor is None:
            return None
        return self.value / self.floor if self.floor else float("inf")

    @property
    def judged(self) -> float:
        ratio = self.ratio
        return self.value if ratio is None else ratio

    @property
    def met(self) -> bool:
        if self.goal is Goal.AT_MOST:
            return self.judged <= self.target
        return self.judged >= self.target

    def target_text(self) -> str:
        suffix = "× floor" if self.floor is not None else f" {self.unit}"
        return f"{self.goal.value} {_num(self.target)}{suffix}"


@dataclass
class Section:
    """One benchmark's result: its figures and what a reader needs to interpret them."""

    number: int
    title: str
    command: str
    figures: list[Figure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    quick: bool = False

    @property
    def met(self) -> bool:
        return all(figure.met for figure in self.figures)

    def markdown(self) -> str:
        lines = [f"## {self.number}. {self.title}", "", f"`{self.command}`", ""]
        lines += [
            "| figure | measured | floor | ratio | target | met | raw |",
            "|---|---|---|---|---|---|---|",
        ]
        for f in self.figures:
            floor = "—" if f.floor is None else f"{_num(f.floor)} {f.unit} ({f.floor_name})"
            ratio = "—" if f.ratio is None else f"{f.ratio:.2f}×"
            lines.append(
                f"| {f.name} | {_num(f.value)} {f.unit} | {floor} | {ratio} | {f.target_text()} "
                f"| {'yes' if f.met else '**no**'} | {f.raw} |"
            )
        if self.notes:
            lines.append("")
            lines += [note if note.startswith(("-", " ")) else f"- {note}" for note in self.notes]
        return "\n".join(lines) + "\n"

    def text(self) -> str:
        out = [f"{self.number}. {self.title}" + (" [quick]" if self.quick else "")]
        for f in self.figures:
            ratio = "" if f.ratio is None else f" = {f.ratio:.2f}× floor {_num(f.floor or 0)}"
            out.append(
                f"   {f.name}: {_num(f.value)} {f.unit}{ratio} (target {f.target_text()}: "
                f"{'met' if f.met else 'MISSED'}) {f.raw}"
            )
        out += [f"   note: {note}" for note in self.notes]
        return "\n".join(out)


def percentile(samples: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) by linear interpolation between closest ranks."""
    if not samples:
        raise ValueError("no samples")
    if len(samples) == 1:
        return samples[0]
    return statistics.quantiles(samples, n=100, method="inclusive")[max(0, min(98, round(q) - 1))]


def p50_p99(samples: Sequence[float]) -> tuple[float, float]:
    return statistics.median(samples), percentile(samples, 99)


def _num(value: float) -> str:
    if value == 0 or abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}"


def machine_description() -> str:
    """What the figures were measured on: they only compare within one run."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    memory = ""
    try:
        pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        memory = f", {pages / 2**30:.0f} GiB RAM"
    except (ValueError, OSError):
        pass
    postgres = _version(["psql", "--version"])
    return (
        f"{os.cpu_count()} × {cpu}{memory}; {platform.system()} {platform.release()}; "
        f"Python {platform.python_version()}; {postgres or 'PostgreSQL version unknown'}"
    )


def _version(command: list[str]) -> str:
    try:
        return subprocess.run(command, capture_output=True, text=True, check=False).stdout.strip()
    except OSError:
        return ""


def document(sections: Sequence[Section], *, command: str, quick: bool) -> str:
    """The whole ``docs/benchmarks.md``."""
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    met = sum(section.met for section in sections)
    head = [
        "# Benchmarks",
        "",
        "Every figure below comes from one run of the suite on one machine, beside a floor "
        "measured in the same run on the same machine: the ratio is what carries over to other "
        "machines, the raw figures are this machine's. Regenerate with the command below; each "
        "section also names the command that runs it alone.",
        "",
        f"- Command: `{command}`" + (" (quick mode: fewer samples)" if quick else ""),
        f"- When: {when}",
        f"- Machine: {machine_description()}",
        f"- Targets met: {met} of {len(sections)} benchmarks",
        "- Where a target is missed, the section's notes say why; what was fixed and the plan "
        "for the rest are in [performance-plan.md](performance-plan.md).",
        "",
    ]
    return "\n".join(head) + "\n" + "\n".join(section.markdown() for section in sections)
