"""``python -m bench.fanout``: run the fanout benchmark and print its figures."""

from bench._main import run
from bench.fanout.run import main

run(main)
