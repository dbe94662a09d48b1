"""Ordinary requests while slow clients hold connections: ingest alone, ingest behind nginx, fanout.

Run ``python -m bench.slowclients`` from the repository root; ``--help`` lists the options. See
``docs/ingest.md`` ("Slow clients") for what it measures and the figures it printed.
"""
