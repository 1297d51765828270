"""Plots in materialization metadata: small PNGs the UI renders as Markdown images, drawn from the figures
the assets report; `ops/collector_stats` on an event log seeded with one day of both providers."""

from __future__ import annotations

import base64
import subprocess
import sys
from pathlib import Path
from typing import Any

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from spotlake_assets.domain.stats import markdown_report, summarise
from spotlake_assets.orchestration import plots
from spotlake_assets.orchestration.monitoring import (
    MONITORED,
    collector_stats,
    day_partitions,
    per_hour,
)
from spotlake_assets.storage.lake import LocalLake

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
DAY = "2026-03-01"


def assert_small_png(value: Any) -> bytes:
    text = str(getattr(value, "value", value))
    assert text.startswith("![") and "](data:image/png;base64," in text and text.endswith(")")
    png = plots.png_of(value)
    assert png.startswith(PNG_SIGNATURE)
    assert len(png) < plots.MAX_PNG_BYTES
    # What the event log stores is the base64 text: it stays well under the UI's comfort too.
    assert len(text) < 4 * plots.MAX_PNG_BYTES / 3 + 200
    return png


def test_score_distribution_is_a_small_png() -> None:
    rng = np.random.default_rng(7)
    scores = pd.Series(np.concatenate([rng.integers(1, 11, 80_000), -np.ones(500, dtype=int)]))
    assert_small_png(plots.score_distribution(scores, "aws/merged 2026-03-01-00:10", 1, 10))


def test_change_share_and_day_charts_are_small_pngs() -> None:
    assert_small_png(plots.change_share(5_000, 300, 60_000, "aws/delta 2026-03-01-00:10"))
    assert_small_png(plots.change_share(0, 0, 0, "empty"))
    hours = pd.Series(np.arange(24.0), index=[f"{h:02d}" for h in range(24)])
    assert_small_png(plots.lines_over_day({"aws": hours, "azure": hours * 3}, "t", "rows", kind="bar"))
    assert_small_png(plots.lines_over_day({"aws": pd.Series(dtype="float64")}, "none", "rows"))
    summary = summarise([])
    assert_small_png(plots.duration_and_rss(summary, "no runs"))


def test_a_plot_that_cannot_fit_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(plots, "MAX_PNG_BYTES", 100)
    with pytest.raises(plots.PlotTooLarge):
        plots.change_share(1, 1, 10, "too big")


def test_matplotlib_is_not_imported_by_the_definitions() -> None:
    # Loading the code location must not pay for matplotlib: only a run that draws imports it.
    code = (
        "import sys, spotlake_assets.definitions as d\n"
        "d.build_definitions()\n"
        "print('matplotlib' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "False"


def _seed_day(instance: dg.DagsterInstance) -> None:
    """A day of both providers as their assets report it (the figures `collector_stats` reads)."""
    for key in MONITORED:
        provider, name = key.path
        for i, partition in enumerate(day_partitions(pd.Timestamp(DAY, tz="UTC").to_pydatetime(), key)[:18]):
            metadata: dict[str, Any] = {
                "duration_s": 0.5 + i / 10,
                "peak_rss_mib": 200.0 + i,
                "rows": 1000,
                "api_calls": 10 if name in ("sps", "price", "spot_price") else 0,
            }
            if name == "delta":
                metadata |= {"changed_rows": 100 + i, "removed_rows": i}
            if name == "sps" and provider == "aws":
                metadata |= {"credentials_used": 20 + i}
            if name == "sps" and provider == "azure":
                metadata |= {"budget_used": 6 * i, "budget_calls_left": 500 - 6 * i, "budget_endpoints": 40}
            instance.report_runless_asset_event(
                dg.AssetMaterialization(asset_key=key, partition=partition, metadata=metadata)
            )


def test_collector_stats_draws_the_day_and_keeps_its_table_narrow(tmp_path: Path) -> None:
    instance = dg.DagsterInstance.ephemeral()
    _seed_day(instance)
    lake = LocalLake(root=str(tmp_path / "lake"))

    result = dg.materialize([collector_stats], partition_key=DAY, resources={"lake": lake}, instance=instance)

    (materialization,) = result.asset_materializations_for_node("ops__collector_stats")
    metadata = materialization.metadata
    # Both providers' assets, each by the partitions of the day: 3 daily assets x 1 + 10 window assets x 18.
    assert metadata["runs"].value == 3 + 10 * 18
    assert metadata["windows"].value == 18
    report = str(metadata["report"].value)
    # Narrow enough for the UI's metadata column: four columns, short lines, rendered inline (< 1,000 chars).
    assert report.splitlines()[0] == "| asset | runs | p95 s | RSS MiB |"
    assert len(report) < 1000 and max(len(line) for line in report.splitlines()) <= 60
    assert "azure/sps" in report and "aws/ondemand_price" in report
    drawn = plots.plot_keys(metadata)
    assert drawn == [
        "plot_api_calls_per_hour",
        "plot_azure_budget",
        "plot_changes_per_hour",
        "plot_credentials",
        "plot_duration_rss",
    ]
    for name in drawn:
        assert_small_png(metadata[name])


def test_per_hour_sums_windows() -> None:
    index = pd.date_range(f"{DAY} 00:00", periods=9, freq="10min", tz="UTC")
    hours = per_hour(pd.Series(np.ones(9), index=index))
    assert hours.to_dict() == {"00": 6.0, "01": 3.0}


def test_markdown_report_columns() -> None:
    summary = pd.DataFrame(
        {
            "asset": ["aws/sps"],
            "runs": [3],
            "duration_mean_s": [1.0],
            "duration_p95_s": [2.5],
            "duration_max_s": [3.0],
            "peak_rss_max_mib": [512.0],
            "rows_mean": [10.0],
        }
    )
    assert markdown_report(summary).splitlines()[-1] == "| aws/sps | 3 | 2.5 | 512 |"


def test_png_of_reads_back_the_image() -> None:
    png = PNG_SIGNATURE + b"rest"
    value = dg.MetadataValue.md(plots.image_markdown(png, "alt"))
    assert plots.png_of(value) == png and base64.b64encode(png).decode() in str(value.value)
