"""The gunicorn configuration module: worker model, timeouts and shutdown hooks."""

import inspect

from emostream.ingest import gunicorn_conf
from emostream.ingest.settings import IngestSettings


def test_threads_workers_sized_from_settings() -> None:
    """gthread workers, sized by the settings, with no bind of their own."""
    s = IngestSettings()
    assert gunicorn_conf.worker_class == "gthread"
    assert (gunicorn_conf.workers, gunicorn_conf.threads) == (s.workers, s.threads)
    assert not hasattr(gunicorn_conf, "bind")


def test_grace_period_outlasts_the_producer_flush() -> None:
    """gunicorn waits longer for a stopping worker than the worker spends flushing."""
    assert gunicorn_conf.graceful_timeout > IngestSettings().shutdown_flush_timeout_s


def test_shutdown_hooks_have_gunicorns_signatures() -> None:
    """worker_int/worker_abort take the worker, worker_exit the arbiter and the worker."""
    assert len(inspect.signature(gunicorn_conf.worker_int).parameters) == 1
    assert len(inspect.signature(gunicorn_conf.worker_abort).parameters) == 1
    assert len(inspect.signature(gunicorn_conf.worker_exit).parameters) == 2


def test_hooks_flush_nothing_in_a_process_without_a_producer() -> None:
    """In a process that never produced (the master) the hooks return at once."""
    gunicorn_conf.worker_exit(None, None)
