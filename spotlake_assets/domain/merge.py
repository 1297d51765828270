"""The one result every provider's merge returns (docs/data-contracts.md#merge-result).

The shared merged asset (`orchestration/provider.py`) reads only ``frame``, ``dropped`` and ``unjoined``, so a
provider's own counts (AWS: the unknown AZ ids; Azure: carried, regional and unpriced rows, join coverage)
travel in ``detail``, typed per provider, and never change what the shared asset reports.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar

import pandas as pd

DetailT = TypeVar("DetailT", covariant=True)


@dataclass(frozen=True)
class MergeResult(Generic[DetailT]):
    """A window's merged snapshot and what the merge left out.

    ``dropped``: input rows left out of the snapshot, by reason; every reason the merge can drop for is
    listed, zeros included, so a reason appearing in metadata is never news about the code. ``unjoined``:
    input rows that by design create no row (region-level attributes) and matched none, by input; a sudden
    rise means names stopped matching. Both are empty for a merge that keeps every input row.
    """

    frame: pd.DataFrame
    dropped: Mapping[str, int]
    unjoined: Mapping[str, int]
    detail: DetailT
