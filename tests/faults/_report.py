"""The fault table: one row per scenario, printed at the end of the run."""

import math
from dataclasses import dataclass

import pytest


@dataclass
class Row:
    """What one fault did: events accepted and counted, and how long recovery took."""

    fault: str
    accepted: int
    counted: int
    recovery_2xx_s: float | None = None
    recovery_swarm_s: float | None = None
    notes: str = ""


ROWS = pytest.StashKey[list[Row]]()
_HEADER = ("fault", "accepted", "counted", "first 2xx again", "first swarm again", "notes")


def _seconds(value: float | None) -> str:
    if value is None or math.isnan(value):
        return "never"
    if value == 0:
        return "no gap"
    return f"{value:.1f} s"


def table(rows: list[Row]) -> list[str]:
    """The rows as aligned text lines, with a header."""
    cells = [_HEADER] + [
        (
            r.fault,
            str(r.accepted),
            str(r.counted),
            _seconds(r.recovery_2xx_s),
            _seconds(r.recovery_swarm_s),
            r.notes,
        )
        for r in rows
    ]
    widths = [max(len(c[i]) for c in cells) for i in range(len(_HEADER))]
    lines = [
        " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    ]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return lines
