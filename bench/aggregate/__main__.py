"""``python -m bench.aggregate``: run the aggregation benchmark and print its figures."""

from bench._main import run
from bench.aggregate.run import main

run(main)
