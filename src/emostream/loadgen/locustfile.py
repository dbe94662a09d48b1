"""The Locust load test: senders on both ingest routes and SSE viewers that time delivery.

Run headless against the local stack with ``make load``, or in the cluster with the chart's
Locust job. Stream popularity is Zipf-skewed, as in a real event where one final draws most of
the audience. Viewers report each swarm's delivery latency (now - the swarm's ``emitted_at``) and
its end-to-end latency (now - the newest reaction it counts) as Locust request events, so they
appear in Locust's statistics beside the senders.
"""

import random
import time

from locust import FastHttpUser, User, between, constant_pacing, events, task
from locust.env import Environment

from emostream.client import EmostreamClient
from emostream.common.errors import EmostreamError
from emostream.common.events import now_ms
from emostream.loadgen._traffic import reaction, zipf_weights
from emostream.loadgen.settings import LoadSettings

SETTINGS = LoadSettings()
STREAMS = [f"stream-{k}" for k in range(SETTINGS.load_streams)]
STREAM_WEIGHTS = zipf_weights(SETTINGS.load_streams, SETTINGS.load_zipf_s)
#: How long opened streams take to be live everywhere: the default registry_refresh_s, twice.
REGISTRY_SPREAD_S = 2.0
#: Sent with every request when the deployment wants tokens.
TOKEN = SETTINGS.token()
AUTH = {"Authorization": f"Bearer {TOKEN}"} if TOKEN else {}


def open_streams(environment: Environment, **_: object) -> None:
    """With an admin token, open the load's streams first (a closed stream registry), and give
    every ingest and fanout process the time to see them (registry_refresh_s, 1 s)."""
    admin_token = SETTINGS.admin_token()
    if admin_token and environment.host:
        with EmostreamClient(environment.host, admin_token=admin_token) as client:
            for stream in STREAMS:
                client.open_stream(stream)
        time.sleep(REGISTRY_SPREAD_S)


# Locust does not type its event hooks.
events.test_start.add_listener(open_streams)  # type: ignore[no-untyped-call]


def pick_stream() -> str:
    """A stream id, popular ones more often."""
    return random.choices(STREAMS, STREAM_WEIGHTS)[0]  # noqa: S311 - load, not security


class BatchSender(FastHttpUser):
    """An app backend forwarding its viewers' taps in batches."""

    weight = 2
    wait_time = constant_pacing(0.5)

    @task
    def send_batch(self) -> None:
        """POST a batch of reactions to a popular stream."""
        batch = [reaction() for _ in range(SETTINGS.load_batch_size)]
        self.client.post(
            f"/v1/streams/{pick_stream()}/reactions",
            json=batch,
            headers=AUTH,
            name="/v1/streams/[id]/reactions batch",
        )


class SingleSender(FastHttpUser):
    """A viewer's app sending each tap as it happens, on both routes."""

    weight = 6
    wait_time = between(0.05, 0.2)

    @task(3)
    def send_one(self) -> None:
        """POST one reaction to the versioned route."""
        self.client.post(
            f"/v1/streams/{pick_stream()}/reactions",
            json=reaction(),
            headers=AUTH,
            name="/v1/streams/[id]/reactions",
        )

    @task(1)
    def send_original(self) -> None:
        """POST one reaction the way the original clients do."""
        r = reaction()
        body = {
            "user_id": r["user_id"],
            "emoji_type": r["emoji"],
            "timestamp": time.time(),
            "stream_id": pick_stream(),
        }
        self.client.post("/send_emoji", json=body, headers=AUTH)


class Viewer(User):
    """A viewer watching one stream's swarms over SSE for a while, then switching."""

    weight = 2

    def _report(self, name: str, ms: float, size: int, exc: Exception | None = None) -> None:
        self.environment.events.request.fire(
            request_type="SSE", name=name, response_time=ms, response_length=size,
            exception=exc, context={},
        )  # fmt: skip

    @task
    def watch(self) -> None:
        """Listen to one stream for ``load_listen_s`` seconds, timing every swarm."""
        client = EmostreamClient(fanout_url=SETTINGS.fanout_url, token=TOKEN)
        stop_at = time.monotonic() + SETTINGS.load_listen_s
        feed = client.swarms(pick_stream(), timeout=30)
        joined = now_ms()
        try:
            for swarm in feed:
                now, size = now_ms(), len(swarm["counts"])
                if swarm["emitted_at"] < joined:
                    continue  # the greeting snapshot, not a live delivery
                self._report("swarm delivery", now - swarm["emitted_at"], size)
                if swarm.get("last_receive_ms"):
                    self._report("reaction to viewer", now - swarm["last_receive_ms"], size)
                if time.monotonic() > stop_at:
                    break
        except EmostreamError as exc:
            self._report("swarm delivery", 0, 0, exc)
        finally:
            feed.close()
