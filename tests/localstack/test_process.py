"""Background processes of the local stack: started, found, and stopped with their children."""

import json
import os
import socket
import sys
import time
from pathlib import Path

import pytest

from emostream.common.errors import StackError
from emostream.localstack import checks
from emostream.localstack.process import ProcessDir
from tests.support.waiting import wait_until

# A parent that spawns a child which ignores SIGTERM: stopping must still leave nothing behind.
STUBBORN_FAMILY = (
    "import signal, subprocess, sys, time\n"
    "subprocess.Popen([sys.executable, '-c', "
    "'import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)'])\n"
    "time.sleep(600)\n"
)


def test_stop_ends_the_whole_process_group(tmp_path: Path) -> None:
    """A stopped part leaves no process of its group running, even one ignoring SIGTERM."""
    procs = ProcessDir(tmp_path / "run", tmp_path / "logs")
    pid = procs.start("family", [sys.executable, "-c", STUBBORN_FAMILY], os.environ, tmp_path)
    assert procs.running_pid("family") == pid
    time.sleep(0.5)
    assert procs.stop("family", grace_s=1)
    assert procs.running_pid("family") is None
    with pytest.raises(ProcessLookupError):
        os.killpg(pid, 0)


def test_a_part_that_exited_is_not_running(tmp_path: Path) -> None:
    """A child that died (a zombie until reaped) is reported gone, not running until a timeout."""
    procs = ProcessDir(tmp_path / "run", tmp_path / "logs")
    procs.start(
        "quitter", [sys.executable, "-c", "import time; time.sleep(0.3)"], os.environ, tmp_path
    )
    assert procs.running_pid("quitter") is not None
    wait_until(
        "the exited part to count as gone",
        lambda: procs.running_pid("quitter") is None,
        30,
        interval_s=0.1,
    )


def test_a_reused_pid_is_not_taken_for_ours(tmp_path: Path) -> None:
    """A pid file whose pid now runs another program is treated as stopped and never signalled."""
    procs = ProcessDir(tmp_path / "run", tmp_path / "logs")
    procs.run_dir.mkdir(parents=True)
    record = {"pid": os.getpid(), "started": 1, "cmd": ["not", "us"]}
    procs.pid_file("ghost").write_text(json.dumps(record))
    assert procs.running_pid("ghost") is None
    assert not procs.stop("ghost", grace_s=1)  # had it signalled us, this test would be dead


def test_names_lists_started_processes(tmp_path: Path) -> None:
    """Every started and not yet stopped process is listed, so a harness can stop them all."""
    procs = ProcessDir(tmp_path / "run", tmp_path / "logs")
    assert procs.names() == []
    procs.start(
        "sleeper", [sys.executable, "-c", "import time; time.sleep(60)"], os.environ, tmp_path
    )
    assert procs.names() == ["sleeper"]
    procs.stop("sleeper", grace_s=5)
    assert procs.names() == []


def test_port_free_sees_a_listener() -> None:
    """A port someone listens on is reported busy, so `up` can name the conflict."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        assert not checks.port_free(s.getsockname()[1])


def test_missing_program_error_says_how_to_install() -> None:
    """A missing prerequisite fails with the command that installs it."""
    with pytest.raises(StackError, match="apt-get install -y nothing-here"):
        checks.require_program("emostream-no-such-program", "apt-get install -y nothing-here")
