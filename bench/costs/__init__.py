"""Server CPU per operation of Redis and Kafka as Emostream uses them, for capacity planning.

Run ``python -m bench.costs`` from the repository root; ``--help`` lists the options. See
``docs/capacity.md`` for the figures it printed and the sizing built on them.
"""
