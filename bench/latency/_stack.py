"""The whole local stack (``make up``'s) in a directory of its own, on free loopback ports.

The benchmark must not meet a stack the user has running, nor leave state behind, so it runs
:class:`~emostream.localstack.stack.LocalStack` with a temporary ``stack_dir`` and ports nobody
listens on; only the jar cache is shared with the project's own stack (a symbolic link), so
nothing is fetched twice.
"""

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from tests.support.ports import fixed_ports
from tests.support.services import ROOT

from emostream.localstack.settings import StackSettings
from emostream.localstack.stack import LocalStack

_PORTS = (
    "kafka_port",
    "kafka_controller_port",
    "redis_port",
    "ingest_port",
    "ingest_upstream_port",
    "fanout_port",
    "ingest_metrics_port",
    "fanout_metrics_port",
    "aggregate_metrics_port",
)


def _say(line: str) -> None:
    print(line, flush=True)  # noqa: T201 - the benchmark reports to the terminal


@contextmanager
def local_stack(workdir: Path, env: Mapping[str, str]) -> Iterator[LocalStack]:
    """A started stack under ``workdir``, its parts run with ``env`` added; stopped after."""
    jars = ROOT / StackSettings().stack_dir / "jars"
    jars.mkdir(parents=True, exist_ok=True)
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "jars").symlink_to(jars)
    ports = dict(zip(_PORTS, fixed_ports(len(_PORTS)), strict=True))
    saved = {k: os.environ.get(k) for k in env}
    # The parts' environment is the caller's, pointed at the stack; the stack's own settings
    # (topic partitions, say) come from it too.
    os.environ.update(env)
    stack = LocalStack(StackSettings(stack_dir=workdir, **ports))
    try:
        stack.up(_say)
        yield stack
    finally:
        stack.down(_say)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
