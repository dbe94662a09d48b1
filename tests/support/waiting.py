"""Waiting for a condition, in one argument order and with one failure message.

Tests, benchmarks and the cluster tests wait for servers to answer, counts to add up and pods
to become ready, all by polling. This is the one polling loop: a wait that runs out of time
fails the same way everywhere, naming what it waited for and for how long.
"""

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

#: How often a condition is checked unless the caller says otherwise.
INTERVAL_S = 0.25


class WaitTimeoutError(AssertionError):
    """A condition did not hold in time (an assertion, so a test that waits in vain fails)."""


def wait_until(
    what: str | Callable[[], str],
    ready: Callable[[], T | None],
    timeout_s: float,
    *,
    interval_s: float = INTERVAL_S,
) -> T:
    """Call ``ready`` every ``interval_s`` until it returns something truthy, and return that.

    After ``timeout_s`` raise :class:`WaitTimeoutError` naming ``what``; a callable ``what`` is
    asked only then, so it can describe the state at the timeout (counts so far, a server's log).
    """
    value = poll_until(ready, timeout_s, interval_s=interval_s)
    if not value:
        description = what() if callable(what) else what
        raise WaitTimeoutError(f"timed out after {timeout_s:g} s waiting for {description}")
    return value


def poll_until(ready: Callable[[], T], timeout_s: float, *, interval_s: float = INTERVAL_S) -> T:
    """Call ``ready`` every ``interval_s`` until it returns something truthy or ``timeout_s``
    has passed; return its last value (falsy after a timeout).

    For the callers that decide for themselves what running out of time means.
    """
    deadline = time.monotonic() + timeout_s
    while not (value := ready()):
        if time.monotonic() > deadline:
            return value
        time.sleep(interval_s)
    return value
