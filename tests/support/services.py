"""A Kafka broker and a Redis started on free loopback ports, for tests and benchmarks.

The session's fixtures (tests/conftest.py), the ingest outage test and the benchmarks start
their own broker or Redis when the environment names none. They start them alike: the local
stack's KRaft broker from its Maven jars, redis-server without persistence, each under a
:class:`ProcessDir` and waited for until it answers. Stopping is the caller's: a session stops
everything at its end, a benchmark when its block ends, the outage test on purpose.
"""

from collections.abc import Mapping
from pathlib import Path

from emostream.localstack import checks
from emostream.localstack.kafka import KafkaBroker, SecuredListener, kafka_ready
from emostream.localstack.process import ProcessDir
from tests.support.ports import free_port
from tests.support.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]
#: Where the tests keep the jars they fetch (the local stack's cache), so nothing is fetched twice.
JAR_CACHE = ROOT / ".emostream" / "jars"
#: The Kafka version of the tests' brokers.
KAFKA_VERSION = "4.1.1"
#: How long a broker or Redis may take to answer once started.
START_S = 120.0


def local_broker(
    data_dir: Path, *, jars: Path, heap: str, secured_keystore: Path | None = None
) -> KafkaBroker:
    """A single-node KRaft broker on free loopback ports, its config and storage ready; with a
    ``secured_keystore``, a SASL_SSL listener too."""
    broker = KafkaBroker(
        jars=jars,
        data_dir=data_dir,
        port=free_port(),
        controller_port=free_port(),
        heap=heap,
        secured=secured_keystore and SecuredListener(free_port(), secured_keystore),
    )
    broker.prepare()
    return broker


def start_broker(
    procs: ProcessDir,
    broker: KafkaBroker,
    *,
    env: Mapping[str, str],
    name: str = "kafka",
    what: str = "Kafka broker",
) -> str:
    """Start ``broker`` as process ``name``; return its bootstrap servers once it answers."""
    procs.start(name, broker.command(), env, ROOT)
    wait_until(what, lambda: kafka_ready(broker.bootstrap), START_S)
    return broker.bootstrap


def start_redis(
    procs: ProcessDir, data_dir: Path, *, env: Mapping[str, str], name: str = "redis"
) -> str:
    """Start redis-server (no snapshots) on a free port as process ``name``; return its URL
    once it answers."""
    server = checks.require_program("redis-server", "apt-get install -y redis-server")
    port = free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    cmd = [server, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(data_dir), "--save", ""]
    procs.start(name, cmd, env, ROOT)
    url = f"redis://127.0.0.1:{port}/0"
    wait_until("Redis", lambda: checks.redis_ready(url), START_S)
    return url
