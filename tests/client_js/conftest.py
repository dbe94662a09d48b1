"""The TypeScript SDK in clients/js: its dependencies installed once, and a way to run its tools.

``npm ci`` runs once per lockfile: a stamp in ``node_modules`` records the lockfile's hash, so a
second session (or a machine that ran it before) starts at once. The tools run with the
repository's node (20 or later), never through ``npx``, so nothing is fetched behind the suite's
back.
"""

import hashlib
import os
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

import pytest

from tests.support.services import ROOT

SDK_DIR = ROOT / "clients" / "js"
NODE = shutil.which("node")
NPM = shutil.which("npm")
_STAMP = SDK_DIR / "node_modules" / ".emostream-lock-sha256"


def _node_major() -> int:
    if NODE is None:
        return 0
    version = subprocess.run([NODE, "--version"], capture_output=True, text=True, check=True)
    return int(version.stdout.strip().lstrip("v").split(".")[0])


def run_node(
    args: list[str], *, env: Mapping[str, str] | None = None, timeout_s: float = 300
) -> subprocess.CompletedProcess[str]:
    """Run ``node args...`` in clients/js, output captured (stderr folded into stdout)."""
    assert NODE is not None
    return subprocess.run(
        [NODE, *args],
        cwd=SDK_DIR,
        env={**os.environ, **(env or {}), "NO_COLOR": "1", "FORCE_COLOR": "0"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout_s,
        check=False,
    )


def assert_ran(result: subprocess.CompletedProcess[str], what: str) -> None:
    """Fail with the tool's whole output when it did not exit 0."""
    assert result.returncode == 0, f"{what} failed (exit {result.returncode}):\n{result.stdout}"


@pytest.fixture(scope="session")
def js_sdk() -> Path:
    """clients/js with its locked dev dependencies installed (``npm ci``, once per lockfile)."""
    if NODE is None or NPM is None or _node_major() < 20:
        pytest.skip("the TypeScript SDK needs node 20 or later and npm on PATH")
    digest = hashlib.sha256((SDK_DIR / "package-lock.json").read_bytes()).hexdigest()
    if not _STAMP.is_file() or _STAMP.read_text() != digest:
        result = subprocess.run(
            [NPM, "ci", "--no-audit", "--no-fund"],
            cwd=SDK_DIR,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=600,
            check=False,
        )
        assert_ran(result, "npm ci in clients/js")
        _STAMP.write_text(digest)
    return SDK_DIR
