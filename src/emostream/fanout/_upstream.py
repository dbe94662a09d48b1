"""The one Kafka consumer of a worker process, feeding every swarm of the topic into the hub.

Why one consumer reading everything: every pod must see every swarm of the streams its viewers
watch, and viewers of any stream may land on any pod, so each worker assigns itself all
partitions of the swarms topic directly. No consumer group (nothing to rebalance, nothing to
commit): on start it seeks each partition to the first message of the replay window
(``offsets_for_times``), which fills the replay buffers so viewers who reconnect to a freshly
started pod still resume where they left off.

Why a thread pool under gevent: ``consume()`` blocks inside librdkafka, outside Python, where
gevent cannot switch greenlets, so calling it directly would freeze every connection of the
worker for up to ``consume_timeout_s``. Each blocking call runs on gevent's native thread pool
while the calling greenlet waits cooperatively; the swarms are then published to the hub from
that greenlet, on the event loop, with no cross-thread hand-off to get wrong. Without gevent
(tests, the Flask development server) the same calls simply run in a plain thread.
"""

import functools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, Consumer, KafkaError, KafkaException
from confluent_kafka import TopicPartition as KafkaTopicPartition

from emostream.common.errors import EmostreamError, InvalidEventError
from emostream.common.events import now_ms
from emostream.common.kafka import FANOUT_GROUP, CredentialCheck
from emostream.fanout._hub import Hub
from emostream.fanout._swarm import Swarm
from emostream.fanout.settings import FanoutSettings

log = logging.getLogger(__name__)

T = TypeVar("T")

#: How often the consumer looks for partitions added to the topic, and ages out old swarms.
_METADATA_REFRESH_S = 30.0
_EXPIRE_EVERY_S = 1.0


class UpstreamError(EmostreamError):
    """The swarms topic cannot be read (missing, or Kafka unreachable)."""


def gevent_active() -> bool:
    """Whether this process runs under gevent's monkey-patching (gunicorn's gevent worker)."""
    from gevent import monkey  # noqa: PLC0415 - gevent stays out of processes that never use it

    return bool(monkey.is_module_patched("threading"))


def run_blocking(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Call ``fn`` without stalling the gevent event loop (directly when gevent is not active)."""
    if gevent_active():
        import gevent  # noqa: PLC0415

        result: T = gevent.get_hub().threadpool.apply(functools.partial(fn, *args, **kwargs))
        return result
    return fn(*args, **kwargs)


@dataclass
class UpstreamStats:
    """Running totals, read by the metrics collector at scrape time."""

    consumed: int = 0
    invalid: int = 0
    errors: int = 0
    restarts: int = 0
    #: Messages of the topic not yet consumed, summed over partitions (at the last check).
    lag_messages: int = 0
    #: From emission to consumption of the latest consumed swarm.
    last_swarm_lag_s: float = 0.0


class Upstream:
    """Reads the swarms topic from the start of the replay window onwards, into ``hub``."""

    def __init__(
        self,
        settings: FanoutSettings,
        hub: Hub,
        *,
        consumer_factory: Callable[[dict[str, Any]], Any] = Consumer,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self.settings = settings
        self.hub = hub
        self.stats = UpstreamStats()
        self.credentials = CredentialCheck(settings.kafka())
        self._factory = consumer_factory
        self._clock = clock
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._assigned: set[int] = set()

    @property
    def ready(self) -> bool:
        """Whether every partition of the topic is assigned and being read."""
        return self._ready.is_set()

    def wait_ready(self, timeout: float) -> bool:
        """Block until :attr:`ready` (or ``timeout`` seconds); returns :attr:`ready`."""
        return self._ready.wait(timeout)

    def start(self) -> None:
        """Start reading, once per process; later calls do nothing.

        Under gevent ``threading.Thread`` is a greenlet, which is what the loop should be: its
        blocking calls go to the thread pool (see the module docstring).
        """
        with self._start_lock:
            if self._thread is not None:
                return
            self.settings.kafka().log_start("fanout")
            self._thread = threading.Thread(
                target=self._run, name="emostream-fanout-upstream", daemon=True
            )
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Ask the loop to finish and wait up to ``timeout`` seconds for it to close Kafka."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    # -- the loop ------------------------------------------------------------------------------

    def _config(self) -> dict[str, Any]:
        return {
            **self.settings.kafka().librdkafka(),
            "error_cb": self.credentials.note,
            # librdkafka insists on a group id, but partitions are assigned by hand and no
            # offset is ever committed, so the group is never joined.
            "group.id": FANOUT_GROUP,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "enable.partition.eof": False,
            "client.id": "emostream-fanout",
        }

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._session()
            except (KafkaException, EmostreamError) as exc:
                self.stats.restarts += 1
                log.warning(
                    "swarm consumer failed; reconnecting",
                    extra={"error": str(exc), "retry_s": self.settings.upstream_retry_s},
                )
            except Exception:
                # Viewers depend on this loop: whatever went wrong, log it and start again.
                self.stats.restarts += 1
                log.exception("swarm consumer crashed; reconnecting")
            self._stop.wait(self.settings.upstream_retry_s)

    def _session(self) -> None:
        consumer = self._factory(self._config())
        metadata = None
        try:
            # The topic's partitions come from a client of their own, which never fetches: on
            # the consumer's connection a metadata request waits behind the fetch the broker
            # holds open (up to fetch.wait.max.ms, 500 ms), and every swarm waits with it.
            metadata = self._factory(self._config())
            partitions = self._partitions(metadata)
            if partitions is None:
                return
            self._assign(consumer, partitions)
            self._ready.set()
            log.info(
                "reading swarms",
                extra={"topic": self.settings.swarms_topic, "partitions": sorted(partitions)},
            )
            self._consume(consumer, metadata)
        finally:
            self._ready.clear()
            self._assigned = set()
            run_blocking(consumer.close)
            if metadata is not None:
                run_blocking(metadata.close)

    def _partitions(self, metadata: Any) -> set[int] | None:
        """The topic's partitions, waiting for the topic to exist; None if stopped meanwhile."""
        topic = self.settings.swarms_topic
        warned = False
        while not self._stop.is_set():
            meta = run_blocking(metadata.list_topics, topic, timeout=self.settings.kafka_timeout_s)
            found = meta.topics.get(topic)
            if found is not None and found.error is None and found.partitions:
                return set(found.partitions)
            if not warned:
                log.warning("swarms topic not available yet", extra={"topic": topic})
                warned = True
            self._stop.wait(self.settings.upstream_retry_s)
        return None

    def _assign(self, consumer: Any, partitions: set[int]) -> None:
        """Start each partition at the first message of the replay window (or at its end)."""
        topic = self.settings.swarms_topic
        since = self._clock() - int(self.settings.replay_window_s * 1000)
        wanted = [KafkaTopicPartition(topic, p, since) for p in sorted(partitions)]
        found = run_blocking(
            consumer.offsets_for_times, wanted, timeout=self.settings.kafka_timeout_s
        )
        assignment = []
        for tp in found:
            if tp.error is not None:
                raise KafkaException(tp.error)
            # -1: no message at or after the time, so everything in it is older: start at the end.
            offset = tp.offset if tp.offset >= 0 else OFFSET_END
            assignment.append(KafkaTopicPartition(topic, tp.partition, offset))
        consumer.assign(assignment)
        self._assigned = set(partitions)

    def _consume(self, consumer: Any, metadata: Any) -> None:
        s = self.settings
        next_expire = next_refresh = time.monotonic()
        next_refresh += _METADATA_REFRESH_S
        while not self._stop.is_set():
            # Wait for the first message only, then take what else is already fetched without
            # waiting: consume(n, timeout) would hold a burst smaller than n until the timeout.
            # The wait goes through the thread pool even when a message is there already: that
            # trip lets the event loop run (probes, new viewers) between batches. With a plain
            # gevent.sleep(0) instead, a worker held to 50m CPU behind a backlog failed its
            # liveness probe.
            first = run_blocking(consumer.poll, s.consume_timeout_s)
            if first is not None:
                self._handle(first)
                for msg in consumer.consume(num_messages=s.consume_batch, timeout=0):
                    self._handle(msg)
            now = time.monotonic()
            if now >= next_expire:
                self.hub.expire()
                self.stats.lag_messages = self._lag(consumer)
                next_expire = now + _EXPIRE_EVERY_S
            if now >= next_refresh:
                self._add_new_partitions(consumer, metadata)
                next_refresh = now + _METADATA_REFRESH_S

    def _lag(self, consumer: Any) -> int:
        """Messages behind the end of the topic, from librdkafka's local state (no request).

        The cached high watermark is the one the broker returned with the latest fetch of each
        partition; a partition not yet fetched from (position unknown) counts as not behind.
        """
        topic = self.settings.swarms_topic
        assigned = [KafkaTopicPartition(topic, p) for p in sorted(self._assigned)]
        behind = 0
        try:
            for tp in consumer.position(assigned):
                if tp.offset < 0:
                    continue
                _, high = consumer.get_watermark_offsets(tp, cached=True)
                if high >= 0:
                    behind += max(0, high - tp.offset)
        except KafkaException as exc:
            log.debug("could not read the consumer's lag", extra={"error": str(exc)})
            return self.stats.lag_messages
        return behind

    def _add_new_partitions(self, consumer: Any, metadata: Any) -> None:
        """Read partitions added to the topic since start-up, from their beginning."""
        topic = self.settings.swarms_topic
        meta = run_blocking(metadata.list_topics, topic, timeout=self.settings.kafka_timeout_s)
        found = meta.topics.get(topic)
        if found is None or found.error is not None:
            return
        new = set(found.partitions) - self._assigned
        if new:
            consumer.incremental_assign(
                [KafkaTopicPartition(topic, p, OFFSET_BEGINNING) for p in sorted(new)]
            )
            self._assigned |= new
            log.info("reading new partitions", extra={"partitions": sorted(new)})

    def _handle(self, msg: Any) -> None:
        err = msg.error()
        if err is not None:
            if err.code() == KafkaError._PARTITION_EOF:
                return
            if err.fatal():
                raise KafkaException(err)
            self.stats.errors += 1
            log.warning("swarm consumer error", extra={"error": str(err)})
            return
        self.stats.consumed += 1
        _, timestamp = msg.timestamp()
        try:
            swarm = Swarm.decode(msg.value() or b"", fallback_time_ms=timestamp or self._clock())
        except InvalidEventError as exc:
            self.stats.invalid += 1
            if self.stats.invalid == 1 or self.stats.invalid % 1000 == 0:
                log.warning(
                    "skipping invalid swarm message",
                    extra={
                        "error": str(exc),
                        "partition": msg.partition(),
                        "offset": msg.offset(),
                        "invalid_total": self.stats.invalid,
                    },
                )
            return
        if swarm.emitted_at_ms is not None:
            self.stats.last_swarm_lag_s = max(0, self._clock() - swarm.emitted_at_ms) / 1000
        self.hub.publish(swarm)
