"""Start, find and stop the stack's background processes by pid file.

Each process leads its own session (process group), so stopping it also stops what it spawned
(gunicorn's workers, the Spark driver's JVM). A pid file stores the process's start time too (its
command line is no identity: Redis rewrites its own), so a pid that the system reused for an
unrelated program is never signalled.
"""

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ProcessDir:
    """Where pid files and logs of the stack's processes live."""

    run_dir: Path
    log_dir: Path

    def pid_file(self, name: str) -> Path:
        """The pid file of process ``name``."""
        return self.run_dir / f"{name}.pid"

    def log_file(self, name: str) -> Path:
        """The combined stdout/stderr log of process ``name``."""
        return self.log_dir / f"{name}.log"

    def running_pid(self, name: str) -> int | None:
        """The pid of ``name`` if the process we started is still alive, else None."""
        try:
            record = json.loads(self.pid_file(name).read_text())
            pid = int(record["pid"])
            started = int(record["started"])
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return pid if _start_ticks(pid) == started else None

    def names(self) -> list[str]:
        """Names of the processes started here and not yet stopped, newest first."""
        files = sorted(self.run_dir.glob("*.pid"), key=lambda f: f.stat().st_mtime, reverse=True)
        return [f.stem for f in files]

    def start(self, name: str, cmd: list[str], env: Mapping[str, str], cwd: Path) -> int:
        """Launch ``cmd`` in the background with its output appended to its log."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with self.log_file(name).open("ab") as log:
            proc = subprocess.Popen(
                cmd, cwd=cwd, env=dict(env), stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        record = {"pid": proc.pid, "started": _start_ticks(proc.pid), "cmd": cmd}
        self.pid_file(name).write_text(json.dumps(record))
        return proc.pid

    def stop(self, name: str, grace_s: float) -> bool:
        """SIGTERM the process, then SIGKILL its whole group after ``grace_s``; True if it ran."""
        pid = self.running_pid(name)
        self.pid_file(name).unlink(missing_ok=True)
        if pid is None:
            return False
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline and _group_alive(pid):
            time.sleep(0.2)
        if _group_alive(pid):
            os.killpg(pid, signal.SIGKILL)
            while _group_alive(pid):
                time.sleep(0.1)
        return True


def _start_ticks(pid: int) -> int | None:
    """The start time in clock ticks since boot (field 22 of /proc/<pid>/stat) of a live process.

    A process that exited but was not yet reaped (a zombie: our child, when the starting command
    is still running) counts as gone, and is reaped here, so a part that dies during start-up
    is reported at once instead of after the readiness timeout.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses; fields after it do not.
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] == "Z":
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        return None
    return int(fields[19])


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A group whose only member is our own unreaped zombie child counts as gone.
    try:
        reaped, _ = os.waitpid(pgid, os.WNOHANG)
    except ChildProcessError:
        return True
    return reaped == 0
