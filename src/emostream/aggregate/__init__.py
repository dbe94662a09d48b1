"""The Spark Structured Streaming aggregation: reactions -> per-stream event-time windows -> swarms.

``transforms`` holds the pure DataFrame transformations, ``swarms`` turns aggregated rows into swarm
messages, ``sink`` writes them to Kafka and Redis, ``metrics`` exports query progress, and ``job``
wires them together.
"""
