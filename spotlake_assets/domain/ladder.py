"""T2/T3 history across target capacities (docs/data-contracts.md#t2t3-ladder), shared by AWS and Azure.

One SPS query per window covers a single target capacity ``c`` (cycling 1, 5, 10, …, 50). The T3 (and T2)
score of a pool is the largest capacity recently seen to succeed, carried from window to window:

==========================  ======================================================
this window                 new score (``P`` = previous score, 0 if no previous row)
==========================  ======================================================
not observed (no score)     ``P``
success at ``c``            ``max(P, c)``
failure at ``c``            ``min(P, step_down(c))`` (one rung below ``c``: 50→45→…→10→5→1→0)
==========================  ======================================================

Capacity 1 follows the same rule (a failure there gives 0): the history is never reset, so once a cycle has
been seen a pool's score only moves when its capacity boundary really moves, and the delta stays small.
The single-node reading matters for the published SPS column instead (see `aws.merge`).

Worked example — a pool whose SPS is ≥ 3 up to capacity 30 and below 3 above it, over a cycle and a half::

    capacity  1  5  10  15  20  25  30  35  40  45  50   1   5  …  30  35
    success   y  y   y   y   y   y   y   n   n   n   n   y   y  …   y   n
    T3        1  5  10  15  20  25  30  30  30  30  30  30  30  …  30  30

A failure at 35 keeps 30 (``min(30, 30)``); had the pool carried 50 from an earlier cycle and failed at 35,
it would drop to 30, and a failure at 5 would drop it to 1.

The previous snapshot is matched on ``join_columns`` only (AWS: InstanceType, AZ; Azure: the row key
InstanceTier, InstanceType, Region, AvailabilityZone) — never on the capacity, or no history would ever match.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pandas as pd

from spotlake_assets.domain.windows import CAPACITIES, step_down

IntArray = npt.NDArray[np.int64]
IndexArray = npt.NDArray[np.intp]


def _check_capacity(capacity: int) -> None:
    if capacity not in CAPACITIES:
        raise ValueError(f"capacity {capacity} is not one of {CAPACITIES}")


def ladder_step(
    previous: npt.ArrayLike, capacity: int, success: npt.ArrayLike, observed: npt.ArrayLike | None = None
) -> IntArray:
    """New scores from previous scores ``previous`` and this window's ``success`` at ``capacity``.

    ``observed`` (default: all True) marks rows that have a reading this window; the others keep
    ``previous``. Arrays are positional and equally long. See the module docstring for the rule.
    """
    _check_capacity(capacity)
    prior = np.asarray(previous, dtype=np.int64)
    ok = np.asarray(success, dtype=bool)
    if ok.shape != prior.shape:
        raise ValueError(f"success has shape {ok.shape}, previous scores {prior.shape}")
    scores = np.where(ok, np.maximum(prior, capacity), np.minimum(prior, step_down(capacity)))
    if observed is not None:
        seen = np.asarray(observed, dtype=bool)
        if seen.shape != prior.shape:
            raise ValueError(f"observed has shape {seen.shape}, previous scores {prior.shape}")
        scores = np.where(seen, scores, prior)
    return scores.astype(np.int64, copy=False)


def previous_scores(previous: pd.DataFrame | None, column: str, positions: IndexArray) -> IntArray:
    """``previous[column]`` gathered at ``positions`` (rows of ``previous``, -1 for none); 0 for none."""
    if previous is None or len(previous) == 0:
        return np.zeros(len(positions), dtype=np.int64)
    values = previous[column].to_numpy(dtype=np.float64, na_value=0.0).astype(np.int64)
    # take() then where() beats boolean-mask indexing; position -1 reads the last value, then masked out.
    return np.where(positions >= 0, values.take(positions), 0)
