"""Free TCP ports on the loopback interface, for the servers the tests and benchmarks start.

Two kinds: any free port (from the kernel's ephemeral range), for a server that binds once; and
a port below that range, for a server that may be killed and must bind the same port again.
"""

import contextlib
import random
import socket
from pathlib import Path


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def fixed_ports(n: int) -> list[int]:
    """``n`` different free ports below the kernel's ephemeral range."""
    ports: set[int] = set()
    while len(ports) < n:
        ports.add(fixed_port())
    return sorted(ports)


def fixed_port() -> int:
    """A free port below the kernel's ephemeral range.

    A part killed mid-run binds its port again when it restarts, up to a minute later (the
    Spark job binds its metrics port only once its session is up). A port from the ephemeral
    range (what binding port 0 hands out) may meanwhile have been given to any outgoing
    connection on the machine, the restarting JVM's own included, and the restart would fail
    with "address already in use". Ports below the range are only ever taken on purpose.
    """
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    for _ in range(1000):
        port = random.randrange(20000, low)
        with socket.socket() as s, contextlib.suppress(OSError):
            s.bind(("127.0.0.1", port))
            return port
    raise RuntimeError(f"no free port between 20000 and {low}")
