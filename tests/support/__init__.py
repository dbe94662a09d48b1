"""Helpers shared by the tests, the benchmarks (bench/) and the cluster tests (k8s-tests/).

Each of them waits for things, picks free ports, starts brokers and servers, reads swarm
feeds and makes swarm messages; they do it through the modules here, so each of those is
written once:

- :mod:`tests.support.waiting`: poll until a condition holds, or time out naming it.
- :mod:`tests.support.ports`: free loopback ports.
- :mod:`tests.support.services`: a Kafka broker and a Redis started on free ports.
- :mod:`tests.support.servers`: the project's servers under gunicorn, started and stopped.
- :mod:`tests.support.feeds`: a stream's swarms read in the background through the SDK.
- :mod:`tests.support.swarms`: swarm messages shaped like the aggregation's.
- :mod:`tests.support.slowclients`: slow clients held against a server, ordinary requests timed.

bench/ imports it as ``tests.support`` (``python -m bench.<name>`` from the repository root);
pytest finds it through ``pythonpath`` in pyproject.toml.
"""
