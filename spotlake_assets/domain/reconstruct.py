"""Point-in-time reconstruction from the history (`spotlake query snapshot --at`). Pure.

The state of a pool (a key) at time ``t`` is its last history row at or before ``t``; a `Ceased` row ends
its series, so a pool whose last row is ceased does not exist at ``t``. Every delta is complete (new and
changed rows plus ceased ones), so replaying the history reproduces each window's merged snapshot.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import pandas as pd

from spotlake_assets.domain.delta import CEASED_COLUMN

TIME_COLUMN = "Time"


def state_at(
    history: pd.DataFrame, at: datetime, key_columns: Sequence[str], time_column: str = TIME_COLUMN
) -> pd.DataFrame:
    """Each live pool's last row with ``time <= at``, sorted by key; ``time_column`` keeps when that row
    was written (when the pool last changed). The `Ceased` column is dropped: every row returned is live.
    """
    keys = list(key_columns)
    missing = [c for c in (*keys, time_column, CEASED_COLUMN) if c not in history.columns]
    if missing:
        raise ValueError(f"history lacks columns {missing}")
    stamp = pd.Timestamp(at)
    times = history[time_column]
    if isinstance(times.dtype, pd.DatetimeTZDtype) and stamp.tzinfo is None:
        stamp = stamp.tz_localize("UTC")
    upto = history.loc[(times <= stamp).to_numpy()]
    # A stable sort by time, then the last row per key: the newest state wins.
    ordered = upto.sort_values(time_column, kind="stable")
    last = ordered.drop_duplicates(keys, keep="last")
    live = last.loc[~last[CEASED_COLUMN].to_numpy(dtype=bool)]
    return live.drop(columns=[CEASED_COLUMN]).sort_values(keys, kind="stable").reset_index(drop=True)


def snapshot_at(
    history: pd.DataFrame, at: datetime, key_columns: Sequence[str], time_column: str = TIME_COLUMN
) -> pd.DataFrame:
    """The merged snapshot as it was published for the window starting at ``at``: `state_at` with every
    row's time set to ``at`` (a snapshot stamps all its rows with its window)."""
    state = state_at(history, at, key_columns, time_column)
    stamp = pd.Timestamp(at)
    dtype = state[time_column].dtype
    if isinstance(dtype, pd.DatetimeTZDtype):
        stamp = stamp.tz_convert(dtype.tz) if stamp.tzinfo is not None else stamp.tz_localize(dtype.tz)
    state[time_column] = pd.Series([stamp] * len(state), dtype=dtype, index=state.index)
    return state
