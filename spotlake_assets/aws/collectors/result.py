"""What a regional collector hands back: the frame, the calls it spent, and every region it could not read."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd


@dataclass(frozen=True)
class RegionalCollection:
    frame: pd.DataFrame
    api_calls: int
    # region → reason, for regions that still failed after retries: an explicit gap, never silently missing.
    failed_regions: dict[str, str] = field(default_factory=dict)
