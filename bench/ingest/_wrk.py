"""The load generator: ``wrk`` with a Lua script that sends many distinct POST bodies.

wrk is written in C with an event loop per thread, so one process with two threads keeps a
Python server on the same two cores saturated while taking little CPU itself. Its Lua script
builds the bodies once at start (distinct user ids, so the per-user rate limit sees realistic
traffic instead of one user at thousands of reactions a second), then each request only picks
the next prepared one. The ``done`` hook prints one JSON line with the counts and percentiles.
"""

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

#: The original clients' eight reactions, as Lua string escapes of their UTF-8 bytes.
_EMOJI_LUA = (
    "{"
    + ", ".join(
        '"' + "".join(f"\\{b}" for b in e.encode()) + '"'
        for e in ("👏", "😂", "❤️", "😍", "😭", "😡", "👍", "👎")
    )
    + "}"
)

_COMMON = """
local counter = 0
local threads = {}
function setup(thread)
  counter = counter + 1
  thread:set("tid", counter)
  table.insert(threads, thread)
end
local emojis = %(emojis)s
local reqs = {}
local n = 0
local i = 0
function request()
  i = i %% n + 1
  return reqs[i]
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests":%%d,"duration_us":%%d,"non2xx":%%d,"connect":%%d,"read":%%d,"write":%%d,' ..
    '"timeout":%%d,"p50_us":%%d,"p99_us":%%d}\\n',
    summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""

_SINGLE = """
function init(args)
  local headers = {["Content-Type"] = "application/json"}
  local now = os.time()
  n = %(bodies)d
  for k = 1, n do
    local body = string.format(
      '{"user_id":"t%%d-u%%d","emoji_type":"%%s","timestamp":%%d}',
      tid, k, emojis[k %% #emojis + 1], now)
    reqs[k] = wrk.format("POST", "%(path)s", headers, body)
  end
end
"""

_BATCH = """
function init(args)
  local headers = {["Content-Type"] = "application/json"}
  local size = %(batch)d
  n = %(bodies)d
  for k = 1, n do
    local items = {}
    for j = 1, size do
      local u = (k - 1) * size + j
      items[j] = string.format('{"user_id":"t%%d-u%%d","emoji":"%%s"}',
        tid, u, emojis[u %% #emojis + 1])
    end
    reqs[k] = wrk.format("POST", "%(path)s", headers, "[" .. table.concat(items, ",") .. "]")
  end
end
"""


@dataclass(frozen=True)
class WrkResult:
    """What one wrk run counted."""

    requests: int
    duration_s: float
    non_2xx: int
    socket_errors: int
    p50_ms: float
    p99_ms: float

    @property
    def ok(self) -> int:
        """Requests answered 2xx."""
        return self.requests - self.non_2xx

    @property
    def rps(self) -> float:
        """Requests answered 2xx per second."""
        return self.ok / self.duration_s


def single_script(path: str, bodies: int = 10_000) -> str:
    """A script posting one reaction per request in the original clients' format."""
    return (_COMMON + _SINGLE) % {"emojis": _EMOJI_LUA, "path": path, "bodies": bodies}


def batch_script(path: str, batch: int, bodies: int = 1_000) -> str:
    """A script posting batches of ``batch`` reactions, each of a different user."""
    return (_COMMON + _BATCH) % {
        "emojis": _EMOJI_LUA,
        "path": path,
        "bodies": bodies,
        "batch": batch,
    }


def require_wrk() -> str:
    """The path of ``wrk``, or an error saying how to install it."""
    wrk = shutil.which("wrk")
    if wrk is None:
        raise SystemExit("wrk is required: apt-get install -y wrk")
    return wrk


def run_wrk(
    url: str, script: str, workdir: Path, *, duration_s: float, connections: int, threads: int
) -> WrkResult:
    """Run wrk against ``url`` with ``script`` and return its counts."""
    lua = workdir / "load.lua"
    lua.write_text(script)
    cmd = [
        require_wrk(), f"-t{threads}", f"-c{connections}", f"-d{duration_s:g}s",
        "--timeout", "10s", "-s", str(lua), url,
    ]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout  # noqa: S603
    line = next(x for x in reversed(out.splitlines()) if x.startswith("{"))
    d = json.loads(line)
    return WrkResult(
        requests=d["requests"],
        duration_s=d["duration_us"] / 1e6,
        non_2xx=d["non2xx"],
        socket_errors=d["connect"] + d["read"] + d["write"] + d["timeout"],
        p50_ms=d["p50_us"] / 1000,
        p99_ms=d["p99_us"] / 1000,
    )
