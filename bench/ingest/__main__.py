"""``python -m bench.ingest``: run the ingest benchmark and print its figures."""

from bench.ingest.run import main

raise SystemExit(main())
