"""kyma-video's benchmark suite: each claim (admission overhead, throughput, history size,
in-flight capacity, rehost speed and memory, read speed, completion lag) as a figure beside a
floor measured in the same run.

    python -m bench                 # every benchmark; writes docs/benchmarks.md
    python -m bench --quick         # the same, fewer samples (under 2 minutes)
    python -m bench.<name> [--quick]  # one benchmark, printed only
"""
