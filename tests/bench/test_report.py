"""The benchmark report judges figures honestly: a ratio against its floor in the direction the
target demands, an absolute ceiling where there is no floor, and a miss shown as a miss."""

from bench._cli import section_from_json, section_to_json
from bench.report import Figure, Goal, Section, document, p50_p99, percentile


def latency(value: float, floor: float) -> Figure:
    return Figure("p50", value, "ms", 1.3, Goal.AT_MOST, floor=floor, floor_name="bare")


def test_a_latency_within_its_ratio_of_the_floor_is_met_and_beyond_it_is_missed():
    assert latency(12.9, 10).met
    assert latency(13.0, 10).met
    assert not latency(13.1, 10).met
    assert latency(13.1, 10).ratio == 1.31


def test_a_throughput_must_reach_its_share_of_the_floor():
    figure = Figure("jobs/s", 7.5, "jobs/s", 0.7, Goal.AT_LEAST, floor=10, floor_name="bare")
    assert figure.met
    assert not Figure("jobs/s", 6.9, "jobs/s", 0.7, Goal.AT_LEAST, floor=10).met


def test_a_figure_without_a_floor_is_judged_against_the_target_itself():
    rss = Figure("worker RSS", 280, "MB", 300, Goal.AT_MOST)
    assert rss.ratio is None and rss.met
    assert not Figure("worker RSS", 301, "MB", 300, Goal.AT_MOST).met
    assert rss.target_text() == "≤ 300 MB"


def test_a_missed_target_is_marked_in_the_markdown_and_the_section_is_not_met():
    section = Section(1, "Admission", "python -m bench.admission", [latency(20, 10)], ["why"])
    text = section.markdown()
    assert "| **no** |" in text and "2.00×" in text and "- why" in text
    assert not section.met
    assert "MISSED" in section.text()


def test_the_document_counts_met_benchmarks_and_describes_the_machine():
    met = Section(1, "A", "a", [latency(10, 10)])
    missed = Section(2, "B", "b", [latency(20, 10)])
    text = document([met, missed], command="python -m bench", quick=False)
    assert "Targets met: 1 of 2" in text
    assert "Machine: " in text and "Python 3." in text
    assert text.index("## 1. A") < text.index("## 2. B")


def test_sections_survive_the_trip_between_processes():
    section = Section(3, "History", "python -m bench.history", [latency(11, 10)], ["n"], True)
    assert section_from_json(section_to_json(section)) == section


def test_percentiles_interpolate_between_ranks():
    samples = [float(n) for n in range(1, 101)]
    assert p50_p99(samples) == (50.5, 99.01)
    assert percentile([5.0], 99) == 5.0
