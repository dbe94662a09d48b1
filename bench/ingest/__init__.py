"""Throughput benchmark of the ingest service against a real Kafka broker.

Run ``python -m bench.ingest`` from the repository root; ``--help`` lists the options. See
``docs/ingest.md`` for what it measures and the figures it printed on a two-core machine.
"""
