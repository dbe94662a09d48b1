"""``python -m emostream.aggregate`` runs the aggregation job (local mode by default)."""

from emostream.aggregate.job import main

main()
