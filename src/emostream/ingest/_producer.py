"""The Kafka producer of one ingest worker process: lazy, idempotent, and honest about backpressure.

librdkafka's threads do not survive ``fork()``, and gunicorn forks its workers from the master,
so no client is made at import or app-creation time: the first request in a process makes it,
and a process that finds a client made by its parent leaves that one alone and makes its own.

An HTTP 2xx means "in the local queue", so the queue is bounded and a full one turns into
:class:`QueueFullError` (503 + Retry-After) after a short wait, never into an unbounded wait or
a silent drop. The producer is idempotent with ``acks=all``, so librdkafka's own retries neither
lose nor duplicate a queued event; what still fails is counted in a metric.

Throughput: a request's messages go to librdkafka in one ``produce_batch`` call, and only failed
deliveries come back to Python (``delivery.report.only.error``): a successful delivery costs no
Python at all, so tens of thousands of events a second leave a worker with its CPU free for
requests. Delivery latency comes from librdkafka's own statistics instead of a per-message
callback. A background thread polls: it serves error reports, logs and statistics, which
requests leave alone.
"""

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Protocol

import orjson
from confluent_kafka import KafkaError, KafkaException, Message, Producer

from emostream.common.errors import BackpressureError
from emostream.common.kafka import CredentialCheck
from emostream.common.pid import current_pid
from emostream.ingest._metrics import IngestMetrics
from emostream.ingest._validation import KafkaMessage
from emostream.ingest.settings import IngestSettings

log = logging.getLogger(__name__)

#: Clients inherited over fork() or broken by a fatal error. Kept referenced on purpose:
#: destroying a client whose threads are gone can block the process forever.
_ABANDONED: list[Producer] = []

#: librdkafka's window statistics (microseconds) exported as delivery latency stages.
_LATENCY_STAGES = {"int_latency": "queue", "outbuf_latency": "outbuf", "rtt": "rtt"}
_QUANTILES = {"p50": "0.5", "p99": "0.99"}


@dataclass(frozen=True, slots=True)
class Readiness:
    """Whether Kafka can take events now, and why (shown in the /readyz reply)."""

    ready: bool
    detail: str


class EnqueueError(BackpressureError):
    """Kafka did not take every event of a request.

    ``missing`` lists the indices (in request order) of the events that did not get in; all the
    others did. Normally that is every index: a request is enqueued whole or not at all.
    """

    def __init__(self, why: str, missing: list[int], total: int) -> None:
        enqueued = total - len(missing)
        super().__init__(f"{why}: {enqueued} of {total} reactions were enqueued")
        self.missing = missing
        self.enqueued = enqueued
        self.total = total


class QueueFullError(EnqueueError):
    """Kafka's local queue stayed full for the whole bounded wait."""

    def __init__(self, missing: list[int], total: int) -> None:
        super().__init__("Kafka's local queue is full", missing, total)


class ReactionSink(Protocol):
    """Where accepted reactions go; the app depends on this, not on Kafka directly."""

    def send(self, messages: list[KafkaMessage]) -> None:
        """Enqueue every message, or raise :class:`EnqueueError` saying which did not get in."""

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
        self._credentials = CredentialCheck(settings.kafka())
        self._error_log = _Throttle(10.0)

    def config(self) -> dict[str, Any]:
        """The librdkafka configuration, callbacks included."""
        s = self._settings
        return {
            **s.kafka().librdkafka(),
            "client.id": "emostream-ingest",
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": s.producer_linger_ms,
            "batch.size": s.producer_batch_bytes,
            "compression.type": s.producer_compression,
            "queue.buffering.max.messages": s.producer_queue_max_messages,
            "queue.buffering.max.kbytes": s.producer_queue_max_kbytes,
            "message.timeout.ms": s.producer_delivery_timeout_ms,
            # After an outage, reconnect within a second of the broker's return rather than
            # librdkafka's default back-off of up to ten.
            "reconnect.backoff.max.ms": 1000,
            "delivery.report.only.error": True,
            "on_delivery": self._on_delivery,
            "statistics.interval.ms": round(s.producer_stats_interval_s * 1000),
            "stats_cb": self._on_stats,
            "error_cb": self._on_error,
            "logger": logging.getLogger("emostream.ingest.librdkafka"),
        }

    def send(self, messages: list[KafkaMessage]) -> None:
        """Enqueue every message, waiting at most ``produce_retry_s`` for room in the queue.

        Threads of a process take turns, and each waits until the queue has room for all of its
        messages before it enqueues any, so a request is all in or all out. Only an error
        librdkafka reports for single messages can leave part of one in: those are tried once
        more, and :class:`EnqueueError` names any that still did not get in.
        """
        client = self._client()
        total = len(messages)
        deadline = time.monotonic() + self._settings.produce_retry_s
        limit = self._settings.producer_queue_max_messages
        if not client.lock.acquire(timeout=max(0.0, deadline - time.monotonic())):
            raise QueueFullError(list(range(total)), total)
        try:
            # len(producer) counts queued and unacknowledged messages (and rare pending
            # events), never fewer than librdkafka's own limit counts: if this fits, so does
            # the batch, as no other thread of this process produces meanwhile.
            while len(client.producer) + total > limit:
                if not client.wait_for_room(deadline):
                    raise QueueFullError(list(range(total)), total)
            try:
                queued = client.produce(self._settings.reactions_topic, messages)
            except KafkaException as e:
                why = f"Kafka refused the reactions ({e.args[0]})"
                raise EnqueueError(why, list(range(total)), total) from e
            if queued < total:
                self._retry_failed(client, messages, deadline)
        finally:
            client.lock.release()

    def _retry_failed(
        self, client: "_Client", messages: list[KafkaMessage], deadline: float
    ) -> None:
        """Produce again, one by one and in order, the messages produce_batch refused."""
        failed = [i for i, m in enumerate(messages) if "_error" in m]
        topic = self._settings.reactions_topic
        for n, i in enumerate(failed):
            message = messages[i]
            while True:
                try:
                    client.producer.produce(topic, value=message["value"], key=message["key"])
                    break
                except BufferError:
                    if not client.wait_for_room(deadline):
                        raise QueueFullError(failed[n:], len(messages)) from None
                except KafkaException as e:
                    why = f"Kafka refused a reaction ({e.args[0]})"
                    raise EnqueueError(why, failed[n:], len(messages)) from e

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
        return 0 if client is None else len(client.producer)

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
        return client if client is not None and client.pid == current_pid() else None

    def _client(self) -> "_Client":
        """This process's working client, made on first use (or after a fatal error)."""
        client = self._current
        if client is not None and client.pid == current_pid() and not client.fatal:
            return client
        with self._lock:
            client = self._current
            if client is not None and (client.pid != current_pid() or client.fatal):
                client.abandon()
                client = self._current = None
            if client is None:
                self._settings.kafka().log_start("ingest")
                client = self._current = _Client(self.config(), self._metrics)
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
            refused = self._credentials.refusal()
            if refused is not None:
                return Readiness(False, refused)
            return Readiness(False, f"no Kafka metadata within {timeout:g} s: {e.args[0]}")
        info = metadata.topics.get(topic)
        if info is None or info.error is not None:
            why = "absent" if info is None else str(info.error)
            return Readiness(False, f"topic {topic!r} is not available: {why}")
        if client.fatal:
            return Readiness(False, "the Kafka producer hit a fatal error and is being replaced")
        return Readiness(True, f"topic {topic!r} has {len(info.partitions)} partitions")

    def _on_delivery(self, err: KafkaError | None, msg: Message) -> None:
        # Only failures arrive here (delivery.report.only.error).
        if err is None:
            return
        self._metrics.delivery_errors.labels(err.name()).inc()
        suppressed = self._delivery_log.allow()
        if suppressed is not None:
            log.warning(
                "reaction not delivered to Kafka",
                extra={"error": str(err), "similar_suppressed": suppressed},
            )

    def _on_stats(self, stats_json: str) -> None:
        """Export librdkafka's latency windows (the worst broker's) as delivery latency."""
        stats = orjson.loads(stats_json)
        worst: dict[tuple[str, str], float] = {}
        for broker in stats.get("brokers", {}).values():
            for field, stage in _LATENCY_STAGES.items():
                window = broker.get(field) or {}
                if not window.get("cnt"):
                    continue
                for key, quantile in _QUANTILES.items():
                    seconds = window.get(key, 0) / 1e6
                    worst[stage, quantile] = max(worst.get((stage, quantile), 0.0), seconds)
        for (stage, quantile), seconds in worst.items():
            self._metrics.delivery_latency.labels(stage, quantile).set(seconds)

    def _on_error(self, err: KafkaError) -> None:
        if self._credentials.note(err):
            return
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
    """One librdkafka producer: the process that made it, its produce lock, its poller thread.

    The poller serves error reports, logs and statistics (requests only produce), and keeps the
    queue depth gauge current (each worker process writes its own; the scrape adds them up).
    """

    def __init__(self, config: dict[str, Any], metrics: IngestMetrics) -> None:
        self.fatal = False
        self.pid = current_pid()
        self.lock = threading.Lock()
        self.producer = Producer(config)
        self._metrics = metrics
        self._stop = threading.Event()
        self._poller = threading.Thread(target=self._poll, name="kafka-producer-poll", daemon=True)
        self._poller.start()

    def produce(self, topic: str, messages: list[KafkaMessage]) -> int:
        """Enqueue ``messages``; return how many got in (a failed one gets an ``_error``)."""
        if len(messages) == 1:
            # The batch call's own set-up costs more than one message.
            (message,) = messages
            try:
                self.producer.produce(topic, value=message["value"], key=message["key"])
            except BufferError:
                message["_error"] = b"queue full"
                return 0
            return 1
        queued: int = self.producer.produce_batch(topic, messages)
        return queued

    def wait_for_room(self, deadline: float) -> bool:
        """Serve pending events for a moment while acknowledgements free queue slots; False past
        the deadline."""
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        self.producer.poll(min(left, 0.005))
        return True

    def stop(self) -> None:
        """Stop the poller; the producer is destroyed once nothing refers to it."""
        self._stop.set()
        if self._poller.is_alive() and self._poller is not threading.current_thread():
            self._poller.join(timeout=2)

    def abandon(self) -> None:
        """Leave this client alone for good (made by a parent process, or failed fatally)."""
        if self.pid == current_pid():
            self._stop.set()
        _ABANDONED.append(self.producer)

    def _poll(self) -> None:
        while not self._stop.is_set():
            self.producer.poll(0.2)
            self._metrics.queue_depth.set(len(self.producer))


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
