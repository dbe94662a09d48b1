"""The gunicorn configuration module: worker model, metrics directory and address, shutdown
hooks.

The module sets ``PROMETHEUS_MULTIPROC_DIR`` and prometheus_client's value class when imported,
so each test imports a fresh copy with both under ``monkeypatch``, and the test process's are
restored after.
"""

import importlib
import inspect
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType, SimpleNamespace

import pytest
from gunicorn.config import Config
from prometheus_client import values

from emostream.common.errors import ConfigurationError
from emostream.ingest.settings import IngestSettings
from emostream.localstack.nginx import UPSTREAM_IDLE_S
from tests.support.services import ROOT

MODULE = "emostream.ingest.gunicorn_conf"


@pytest.fixture
def conf(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[ModuleType]:
    """A fresh import of the configuration, with its metrics directory under tmp_path."""
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    monkeypatch.setattr(values, "ValueClass", values.ValueClass)
    sys.modules.pop(MODULE, None)
    yield importlib.import_module(MODULE)
    sys.modules.pop(MODULE, None)


def test_threads_workers_sized_from_settings(conf: ModuleType) -> None:
    """gthread workers, sized by the settings, with no bind of their own."""
    s = IngestSettings()
    assert conf.worker_class == "gthread"
    assert (conf.workers, conf.threads) == (s.workers, s.threads)
    assert not hasattr(conf, "bind")


def test_nginx_drops_idle_upstream_connections_before_gunicorn_does(conf: ModuleType) -> None:
    """nginx in front never sends a request on a kept-alive connection gunicorn is closing."""
    assert conf.keepalive > UPSTREAM_IDLE_S


def test_grace_period_outlasts_the_producer_flush(conf: ModuleType) -> None:
    """gunicorn waits longer for a stopping worker than the worker spends flushing."""
    assert conf.graceful_timeout > IngestSettings().shutdown_flush_timeout_s


def test_shutdown_and_metrics_hooks_have_gunicorns_signatures(conf: ModuleType) -> None:
    """Each hook takes the arguments gunicorn passes it."""
    arity = {
        "worker_int": 1,
        "worker_abort": 1,
        "worker_exit": 2,
        "on_starting": 1,
        "child_exit": 2,
        "on_exit": 1,
    }
    for name, n in arity.items():
        assert len(inspect.signature(getattr(conf, name)).parameters) == n, name


def test_hooks_flush_nothing_in_a_process_without_a_producer(conf: ModuleType) -> None:
    """In a process that never produced (the master) the hooks return at once."""
    conf.worker_exit(None, None)


def test_a_given_metrics_directory_is_used_and_cleared_at_start(
    conf: ModuleType, tmp_path: Path
) -> None:
    """The given directory is the metrics directory; stale files go at start, the dir stays."""
    assert conf.metrics_dir == str(tmp_path)
    stale = tmp_path / "counter_12345.db"
    stale.write_bytes(b"old")
    conf.on_starting(_master("127.0.0.1:8001"))
    assert not stale.exists()
    conf.on_exit(None)
    assert tmp_path.is_dir()


def test_the_metrics_address_is_bound_beside_the_command_lines(conf: ModuleType) -> None:
    """At start the master listens on the metrics address as well as on --bind."""
    master = _master("127.0.0.1:8001")
    conf.on_starting(master)
    assert master.cfg.bind == ["127.0.0.1:8001", f"127.0.0.1:{IngestSettings().metrics_port}"]


def test_a_public_bind_on_the_metrics_port_is_refused(conf: ModuleType) -> None:
    """A --bind on the metrics port (any host) would serve the API as metrics: gunicorn stops."""
    with pytest.raises(ConfigurationError, match="metrics port"):
        conf.on_starting(_master(f"10.0.0.1:{IngestSettings().metrics_port}"))


def _master(*bind: str) -> SimpleNamespace:
    """What on_starting reads of gunicorn's arbiter: its configuration, bound to ``bind``."""
    cfg = Config()
    cfg.set("bind", list(bind))
    return SimpleNamespace(cfg=cfg)


def test_without_a_directory_a_fresh_one_is_made_before_prometheus_is_imported() -> None:
    """Importing the configuration alone sets the variable, puts prometheus_client in its
    multiprocess mode, and makes no Kafka client possible before the fork."""
    code = (
        "import os, sys\n"
        f"import {MODULE} as c\n"
        "assert os.environ['PROMETHEUS_MULTIPROC_DIR'] == c.metrics_dir\n"
        "assert os.path.isdir(c.metrics_dir)\n"
        "from prometheus_client import Counter, values\n"
        "Counter('probe', 'a value in the directory').inc()\n"
        "assert [f for f in os.listdir(c.metrics_dir) if f.startswith('counter_')]\n"
        "assert 'confluent_kafka' not in sys.modules\n"
        "c.on_exit(None)\n"
        "assert not os.path.exists(c.metrics_dir)\n"
    )
    env = {"PATH": "/usr/bin:/bin", "HOME": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
