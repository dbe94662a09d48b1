"""The harness's broker refuses what it should, as a shared cluster's would.

One Job in the namespace signs in as the fanout user (brokerlib.py: SASL_SSL, SCRAM-SHA-512,
the contract's ACLs) and tries three things: with a wrong password it must get an
authentication error, soon (not a hang); with its own password it may see the swarms topic
only; and its write to the reactions topic must fail with a topic authorization error.
"""

import json
import uuid

from brokerlib import REACTIONS, SWARMS, role
from clusterlib import Cluster, Progress, python_job

#: How soon a wrong password must be refused (the first connection's handshake, in practice).
REFUSED_WITHIN_S = 15.0
#: Runs as the fanout user: each client's outcome, as one JSON line. The right password goes
#: first: a new pod's address reaches the broker only once the policy engine admits it (a few
#: seconds), and the wrong password's clock must not include that wait.
PROBE = """
import json, os, time
from confluent_kafka import KafkaError, Producer
from confluent_kafka.admin import AdminClient

BOUND_S, TOPIC = float(os.environ["BOUND_S"]), os.environ["TOPIC"]
result = {}

# The right password: the topics its ACLs let it see.
result["topics_seen"] = sorted(AdminClient(KAFKA).list_topics(timeout=60).topics)

# A wrong password: librdkafka reports it through error_cb; every error until the first
# authentication error, or BOUND_S.
errors, start = [], time.monotonic()
wrong = Producer({**KAFKA, "sasl.password": "not-" + KAFKA["sasl.password"],
                  "error_cb": lambda err: errors.append((time.monotonic() - start, err))})
while time.monotonic() - start < BOUND_S:
    wrong.poll(0.2)
    if any(e.code() == KafkaError._AUTHENTICATION for _, e in errors):
        break
result["wrong_password"] = [
    {"after_s": round(t, 2), "error": e.name(), "reason": e.str()} for t, e in errors]

# A write to a topic its ACLs leave out: the delivery report says why it failed.
reports, start = [], time.monotonic()
producer = Producer({**KAFKA, "message.timeout.ms": int(BOUND_S * 1000)})
producer.produce(TOPIC, b"not allowed", on_delivery=lambda err, _m: reports.append(err))
producer.flush(BOUND_S * 2)
result["write_reactions"] = {
    "after_s": round(time.monotonic() - start, 2),
    "error": reports[0].name() if reports and reports[0] else None,
    "reason": reports[0].str() if reports and reports[0] else None,
}
print(json.dumps(result))
"""


def test_broker_refuses_a_wrong_password_and_a_write_outside_the_acls(
    cluster: Cluster, kafka: None, progress: Progress
) -> None:
    """A wrong password is refused within a bound; the fanout user sees only swarms and may
    not write to reactions."""
    name = f"kafka-refusals-{uuid.uuid4().hex[:6]}"
    env = {"BOUND_S": str(REFUSED_WITHIN_S), "TOPIC": REACTIONS}
    job = python_job(name, PROBE, env, kafka=role("fanout"))
    cluster.run("kubectl", "apply", "-f", "-", stdin=job)
    try:
        log = cluster.wait_job(name, 120)
    finally:
        cluster.run("kubectl", "delete", "job", name, "--wait=false")
    result = json.loads(log.strip().splitlines()[-1])
    progress.say(f"broker's refusals: {result}")

    assert result["topics_seen"] == [SWARMS], result["topics_seen"]
    refused = [e for e in result["wrong_password"] if e["error"] == "_AUTHENTICATION"]
    assert refused, f"no authentication error within {REFUSED_WITHIN_S} s: {result}"
    progress.seconds("kafka: wrong password refused", refused[0]["after_s"])
    assert result["write_reactions"]["error"] == "TOPIC_AUTHORIZATION_FAILED", result
