"""Centrifugo v6 as a reference server: built from the Go module proxy, one node, in memory.

Viewers use its unidirectional SSE endpoint (``/connection/uni_sse``), each with a connection
JWT (HS256) whose ``channels`` claim subscribes it server-side to its stream's channel, so the
client sends nothing after its request, as with the fanout. The publisher uses the HTTP API's
``batch`` method: one request per burst carrying a ``publish`` for every stream.

A single Centrifugo node is one process, so on this machine it can hold at most about 20,000
connections (the per-process open-files limit); several nodes would need a Redis broker
between them, which would measure Redis as much as Centrifugo.
"""

import base64
import hashlib
import hmac
import json
import os
import shutil
import subprocess
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import orjson
from bench.fanout._services import Server, http_status
from tests.support.ports import free_port
from tests.support.services import ROOT
from tests.support.waiting import wait_until

from emostream.localstack.process import ProcessDir
from emostream.localstack.settings import StackSettings

MODULE = "github.com/centrifugal/centrifugo/v6"
DEFAULT_VERSION = "v6.9.1"
#: The HTTP API key and token secret of a loopback server that lives for one run.
API_KEY = "bench-api-key"
_SECRET = "bench-hmac-secret"  # noqa: S105 - see API_KEY


def ensure_binary(version: str, say: Callable[[str], None]) -> Path:
    """The Centrifugo binary in the local stack's ``bin``, built there once if missing."""
    bin_dir = (ROOT / StackSettings().stack_dir / "bin").resolve()
    binary = bin_dir / "centrifugo"
    if binary.exists():
        return binary
    go = shutil.which("go")
    if go is None:
        raise SystemExit("Go is needed to build Centrifugo (or pass --centrifugo-bin)")
    say(f"building Centrifugo {version} with go install (a few minutes, once) ...")
    bin_dir.mkdir(parents=True, exist_ok=True)
    subprocess.run(  # noqa: S603 - fixed command line
        ["nice", "-n", "10", go, "install", f"{MODULE}@{version}"],  # noqa: S607 - nice on PATH
        env={**os.environ, "GOBIN": str(bin_dir)},
        check=True,
    )
    return binary


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def connection_token(channel: str) -> str:
    """A connection JWT subscribing its holder to ``channel`` (no expiry: one run)."""
    header = _b64(orjson.dumps({"alg": "HS256", "typ": "JWT"}))
    claims = _b64(orjson.dumps({"sub": "viewer", "channels": [channel]}))
    signed = f"{header}.{claims}".encode()
    signature = _b64(hmac.new(_SECRET.encode(), signed, hashlib.sha256).digest())
    return f"{header}.{claims}.{signature}"


def _config(port: int) -> dict[str, object]:
    return {
        "http_server": {"address": "127.0.0.1", "port": port},
        "log": {"level": "error"},
        "client": {"token": {"hmac_secret_key": _SECRET}, "allowed_origins": ["*"]},
        "http_api": {"key": API_KEY},
        "uni_sse": {"enabled": True},
        "health": {"enabled": True},
        "usage_stats": {"disabled": True},
    }


@contextmanager
def serve(binary: Path, procs: ProcessDir, work: Path, *, streams: list[str]) -> Iterator[Server]:
    """One Centrifugo node on a free loopback port for the block."""
    port = free_port()
    config = work / "centrifugo.json"
    config.write_text(json.dumps(_config(port)))
    pid = procs.start("centrifugo", [str(binary), "--config", str(config)], os.environ, ROOT)
    try:
        wait_until("Centrifugo", lambda: http_status(f"http://127.0.0.1:{port}/health") == 200, 30)
        paths = [
            "/connection/uni_sse?cf_connect="
            + urllib.parse.quote(json.dumps({"token": connection_token(s)}, separators=(",", ":")))
            for s in streams
        ]
        yield Server(
            "centrifugo", pid, [("127.0.0.1", port)], paths, f"{binary}, one node, memory engine"
        )
    finally:
        procs.stop("centrifugo", grace_s=15)
