"""The Kafka producer of one ingest worker process: lazy, idempotent, and honest about backpressure.

librdkafka's threads do not survive ``fork()``, and gunicorn forks its workers from the master,
so no client is made at import or app-creation time: the first request in a process makes it,
and a process that finds a client made by its parent leaves that one alone and makes its own.

An HTTP 2xx means "in the local queue", so the queue is bounded and a full one turns into
:class:`QueueFullError` (503 + Retry-After) after a short wait, never into an unbounded wait or
a silent drop. The producer is idempotent with ``acks=all``, so librdkafka's own retries neither
lose nor duplicate a queued event; what still fails is counted in a metric. Each request thread
calls ``poll(0)`` after producing, and a background thread polls too, so delivery reports are
served (and queue slots freed) even while no requests arrive.
"""

import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from emostream.common.errors import BackpressureError
from emostream.common.events import Reaction
from emostream.ingest._metrics import IngestMetrics
from emostream.ingest.settings import IngestSettings

log = logging.getLogger(__name__)

#: Producers of this process, so the gunicorn shutdown hooks can flush them all.
_LIVE: "weakref.WeakSet[ReactionProducer]" = weakref.WeakSet()
#: Clients inherited over fork() or broken by a fatal error. Kept referenced on purpose:
#: destroying a client whose threads are gone can block the process forever.
_ABANDONED: list[Producer] = []


@dataclass(frozen=True, slots=True)
class Readiness:
    """Whether Kafka can take events now, and why (shown in the /readyz reply)."""

    ready: bool
    detail: str


class EnqueueError(BackpressureError):
    """Kafka did not take every event of a request; ``enqueued`` of its ``total`` got in."""

    def __init__(self, why: str, enqueued: int, total: int) -> None:
        super().__init__(f"{why}: {enqueued} of {total} reactions were enqueued")
        self.enqueued = enqueued
        self.total = total


class QueueFullError(EnqueueError):
    """Kafka's local queue stayed full for the whole bounded wait."""

    def __init__(self, enqueued: int, total: int) -> None:
        super().__init__("Kafka's local queue is full", enqueued, total)


class ReactionSink(Protocol):
    """Where accepted reactions go; the app depends on this, not on Kafka directly."""

    def send(self, reactions: Sequence[Reaction]) -> None:
        """Enqueue every reaction, or raise :class:`EnqueueError` saying how many got in."""

    def readiness(self) -> Readiness:
        """Whether events can be delivered now."""

    def queue_depth(self) -> int:
        """Events enqueued and not yet acknowledged."""

    def flush(self, timeout_s: float) -> int:
        """Wait up to ``timeout_s`` for queued events to be delivered; return how many are left."""


class ReactionProducer:
    """Writes reactions to the ``reactions`` topic, keyed by user id, from any request thread."""

    def __init__(self, settings: IngestSettings, metrics: IngestMetrics) -> None:
        self._settings = settings
        self._metrics = metrics
        self._lock = threading.Lock()
        self._current: _Client | None = None
        self._ready_lock = threading.Lock()
        self._ready: tuple[float, Readiness] | None = None
        self._delivery_log = _Throttle(10.0)
        self._error_log = _Throttle(10.0)
        _LIVE.add(self)

    def config(self) -> dict[str, Any]:
        """The librdkafka configuration, callbacks included."""
        s = self._settings
        return {
            "bootstrap.servers": s.kafka_bootstrap_servers,
            "client.id": "emostream-ingest",
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": s.producer_linger_ms,
            "batch.size": s.producer_batch_bytes,
            "compression.type": s.producer_compression,
            "queue.buffering.max.messages": s.producer_queue_max_messages,
            "queue.buffering.max.kbytes": s.producer_queue_max_kbytes,
            "message.timeout.ms": s.producer_delivery_timeout_ms,
            "error_cb": self._on_error,
            "logger": logging.getLogger("emostream.ingest.librdkafka"),
        }

    def send(self, reactions: Sequence[Reaction]) -> None:
        """Enqueue every reaction, waiting at most ``produce_retry_s`` for room in the queue.

        A request waits for room for all of its reactions before enqueuing any, so a batch is
        normally all in or all out; only when other threads fill the queue meanwhile does
        :class:`QueueFullError` report a part (``enqueued``) that did get in.
        """
        client = self._client()
        total = len(reactions)
        deadline = time.monotonic() + self._settings.produce_retry_s
        limit = self._settings.producer_queue_max_messages
        while client.outstanding + total > limit:
            if not client.wait_for_room(deadline):
                raise QueueFullError(0, total)
        topic = self._settings.reactions_topic
        for i, reaction in enumerate(reactions):
            value = reaction.encode()
            key = reaction.user_id.encode()
            while True:
                try:
                    client.produce(topic, value, key)
                    break
                except BufferError:
                    if not client.wait_for_room(deadline):
                        raise QueueFullError(i, total) from None
                except KafkaException as e:
                    raise EnqueueError(f"Kafka refused a reaction ({e.args[0]})", i, total) from e

    def readiness(self) -> Readiness:
        """Whether the broker answers and knows the reactions topic; cached a few seconds.

        Probes are serialised, so a burst of /readyz calls makes one metadata request.
        """
        with self._ready_lock:
            if self._ready is not None and time.monotonic() < self._ready[0]:
                return self._ready[1]
            result = self._probe()
            self._ready = (time.monotonic() + self._settings.readiness_cache_s, result)
            return result

    def queue_depth(self) -> int:
        """Messages enqueued and not yet acknowledged; 0 before the first request."""
        client = self._existing()
        return 0 if client is None else client.outstanding

    def flush(self, timeout_s: float) -> int:
        """Wait up to ``timeout_s`` for queued messages to be acknowledged; return how many remain.

        Never makes a client: a process that produced nothing has nothing to flush.
        """
        client = self._existing()
        if client is None:
            return 0
        remaining = client.producer.flush(timeout_s)
        if remaining:
            log.error(
                "reactions still queued after the flush timeout are lost",
                extra={"remaining": remaining, "timeout_s": timeout_s},
            )
        else:
            log.info("producer flushed", extra={"timeout_s": timeout_s})
        return remaining

    def close(self, timeout_s: float) -> int:
        """Flush within ``timeout_s``, then stop this process's client; return events left.

        The next use makes a new client. For tests and embedders; gunicorn workers just flush.
        """
        remaining = self.flush(timeout_s)
        with self._lock:
            client, self._current = self._existing(), None
        if client is not None:
            client.stop()
        return remaining

    def _existing(self) -> "_Client | None":
        """This process's client, if it has made one."""
        client = self._current
        return client if client is not None and client.pid == os.getpid() else None

    def _client(self) -> "_Client":
        """This process's working client, made on first use (or after a fatal error)."""
        client = self._current
        if client is not None and client.pid == os.getpid() and not client.fatal:
            return client
        with self._lock:
            client = self._current
            if client is not None and (client.pid != os.getpid() or client.fatal):
                client.abandon()
                client = self._current = None
            if client is None:
                client = self._current = _Client(self.config(), self._on_delivery)
                log.info(
                    "Kafka producer created",
                    extra={
                        "bootstrap": self._settings.kafka_bootstrap_servers,
                        "topic": self._settings.reactions_topic,
                    },
                )
            return client

    def _probe(self) -> Readiness:
        topic = self._settings.reactions_topic
        timeout = self._settings.readiness_timeout_s
        client = self._client()
        try:
            metadata = client.producer.list_topics(topic, timeout=timeout)
        except KafkaException as e:
            return Readiness(False, f"no Kafka metadata within {timeout:g} s: {e.args[0]}")
        info = metadata.topics.get(topic)
        if info is None or info.error is not None:
            why = "absent" if info is None else str(info.error)
            return Readiness(False, f"topic {topic!r} is not available: {why}")
        if client.fatal:
            return Readiness(False, "the Kafka producer hit a fatal error and is being replaced")
        return Readiness(True, f"topic {topic!r} has {len(info.partitions)} partitions")

    def _on_delivery(self, err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            self._metrics.delivery_errors.labels(err.name()).inc()
            suppressed = self._delivery_log.allow()
            if suppressed is not None:
                log.warning(
                    "reaction not delivered to Kafka",
                    extra={"error": str(err), "similar_suppressed": suppressed},
                )
            return
        latency = msg.latency()
        if latency is not None:
            self._metrics.delivery_seconds.observe(latency)

    def _on_error(self, err: KafkaError) -> None:
        if err.fatal():
            # An idempotent producer stops for good on a fatal error; the next request gets a
            # fresh client instead of failing forever.
            client = self._current
            if client is not None:
                client.fatal = True
            log.error("Kafka producer failed fatally", extra={"error": str(err)})
            return
        suppressed = self._error_log.allow()
        if suppressed is not None:
            log.warning(
                "Kafka client error", extra={"error": str(err), "similar_suppressed": suppressed}
            )


class _Client:
    """One librdkafka producer: the process that made it, its queued count, its poller thread.

    The queued count is kept here rather than read from ``len(producer)``, which also counts
    pending log and error events and would make the queue look fuller than it is. The poller
    serves delivery reports while no request does, so an idle worker's queue drains, its
    metrics stay current and librdkafka's logs come out.
    """

    def __init__(
        self, config: dict[str, Any], on_delivery: Callable[[KafkaError | None, Message], None]
    ) -> None:
        self._on_delivery = on_delivery
        self._count_lock = threading.Lock()
        self.outstanding = 0
        self.fatal = False
        self.pid = os.getpid()
        self.producer = Producer({**config, "on_delivery": self._delivered})
        self._stop = threading.Event()
        self._poller = threading.Thread(target=self._poll, name="kafka-producer-poll", daemon=True)
        self._poller.start()

    def produce(self, topic: str, value: bytes, key: bytes) -> None:
        """Enqueue one message; raises BufferError when the local queue is full."""
        self._count(1)
        try:
            self.producer.produce(topic, value=value, key=key)
        except BaseException:
            self._count(-1)
            raise
        # Serves delivery reports (freeing their queue slots) without blocking.
        self.producer.poll(0)

    def wait_for_room(self, deadline: float) -> bool:
        """Serve delivery reports for a moment to free queue slots; False past the deadline."""
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        self.producer.poll(min(left, 0.01))
        return True

    def stop(self) -> None:
        """Stop the poller; the producer is destroyed once nothing refers to it."""
        self._stop.set()
        if self._poller.is_alive() and self._poller is not threading.current_thread():
            self._poller.join(timeout=2)

    def abandon(self) -> None:
        """Leave this client alone for good (made by a parent process, or failed fatally)."""
        if self.pid == os.getpid():
            self._stop.set()
        _ABANDONED.append(self.producer)

    def _delivered(self, err: KafkaError | None, msg: Message) -> None:
        self._count(-1)
        self._on_delivery(err, msg)

    def _count(self, delta: int) -> None:
        with self._count_lock:
            self.outstanding += delta

    def _poll(self) -> None:
        while not self._stop.is_set():
            self.producer.poll(0.2)


def flush_all(timeout_s: float) -> int:
    """Flush every producer of this process within ``timeout_s`` in all; return events left.

    Called by the gunicorn worker shutdown hooks so SIGTERM loses no accepted event.
    """
    deadline = time.monotonic() + timeout_s
    remaining = 0
    for producer in list(_LIVE):
        remaining += producer.flush(max(0.0, deadline - time.monotonic()))
    return remaining


class _Throttle:
    """Lets a repeated log line through at most once per interval, counting what it held back."""

    def __init__(self, interval_s: float) -> None:
        self._interval_s = interval_s
        self._next = 0.0
        self._suppressed = 0
        self._lock = threading.Lock()

    def allow(self) -> int | None:
        """The number suppressed since the last line if one may be logged now, else None."""
        with self._lock:
            now = time.monotonic()
            if now < self._next:
                self._suppressed += 1
                return None
            held, self._suppressed = self._suppressed, 0
            self._next = now + self._interval_s
            return held
