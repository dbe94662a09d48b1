"""`kubectl port-forward` to a Service on a fixed local port, restarted whenever it ends.

kubectl forwards a Service to one of its pods, chosen when it starts, and exits when that pod
goes away. Restarting it on the same port lets a client that reconnects (the SSE client does,
with Last-Event-ID) reach the next pod while a Deployment rolls.
"""

import subprocess
import threading
import time

import requests
from tests.support.ports import free_port
from tests.support.waiting import WaitTimeoutError, wait_until


class PortForward:
    """Forward 127.0.0.1:<port> to ``target`` (e.g. svc/name) port ``remote`` in ``namespace``.

    Ready once ``health`` answers 200 through the forward.
    """

    def __init__(
        self, kubectl: str, namespace: str, target: str, remote: int, health: str = "/healthz"
    ) -> None:
        self.port = free_port()
        self._health = health
        self.url = f"http://127.0.0.1:{self.port}"
        self.restarts = 0
        self._cmd = [
            kubectl, "port-forward", "--namespace", namespace, "--address", "127.0.0.1",
            target, f"{self.port}:{remote}",
        ]  # fmt: skip
        self._stop = threading.Event()
        self._proc: subprocess.Popen[bytes] | None = None
        self._thread = threading.Thread(target=self._keep, daemon=True, name=f"pf-{target}")

    def _keep(self) -> None:
        while not self._stop.is_set():
            self._proc = subprocess.Popen(  # noqa: S603 - kubectl, arguments fixed above
                self._cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            self._proc.wait()
            if not self._stop.is_set():
                self.restarts += 1
                time.sleep(0.5)

    def _answers(self) -> bool:
        try:
            return requests.get(f"{self.url}{self._health}", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    def wait_answering(self, timeout_s: float = 60) -> None:
        """Wait until the health path answers through the forward (after a restart, say)."""
        wait_until(
            f"an answer through {' '.join(self._cmd)}", self._answers, timeout_s, interval_s=0.5
        )

    def __enter__(self) -> "PortForward":
        self._thread.start()
        try:
            self.wait_answering()
        except WaitTimeoutError:
            self.__exit__()
            raise
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        if self._proc is not None:
            self._proc.terminate()
            self._proc.wait(timeout=10)
        self._thread.join(timeout=10)
