"""Fanout: delivers each stream's swarms to its viewers over Server-Sent Events and WebSocket.

Served by gunicorn as ``gunicorn -k gevent -c python:emostream.fanout.gunicorn_conf
'emostream.fanout.app:create_app()'``; see :mod:`emostream.fanout.app` for the routes and
:mod:`emostream.fanout._upstream` for how one Kafka consumer per worker feeds them.
"""
