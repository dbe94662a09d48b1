"""``python -m bench.ingest``: run the ingest benchmark and print its figures."""

from bench._main import run
from bench.ingest.run import main

run(main)
