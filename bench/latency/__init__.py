"""Reaction -> viewer latency of the whole local stack, split per stage (``make bench-latency``)."""
