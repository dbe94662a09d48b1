"""``python -m emostream.loadgen``: run the Locust test headless and write its report and plots.

Everything lands in one directory per run (``reports/load-<UTC time>/`` by default): Locust's
HTML report, its CSVs (with the full per-request history) and the PNG plots of
:mod:`emostream.loadgen._report`. Locust's own periodic statistics are the progress output.
"""

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

from emostream.common import endpoints
from emostream.loadgen._report import plot

CSV_PREFIX = "locust"
#: By path, not imported: importing Locust monkey-patches the importing process for gevent.
LOCUSTFILE = Path(__file__).with_name("locustfile.py")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The run's size and targets; the audience's shape comes from ``LoadSettings``."""
    parser = argparse.ArgumentParser(prog="python -m emostream.loadgen", description=__doc__)
    parser.add_argument("--host", default=endpoints.INGEST_URL, help="ingest base URL")
    parser.add_argument(
        "--fanout-url", default=endpoints.FANOUT_URL, help="fanout base URL (viewers)"
    )
    parser.add_argument("--users", type=int, default=100, help="simulated users at full load")
    parser.add_argument("--spawn-rate", type=float, default=10, help="users started per second")
    parser.add_argument("--run-time", default="2m", help="Locust duration, e.g. 90s, 5m")
    parser.add_argument("--out", type=Path, help="report directory (default: reports/load-<time>)")
    return parser.parse_args(argv)


def locust_command(args: argparse.Namespace, out: Path) -> list[str]:
    """The headless Locust invocation writing HTML and full-history CSVs into ``out``."""
    return [
        sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless",
        "--host", args.host, "--users", str(args.users), "--spawn-rate", str(args.spawn_rate),
        "--run-time", args.run_time, "--stop-timeout", "5",
        "--html", str(out / "report.html"), "--csv", str(out / CSV_PREFIX), "--csv-full-history",
        "--only-summary",
    ]  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    """Run Locust, then plot; Locust's exit code (1 when requests failed) is passed on."""
    args = parse_args(argv)
    out = args.out or Path("reports") / time.strftime("load-%Y%m%dT%H%M%SZ", time.gmtime())
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "EMOSTREAM_FANOUT_URL": args.fanout_url}
    print(f"load: {args.users} users for {args.run_time} against {args.host}; writing {out}/")
    code = subprocess.run(locust_command(args, out), env=env, check=False).returncode
    history = out / f"{CSV_PREFIX}_stats_history.csv"
    if not history.exists():
        print(f"load: Locust wrote no history ({history}); see its output above", file=sys.stderr)
        return code or 1
    for path in plot(history, out):
        print(f"load: wrote {path}")
    print(f"load: report {out / 'report.html'}")
    return code
