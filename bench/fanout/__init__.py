"""Benchmark of the fanout: SSE connections held, deliveries/s, delivery latency, memory.

Run ``python -m bench.fanout`` from the repository root; ``--help`` lists the options. See
``docs/benchmarks.md`` for what it measures and the figures it printed on a two-core machine.
"""
