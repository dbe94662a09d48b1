"""The ceiling: a minimal SSE broadcaster on raw asyncio, fed from the same Kafka topic.

``python -m bench.fanout._baseline --port P --workers W --bootstrap B --topic T`` forks ``W``
processes before any of them opens a Kafka client or an event loop; each listens on the port
with ``SO_REUSEPORT`` (the kernel spreads connections evenly) and reads every partition of the
swarms topic from its end with its own consumer, as a fanout worker does. A swarm is framed
once and written to each of its stream's connections with ``transport.write``; nothing else
happens: no replay buffer, no snapshot, no validation beyond taking ``stream_id`` out of the
JSON, no per-connection queue (a connection whose unsent bytes pass 1 MiB is closed instead),
a heartbeat comment every 15 s. The gap between it and the fanout is what the fanout's
framework and features cost per connection and per delivery.
"""

import argparse
import asyncio
import contextlib
import os
import signal
import socket
import sys
import threading
from collections import defaultdict

import orjson
from confluent_kafka import OFFSET_END, Consumer, TopicPartition

_HEADERS = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
    b"X-Accel-Buffering: no\r\nConnection: close\r\n\r\nretry: 2000\n\n"
)
_NOT_FOUND = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
_READY = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
_NOT_READY = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
_PREFIX, _SUFFIX = b"/v1/streams/", b"/events"
_MAX_BUFFERED = 1 << 20
_HEARTBEAT_S = 15.0


class _Broadcaster:
    """One process's connections by stream."""

    def __init__(self) -> None:
        self.streams: dict[bytes, set[asyncio.Transport]] = defaultdict(set)
        #: Set once the consumer reads every partition; ``GET /readyz`` answers 200 from then.
        self.reading = threading.Event()

    def publish(self, stream: bytes, frame: bytes) -> None:
        for transport in list(self.streams.get(stream, ())):
            if transport.get_write_buffer_size() > _MAX_BUFFERED:
                transport.close()
            else:
                transport.write(frame)

    async def heartbeat(self) -> None:
        while True:
            await asyncio.sleep(_HEARTBEAT_S)
            for subscribers in self.streams.values():
                for transport in subscribers:
                    transport.write(b": hb\n\n")


class _Feed(asyncio.Protocol):
    """One connection: read the request head, answer, then only receive writes."""

    def __init__(self, hub: _Broadcaster) -> None:
        self.hub = hub
        self.head = b""
        self.stream: bytes | None = None
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)  # noqa: S101 - TCP gives one
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if self.stream is not None or self.transport is None:
            return
        self.head += data
        if b"\r\n\r\n" not in self.head:
            return
        target = self.head.split(b" ", 2)[1] if self.head.count(b" ") >= 2 else b""
        if target == b"/readyz":
            self.transport.write(_READY if self.hub.reading.is_set() else _NOT_READY)
            self.transport.close()
            return
        if not (target.startswith(_PREFIX) and target.endswith(_SUFFIX)):
            self.transport.write(_NOT_FOUND)
            self.transport.close()
            return
        self.stream = target[len(_PREFIX) : -len(_SUFFIX)]
        self.transport.write(_HEADERS)
        self.hub.streams[self.stream].add(self.transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.stream is not None and self.transport is not None:
            subscribers = self.hub.streams.get(self.stream)
            if subscribers is not None:
                subscribers.discard(self.transport)
                if not subscribers:
                    del self.hub.streams[self.stream]


def _frame(value: bytes) -> tuple[bytes, bytes]:
    swarm = orjson.loads(value)
    stream = str(swarm.get("stream_id", "")).encode()
    return stream, b"id: %s\nevent: swarm\ndata: %s\n\n" % (
        str(swarm.get("id", "")).encode(),
        value,
    )


def _consume(
    bootstrap: str, topic: str, loop: asyncio.AbstractEventLoop, hub: _Broadcaster
) -> None:
    """Read every partition from its end; hand each burst of frames to the event loop."""
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "bench-baseline", "enable.auto.commit": False}
    )
    parts = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, OFFSET_END) for p in parts])
    consumer.consume(1, timeout=1.0)  # resolves the end offsets
    hub.reading.set()

    def deliver(frames: list[tuple[bytes, bytes]]) -> None:
        for stream, frame in frames:
            hub.publish(stream, frame)

    try:
        while True:
            # Wait for one message, then take whatever else is there without waiting:
            # ``consume(n, timeout)`` alone would hold a small burst until n arrive or the
            # timeout passes, adding up to the timeout to every delivery.
            first = consumer.poll(0.5)
            if first is None:
                continue
            messages = [first, *consumer.consume(500, timeout=0)]
            frames = [_frame(m.value() or b"{}") for m in messages if not m.error()]
            if frames:
                loop.call_soon_threadsafe(deliver, frames)
    finally:
        consumer.close()


async def _serve(port: int, bootstrap: str, topic: str) -> None:
    loop = asyncio.get_running_loop()
    hub = _Broadcaster()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(("127.0.0.1", port))
    server = await loop.create_server(lambda: _Feed(hub), sock=sock, backlog=4096)
    threading.Thread(target=_consume, args=(bootstrap, topic, loop, hub), daemon=True).start()
    beat = asyncio.create_task(hub.heartbeat())
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    async with server:
        await stop.wait()
    beat.cancel()


def _child(port: int, bootstrap: str, topic: str) -> None:
    asyncio.run(_serve(port, bootstrap, topic))


def main(argv: list[str] | None = None) -> int:
    """Fork the workers and wait; SIGTERM stops them all."""
    parser = argparse.ArgumentParser(prog="python -m bench.fanout._baseline")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    a = parser.parse_args(argv)
    children = []
    for _ in range(a.workers):
        pid = os.fork()
        if pid == 0:
            _child(a.port, a.bootstrap, a.topic)
            os._exit(0)
        children.append(pid)

    def stop(_sig: int, _frame: object) -> None:
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for pid in children:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
