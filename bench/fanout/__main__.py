"""``python -m bench.fanout``: run the fanout benchmark and print its figures."""

from bench.fanout.run import main

raise SystemExit(main())
