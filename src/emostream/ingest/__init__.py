"""HTTP ingest: validates viewers' reactions and writes them to the Kafka ``reactions`` topic.

Served by gunicorn as ``gunicorn -c python:emostream.ingest.gunicorn_conf
'emostream.ingest.app:create_app()'``; see :mod:`emostream.ingest.app` for the routes.
"""
