"""Which capacity a published score was measured at (docs/data-contracts.md#score-capacity). Pure.

A merged row publishes one score per pool (AWS ``SPS``, Azure ``Score``), but the collectors measure at a
capacity that cycles window by window: the published score is the single-node one, carried between the
capacity-1 windows, or this window's score for a pool that has no single-node score yet. The column beside
the score (AWS ``SPSCapacity``, Azure ``ScoreCount``) says which: the TargetCapacity / DesiredCount the score
was measured at, or -1 where there is no score. It is not a feature: it never makes a row changed by itself
(a carried score changes nothing), it travels with the row whenever the row is published.

Snapshots and history written before the column existed read with `LEGACY_CAPACITY` wherever the score is
a score or a ceased row's 0 (SpotLake and this pipeline then published the single-node score, except for a
pool first seen between two capacity-1 windows, which the old files cannot tell apart), and -1 elsewhere.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pandas as pd

from spotlake_assets.domain.columns import SCORE_CAPACITY_COLUMNS as SCORE_CAPACITY_COLUMNS

NO_SCORE = -1
# The fill of a frame written before the capacity column existed: the single-node score.
LEGACY_CAPACITY = 1

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
IndexArray = npt.NDArray[np.intp]


def legacy_capacity(scores: pd.Series) -> IntArray:
    """The documented fill for rows written before the capacity column existed: `LEGACY_CAPACITY` where
    ``scores`` holds a score or a ceased row's 0, -1 where it is -1 or null."""
    values = pd.to_numeric(scores, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    return np.where(values >= 0, LEGACY_CAPACITY, NO_SCORE).astype(np.int64)


def held_capacity(previous: pd.DataFrame, score_column: str) -> IntArray:
    """Per row of ``previous`` (a merged snapshot), the capacity its score was measured at: its capacity
    column, filled by `legacy_capacity` where the column is absent or null (a snapshot from before)."""
    column = SCORE_CAPACITY_COLUMNS[score_column]
    fill = legacy_capacity(previous[score_column])
    if column not in previous.columns:
        return fill
    stored = pd.to_numeric(previous[column], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    return np.where(np.isnan(stored), fill, stored).astype(np.int64)


def published_capacity(
    capacity: int,
    observed: BoolArray,
    carried: BoolArray,
    previous_capacity: IntArray,
    positions: IndexArray,
) -> IntArray:
    """The capacity column of a merged snapshot, row for row with its published score.

    ``observed``: the row has a score this window; ``carried``: the published score is the previous
    window's (its capacity travels with it); ``previous_capacity``: `held_capacity` of the previous
    snapshot, read at ``positions`` (-1: no previous row). Else this window's ``capacity`` where observed
    (1 in a capacity-1 window: the single-node score is taken), -1 where there is no score.
    """
    out = np.where(observed, np.int64(capacity), np.int64(NO_SCORE)).astype(np.int64)
    if carried.any():
        held = previous_capacity.take(np.maximum(positions, 0)) if len(previous_capacity) else out
        out = np.where(carried & (positions >= 0), held, out)
    return out


def with_score_capacity(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` (merged, delta or history rows) with the capacity column beside each score column it has,
    filled by `legacy_capacity` where absent or null (files written before the column existed, or a
    history read across that seam). Returns ``frame`` itself when nothing needs filling."""
    out = frame
    for score, column in SCORE_CAPACITY_COLUMNS.items():
        if score not in frame.columns:
            continue
        if column in frame.columns and not frame[column].isna().any():
            continue
        filled = held_capacity(frame, score)
        if out is frame:
            out = frame.copy(deep=False)
        if column in out.columns:
            out[column] = filled
        else:
            out.insert(list(out.columns).index(score) + 1, column, filled)
    return out
