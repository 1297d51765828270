"""The change counts the scores are built from: the open history of the main pipeline (`history/aws/`, which
is also where SpotLake's imported dataset lands) and of this mode (`history/aws_single/`), read through the
history reader the query command uses (compacted days through the manifest, then window files)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import pandas as pd

from spotlake_assets.aws.constants import KEY_COLUMNS
from spotlake_assets.aws_single.constants import MAIN_PROVIDER, PREFIX
from spotlake_assets.domain.selection import changes_per_day
from spotlake_assets.sinks.history import read_history
from spotlake_assets.storage.lake import LakeResource

SOURCES = (MAIN_PROVIDER, PREFIX)


def read_changes(lake: LakeResource, as_of: date, lookback_days: int) -> tuple[pd.DataFrame, int]:
    """Changes per (day, type) over the ``lookback_days`` days ending with ``as_of`` (inclusive), and the
    number of history rows read."""
    start = datetime.combine(as_of - timedelta(days=max(lookback_days, 1) - 1), time.min, UTC)
    end = datetime.combine(as_of, time.max, UTC)
    frames: list[pd.DataFrame] = []
    for provider in SOURCES:
        table = read_history(lake, provider, start, end)
        if table is not None and table.num_rows:
            frames.append(table.select([*KEY_COLUMNS, "Time"]).to_pandas())
    if not frames:
        return changes_per_day(pd.DataFrame(columns=[*KEY_COLUMNS, "Time"])), 0
    history = pd.concat(frames, ignore_index=True)
    return changes_per_day(history, KEY_COLUMNS), len(history)
