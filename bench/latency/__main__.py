"""``python -m bench.latency``: run the reaction -> viewer latency benchmark."""

from bench._main import run
from bench.latency.run import main

run(main)
