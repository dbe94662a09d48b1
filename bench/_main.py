"""How a benchmark ends when run as ``python -m bench.<name>``.

The benchmarks wait for their brokers and servers with tests.support.waiting, whose timeout is
an assertion, as the tests want it. A benchmark whose start-up times out ends with that message
instead, like any other start-up failure, rather than with a traceback.
"""

from collections.abc import Callable
from typing import NoReturn

from tests.support.waiting import WaitTimeoutError


def run(main: Callable[[], int]) -> NoReturn:
    """Exit with ``main()``'s exit code, or with the message of a wait that timed out."""
    try:
        code = main()
    except WaitTimeoutError as exc:
        raise SystemExit(str(exc)) from None
    raise SystemExit(code)
