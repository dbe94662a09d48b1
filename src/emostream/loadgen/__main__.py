"""``python -m emostream.loadgen`` runs the Locust load test headless (``make load``)."""

from emostream.loadgen.run import main

raise SystemExit(main())
