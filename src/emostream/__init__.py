"""Emostream: real-time emoji reactions for live streaming.

One subpackage per runtime role: ``ingest`` (HTTP -> Kafka), ``aggregate`` (Spark Structured
Streaming windows -> swarms), ``fanout`` (swarms -> SSE/WebSocket viewers), ``loadgen`` (the emoji
generator), ``client`` (the Python SDK) and ``localstack`` (the one-machine stack). ``common`` holds
what they share: settings, the emoji set and swarm rule, event encoding, errors and logging.
"""

__version__ = "0.1.0"
