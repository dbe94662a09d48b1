"""Benchmark of the Spark aggregation: sustained events/s, event-to-swarm latency, the ceiling.

Run ``python -m bench.aggregate`` from the repository root; ``--help`` lists the options. See
``docs/aggregation.md`` for what it measures and the figures it printed on a two-core machine.
"""
