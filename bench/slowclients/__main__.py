"""``python -m bench.slowclients``: run the slow-client benchmark and print its figures."""

from bench._main import run
from bench.slowclients.run import main

run(main)
