"""The daily report (markdown and a small bar plot) and the choice of launch-time pairs. matplotlib is
imported only when a plot is drawn (through `orchestration/plots`), never when the definitions load."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd


def markdown_table(frame: pd.DataFrame, columns: Sequence[str] | None = None) -> str:
    cols = list(columns or frame.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in frame[cols].itertuples(index=False):
        lines.append("| " + " | ".join(f"{v:.3g}" if isinstance(v, float) else str(v) for v in row) + " |")
    return "\n".join(lines)


def report_markdown(day: str, top: pd.DataFrame, history_rows: int, simulated: bool) -> str:
    head = f"# SpotLake single-account report, {day}{' (SIMULATED)' if simulated else ''}\n\n"
    if top.empty:
        return head + f"No changes in the history yet ({history_rows} rows read): nothing to rank.\n"
    body = markdown_table(top, ["InstanceType", "Score", "ChangesToday", "Changes"])
    return (
        head
        + f"Top {len(top)} instance types by decayed change score (SPS/IF changes over all regions and AZs; "
        f"{history_rows} history rows read).\n\n{body}\n"
    )


def top_k_png(top: pd.DataFrame, title: str) -> bytes:
    from matplotlib.figure import Figure

    from spotlake_assets.orchestration.plots import png_bytes

    figure = Figure(figsize=(6.4, 3.2), layout="constrained")
    axes = figure.add_subplot()
    ordered = top.iloc[::-1]
    axes.barh(ordered["InstanceType"].astype(str), ordered["Score"].astype(float), color="#2b7bb9")
    axes.set_xlabel("decayed change score")
    axes.set_title(title, fontsize=9)
    return png_bytes(figure)


def launch_pairs(selection: pd.DataFrame, merged: pd.DataFrame, k: int) -> list[tuple[str, str]]:
    """The top ``k`` (type, region) pairs: the selected types in score order, each in the region where its
    latest snapshot scores best (most likely to launch; ties by region name). Types not yet scored are
    skipped."""
    pairs: list[tuple[str, str]] = []
    if merged.empty or k <= 0:
        return pairs
    ranked = selection.sort_values(["Score", "InstanceType"], ascending=[False, True], kind="stable")
    scored = merged.assign(
        InstanceType=merged["InstanceType"].astype(str), Region=merged["Region"].astype(str)
    )
    by_region = scored.groupby(["InstanceType", "Region"], observed=True)["SPS"].mean().reset_index()
    for instance_type in ranked["InstanceType"].astype(str):
        mine = by_region.loc[by_region["InstanceType"] == instance_type]
        if mine.empty:
            continue
        best = mine.sort_values(["SPS", "Region"], ascending=[False, True], kind="stable").iloc[0]
        pairs.append((instance_type, str(best["Region"])))
        if len(pairs) >= k:
            break
    return pairs
