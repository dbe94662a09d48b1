"""Write each micro-batch's swarm updates to Kafka ``swarms`` and Redis's latest snapshot.

Runs in the driver through ``foreachBatch``. A micro-batch is flushed to Kafka before the call
returns, so Spark only commits the batch once its swarms are durable; if the driver dies first,
Spark replays the batch with the same id and the same rows, producing the same swarm ids (the
checkpoint's epoch is part of them), which the fanout delivers once.

One micro-batch's output is one row per (stream, window) it touched, so collecting it into the
driver is cheap, and it runs the query's only Spark job: the Kafka read, the aggregation and the
state update all happen inside this ``collect``.
"""

import logging

import redis
from confluent_kafka import KafkaError, Message, Producer
from pyspark.sql import DataFrame

from emostream.aggregate._swarms import swarm_message
from emostream.aggregate.settings import AggregateSettings
from emostream.common.errors import EmostreamError
from emostream.common.events import SwarmMessage, encode_json, now_ms
from emostream.common.keys import latest_swarm_key

log = logging.getLogger(__name__)


class SwarmSink:
    """The ``foreachBatch`` target; clients are created on first use, in the driver."""

    def __init__(self, settings: AggregateSettings, epoch_ms: int) -> None:
        self.settings = settings
        self.epoch_ms = epoch_ms
        self._producer: Producer | None = None
        self._redis: redis.Redis | None = None
        self._errors: list[KafkaError] = []

    def _kafka(self) -> Producer:
        if self._producer is None:
            self._producer = Producer(
                {
                    **self.settings.kafka().librdkafka(),
                    "enable.idempotence": True,
                    "acks": "all",
                    "linger.ms": 2,
                    "compression.type": "lz4",
                }
            )
        return self._producer

    def _on_delivery(self, err: KafkaError | None, _msg: Message) -> None:
        if err is not None:
            self._errors.append(err)

    def __call__(self, batch: DataFrame, batch_id: int) -> None:
        """Publish the swarm of every (stream, window) this micro-batch updated."""
        rows = batch.collect()
        if not rows:
            return
        s = self.settings
        emojis = s.emojis
        emitted = now_ms()
        messages = [
            swarm_message(
                r.asDict(),
                emojis=emojis,
                batch_id=batch_id,
                epoch_ms=self.epoch_ms,
                divisor=s.swarm_divisor,
                valence=s.emoji_valence,
                emitted_at_ms=emitted,
            )
            for r in rows
        ]
        self.publish(messages)
        log.debug("published swarms", extra={"batch_id": batch_id, "swarms": len(messages)})

    def publish(self, messages: list[SwarmMessage]) -> None:
        """Produce ``messages`` in id order, wait until all are acknowledged, then snapshot."""
        producer = self._kafka()
        self._errors.clear()
        latest: dict[str, SwarmMessage] = {}
        for msg in sorted(messages, key=lambda m: m["id"]):
            producer.produce(
                self.settings.swarms_topic,
                key=msg["stream_id"].encode(),
                value=encode_json(msg),
                on_delivery=self._on_delivery,
            )
            producer.poll(0)
            latest[msg["stream_id"]] = msg
        remaining = producer.flush(30)
        if remaining or self._errors:
            raise EmostreamError(
                f"swarms not delivered: {remaining} pending, errors {self._errors[:3]}"
            )
        self._snapshot(latest)

    def _snapshot(self, latest: dict[str, SwarmMessage]) -> None:
        if self._redis is None:
            self._redis = redis.Redis.from_url(self.settings.redis_url, socket_timeout=5)
        ttl = self.settings.snapshot_ttl_s
        try:
            pipe = self._redis.pipeline(transaction=False)
            for stream_id, msg in latest.items():
                pipe.set(latest_swarm_key(stream_id), encode_json(msg), ex=ttl)
            pipe.execute()
        except redis.RedisError:
            # The snapshot only speeds up a new viewer's first frame; Kafka holds the truth.
            log.warning("could not update latest snapshots in Redis", exc_info=True)
