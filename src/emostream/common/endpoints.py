"""Where each part listens on one machine: the local contract's default addresses.

Every default host, port and URL is written here once; settings, the command line, the client,
the local stack and the gunicorn configurations import them.
"""

LOCAL_HOST = "127.0.0.1"
INGEST_PORT = 8000
FANOUT_PORT = 8080
KAFKA_PORT = 9092
REDIS_PORT = 6379
# Each role's Prometheus /metrics, on a port of its own that no public address reaches.
INGEST_METRICS_PORT = 9100
FANOUT_METRICS_PORT = 9101
AGGREGATE_METRICS_PORT = 9108

INGEST_URL = f"http://{LOCAL_HOST}:{INGEST_PORT}"
FANOUT_URL = f"http://{LOCAL_HOST}:{FANOUT_PORT}"
KAFKA_BOOTSTRAP_SERVERS = f"{LOCAL_HOST}:{KAFKA_PORT}"
REDIS_URL = f"redis://{LOCAL_HOST}:{REDIS_PORT}/0"
