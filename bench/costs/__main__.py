"""``python -m bench.costs``: measure Redis's and Kafka's CPU per operation and print it."""

from bench._main import run
from bench.costs.run import main

run(main)
