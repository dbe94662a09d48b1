"""Readiness probes and prerequisite checks for the local stack's parts."""

import re
import shutil
import socket
import subprocess
import urllib.error
import urllib.request

import redis

from emostream.common.errors import StackError


def http_ok(url: str, must_contain: str = "") -> bool:
    """True when ``url`` answers 200 (and its body holds ``must_contain``)."""
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310 - loopback only
            return resp.status == 200 and must_contain in resp.read().decode()
    except (urllib.error.URLError, OSError):
        return False


def redis_ready(url: str) -> bool:
    """True when Redis answers PING."""
    try:
        return bool(redis.Redis.from_url(url, socket_timeout=2).ping())
    except redis.RedisError:
        return False


def port_free(port: int) -> bool:
    """True when nothing listens on 127.0.0.1:``port``."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def require_java17() -> None:
    """Fail with the install command unless ``java`` is version 17 or newer."""
    java = shutil.which("java")
    if java is None:
        raise StackError(
            "Java 17+ is required for Kafka and Spark: apt-get install -y openjdk-17-jre-headless"
        )
    out = subprocess.run([java, "-version"], capture_output=True, text=True, check=False).stderr
    match = re.search(r'version "(\d+)', out)
    if match is None or int(match.group(1)) < 17:
        raise StackError(
            f"Java 17+ is required, found: {out.splitlines()[0] if out else 'unknown'}"
        )


def require_program(name: str, install_hint: str) -> str:
    """The path of ``name`` on PATH, or a clear error saying how to install it."""
    path = shutil.which(name)
    if path is None:
        raise StackError(f"{name} is required: {install_hint}")
    return path
