"""The one-machine stack: Kafka (KRaft, Maven Central jars), Redis, the Spark job, ingest, fanout.

No containers: every part runs as a local process whose pid, log and data live under one
project-local directory (``.emostream/`` by default), so ``down`` stops exactly what ``up`` started.
"""
