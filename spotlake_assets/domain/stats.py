"""Pure summaries of run figures: per asset, how long steps took and how much memory they held."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

STATS_COLUMNS = (
    "asset",
    "runs",
    "duration_mean_s",
    "duration_p95_s",
    "duration_max_s",
    "peak_rss_max_mib",
    "rows_mean",
)
BARS = "▁▂▃▄▅▆▇█"


@dataclass(frozen=True)
class RunFigure:
    asset: str
    partition: str | None
    duration_s: float
    peak_rss_mib: float
    rows: int


def summarise(figures: Sequence[RunFigure]) -> pd.DataFrame:
    if not figures:
        return pd.DataFrame(
            {c: pd.Series(dtype="float64" if c != "asset" else "object") for c in STATS_COLUMNS}
        )
    frame = pd.DataFrame([f.__dict__ for f in figures])
    grouped = frame.groupby("asset", sort=True)
    summary = pd.DataFrame(
        {
            "runs": grouped.size(),
            "duration_mean_s": grouped["duration_s"].mean().round(3),
            "duration_p95_s": grouped["duration_s"].quantile(0.95).round(3),
            "duration_max_s": grouped["duration_s"].max().round(3),
            "peak_rss_max_mib": grouped["peak_rss_mib"].max().round(1),
            "rows_mean": grouped["rows"].mean().round(0),
        }
    ).reset_index()
    return summary[list(STATS_COLUMNS)]


def sparkline(values: Sequence[float]) -> str:
    """A one-line chart (the UI renders Markdown, not images from code locations)."""
    if not values:
        return ""
    low, high = min(values), max(values)
    span = (high - low) or 1.0
    return "".join(BARS[int((v - low) / span * (len(BARS) - 1))] for v in values)


def markdown_report(summary: pd.DataFrame) -> str:
    """A table narrow enough for the UI's metadata column (four short columns): the mean, max and mean rows
    stay in the stored summary, and the chart of duration and peak RSS per asset sits beside it."""
    lines = ["| asset | runs | p95 s | RSS MiB |", "|---|---:|---:|---:|"]
    for row in summary.itertuples(index=False):
        lines.append(f"| {row.asset} | {row.runs} | {row.duration_p95_s:g} | {row.peak_rss_max_mib:g} |")
    return "\n".join(lines)
