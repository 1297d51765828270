"""Plots as small PNG images in materialization metadata, which the Dagster UI renders.

A plot is a `dg.MetadataValue.md` holding one Markdown image with an inline ``data:image/png;base64`` URI:
the UI's Markdown renderer (1.13) allows the ``data`` protocol for image sources, and shows a Markdown value
longer than 1,000 characters behind a "[Show Markdown]" link that opens it rendered. Every image is kept
under `MAX_PNG_BYTES` (a lower resolution is tried before giving up), so the event log stays small.

matplotlib is imported inside the functions that draw (with the Agg backend): loading the definitions must
not pay for it, only a run that plots.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

import dagster as dg

# Run-time modules (pandas, numpy, cloud SDKs) are imported where used: loading the definitions skips them.
if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

MAX_PNG_BYTES = 100_000
# Small enough for the UI's dialog without scrolling; text stays readable at these sizes.
FIGURE_SIZE = (6.4, 3.2)
DPI_STEPS = (90, 72, 56, 40)
PLOT_PREFIX = "plot_"


class PlotTooLarge(ValueError):
    """A figure whose PNG stays over `MAX_PNG_BYTES` even at the lowest resolution."""


def _figure(width: float = FIGURE_SIZE[0], height: float = FIGURE_SIZE[1]) -> Figure:
    # The object-oriented API, never pyplot: no global figure registry, no GUI backend, thread-safe enough for
    # one figure per call.
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def png_bytes(figure: Figure) -> bytes:
    """The figure as PNG, at the highest resolution of `DPI_STEPS` that fits `MAX_PNG_BYTES`."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(figure)
    for dpi in DPI_STEPS:
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=dpi, metadata={"Software": None})
        data = buffer.getvalue()
        if len(data) < MAX_PNG_BYTES:
            return data
    raise PlotTooLarge(f"plot is {len(data)} bytes at {DPI_STEPS[-1]} dpi (limit {MAX_PNG_BYTES})")


def image_markdown(png: bytes, alt: str) -> str:
    return f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode('ascii')})"


def as_metadata(figure: Figure, alt: str) -> dg.MetadataValue:
    """The figure as a Markdown image the UI renders (alt text: what the plot shows, for screen readers)."""
    return dg.MetadataValue.md(image_markdown(png_bytes(figure), alt))


def png_of(value: dg.MetadataValue) -> bytes:
    """The PNG inside a plot's metadata value (tests and the browser check read it back)."""
    text = str(getattr(value, "value", value))
    return base64.b64decode(text.split("base64,", 1)[1].rstrip(")"))


def _draw(alt: str, draw: Callable[[Axes], None], height: float = FIGURE_SIZE[1]) -> dg.MetadataValue:
    figure = _figure(height=height)
    axes = figure.add_subplot()
    draw(axes)
    axes.grid(axis="y", alpha=0.3)
    return as_metadata(figure, alt)


def score_distribution(scores: pd.Series, title: str, low: int, high: int) -> dg.MetadataValue:
    """Bars of how many pools have each score from ``low`` to ``high``; unscored (-1) rows counted apart."""
    import pandas as pd

    values = pd.to_numeric(scores, errors="coerce")
    unscored = int((values == -1).sum())
    counts = values[values.between(low, high)].astype(int).value_counts().reindex(range(low, high + 1))
    counts = counts.fillna(0).astype(int)

    def draw(axes: Axes) -> None:
        axes.bar([str(s) for s in counts.index], counts.to_numpy(), color="#4c72b0")
        axes.set_xlabel("score")
        axes.set_ylabel("pools")
        note = f" ({unscored:,} unscored)" if unscored else ""
        axes.set_title(f"{title}: {int(counts.sum()):,} scored pools{note}", fontsize=10)

    return _draw(f"{title}: pools per score", draw)


def change_share(changed: int, removed: int, total: int, title: str) -> dg.MetadataValue:
    """One horizontal bar: the share of the window's pools unchanged, changed (or new) and ceased."""
    total = max(total, changed + removed, 1)
    parts = {
        "unchanged": max(total - changed - removed, 0),
        "new or changed": changed,
        "ceased": removed,
    }
    colours = {"unchanged": "#c7c7c7", "new or changed": "#dd8452", "ceased": "#c44e52"}

    def draw(axes: Axes) -> None:
        left = 0.0
        for label, count in parts.items():
            share = 100 * count / total
            axes.barh([0], [share], left=left, color=colours[label], label=f"{label} {share:.1f}%")
            left += share
        axes.set_xlim(0, 100)
        axes.set_yticks([])
        axes.set_xlabel("% of pools")
        axes.figure.legend(loc="outside lower center", ncol=3, fontsize=8, frameon=False)
        axes.set_title(f"{title}: {changed + removed:,} of {total:,} pools changed", fontsize=10)

    return _draw(f"{title}: share of pools changed", draw, height=2.2)


def lines_over_day(
    series: Mapping[str, pd.Series], title: str, ylabel: str, kind: str = "line"
) -> dg.MetadataValue:
    """One line (or bar group) per named series, indexed by time or hour label, over the day."""

    def draw(axes: Axes) -> None:
        import pandas as pd

        names = [n for n, s in series.items() if len(s)]
        if kind == "bar":
            frame = pd.DataFrame({n: series[n] for n in names}).fillna(0)
            width = 0.8 / max(len(names), 1)
            for i, name in enumerate(names):
                positions = [x + i * width for x in range(len(frame))]
                axes.bar(positions, frame[name].to_numpy(), width=width, label=name)
            axes.set_xticks([x + 0.4 - width / 2 for x in range(len(frame))], [str(i) for i in frame.index])
            axes.tick_params(axis="x", labelsize=7)
        else:
            for name in names:
                points = series[name]
                axes.plot(list(points.index), points.to_numpy(), marker=".", label=name)
            axes.tick_params(axis="x", labelsize=7, rotation=30)
        axes.set_ylabel(ylabel)
        axes.set_title(title, fontsize=10)
        if names:
            axes.legend(fontsize=8)
        else:
            axes.text(0.5, 0.5, "no runs", ha="center", va="center", transform=axes.transAxes)

    return _draw(title, draw)


def duration_and_rss(summary: pd.DataFrame, title: str) -> dg.MetadataValue:
    """Per asset: p95 and max duration (bars, left) and peak RSS (dots, right axis)."""
    import pandas as pd

    assets = [str(a) for a in summary.get("asset", pd.Series(dtype=object))]
    height = max(FIGURE_SIZE[1], 0.32 * len(assets) + 1.2)

    def draw(axes: Axes) -> None:
        if not assets:
            axes.text(0.5, 0.5, "no runs", ha="center", va="center", transform=axes.transAxes)
            axes.set_title(title, fontsize=10)
            return
        rows = list(range(len(assets)))
        axes.barh(rows, summary["duration_max_s"], color="#c7d6ec", label="max s")
        axes.barh(rows, summary["duration_p95_s"], color="#4c72b0", height=0.5, label="p95 s")
        axes.set_yticks(rows, assets, fontsize=8)
        axes.invert_yaxis()
        axes.set_xlabel("seconds per run")
        memory = axes.twiny()
        memory.plot(summary["peak_rss_max_mib"], rows, "o", color="#c44e52", label="peak RSS MiB")
        memory.set_xlim(left=0)
        memory.set_xlabel("peak RSS (MiB)", color="#c44e52")
        memory.tick_params(axis="x", colors="#c44e52")
        handles = axes.get_legend_handles_labels()[0] + memory.get_legend_handles_labels()[0]
        axes.figure.legend(handles=handles, loc="outside lower center", ncol=3, fontsize=8, frameon=False)
        axes.set_title(title, fontsize=10)

    return _draw(title, draw, height=height)


def plot_keys(metadata: Mapping[str, object]) -> Sequence[str]:
    """The metadata entries that are plots (their names start with `PLOT_PREFIX`)."""
    return sorted(k for k in metadata if k.startswith(PLOT_PREFIX))
