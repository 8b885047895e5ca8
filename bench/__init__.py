"""The benchmarks: one module per figure, run from the repository's root.

    .venv/bin/python -m bench.NAME [options]     one benchmark (see its --help)
    .venv/bin/python -m bench --quick            every benchmark, a short run each (`make bench`)

What they share (ports, servers, CPU time and memory of process trees, medians and ratios)
is in `bench.common`; no benchmark imports another. The figures are in BENCHMARKS.md.
"""
