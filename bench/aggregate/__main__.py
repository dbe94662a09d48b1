"""``python -m bench.aggregate``: run the aggregation benchmark and print its figures."""

from bench.aggregate.run import main

raise SystemExit(main())
