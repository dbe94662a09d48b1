"""This process's id, without a system call each time it is asked.

``os.getpid()`` is a system call on every call, and the per-request paths ask on every request
(to notice they run in a worker that gunicorn forked after they were set up): the Kafka
producer, the stream registry, and prometheus_client's multiprocess values on each increment.
The id is read once, and again in every child forked afterwards.
"""

import os

_current = [os.getpid()]


def _forked() -> None:
    _current[0] = os.getpid()


os.register_at_fork(after_in_child=_forked)


def current_pid() -> int:
    """The id of this process."""
    return _current[0]
