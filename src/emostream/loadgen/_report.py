"""PNG plots of a Locust run from its ``--csv-full-history`` file.

Locust's HTML report shows the run's totals; the plots show how throughput, latency and the
number of simulated users moved during it, which is what a capacity question is about.
"""

import csv
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt
from matplotlib.figure import Figure

AGGREGATED = "Aggregated"
PERCENTILES = ("50%", "95%", "99%")


@dataclass
class Series:
    """One request name's history: seconds since start and the columns plotted."""

    t: list[float] = field(default_factory=list)
    rps: list[float] = field(default_factory=list)
    fails: list[float] = field(default_factory=list)
    latency: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))


def _number(text: str) -> float:
    """Locust writes ``N/A`` before the first request of a name."""
    try:
        return float(text)
    except ValueError:
        return float("nan")


def read_history(path: Path) -> tuple[list[float], list[int], dict[str, Series]]:
    """(seconds, user counts) of the aggregated rows, and every name's :class:`Series`."""
    series: dict[str, Series] = defaultdict(Series)
    users_t: list[float] = []
    users: list[int] = []
    start: float | None = None
    with path.open(newline="") as f:
        for row in csv.DictReader(f):
            ts = float(row["Timestamp"])
            start = ts if start is None else start
            t = ts - start
            name = row["Name"] if row["Name"] == AGGREGATED else f"{row['Type']} {row['Name']}"
            s = series[name]
            s.t.append(t)
            s.rps.append(_number(row["Requests/s"]))
            s.fails.append(_number(row["Failures/s"]))
            for p in PERCENTILES:
                s.latency[p].append(_number(row[p]))
            if row["Name"] == AGGREGATED:
                users_t.append(t)
                users.append(int(row["User Count"]))
    return users_t, users, dict(series)


def plot(history: Path, out_dir: Path) -> list[Path]:
    """Write throughput.png, latency.png and users.png next to the report; return their paths."""
    users_t, users, series = read_history(history)
    names = sorted(n for n in series if n != AGGREGATED)
    written = []

    fig, ax = plt.subplots(figsize=(10, 4.5))
    for name in names:
        ax.plot(series[name].t, series[name].rps, label=name)
    if AGGREGATED in series:
        ax.plot(series[AGGREGATED].t, series[AGGREGATED].fails, "k--", label="failures (all)")
    ax.set(title="Requests and deliveries per second", xlabel="seconds", ylabel="per second")
    ax.legend(fontsize="small")
    written.append(_save(fig, out_dir / "throughput.png"))

    fig, axes = plt.subplots(len(names) or 1, 1, figsize=(10, 2.4 * max(len(names), 1)))
    for ax, name in zip(axes if len(names) > 1 else [axes], names, strict=False):
        for p in PERCENTILES:
            ax.plot(series[name].t, series[name].latency[p], label=f"p{p.rstrip('%')}")
        ax.set(title=name, ylabel="ms")
        ax.legend(fontsize="small", loc="upper left")
    fig.supxlabel("seconds")
    written.append(_save(fig, out_dir / "latency.png"))

    fig, ax = plt.subplots(figsize=(10, 3))
    ax.plot(users_t, users)
    ax.set(title="Simulated users (senders and SSE viewers)", xlabel="seconds", ylabel="users")
    written.append(_save(fig, out_dir / "users.png"))
    return written


def _save(fig: Figure, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
