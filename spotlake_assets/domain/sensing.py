"""Pure decisions of the lake sensor: which new SPS objects become merge runs, and where the cursor moves.

A window merges as soon as its other inputs are in the lake. If they are not, the sensor waits for them —
but only until ``max_wait`` after the window started; then the window merges with explicit gaps, so one
late input never holds every later window back.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from spotlake_assets.domain.windows import window_key, window_start

_SPS_KEY = re.compile(r"^rawdata/[a-z]+/sps/(\d{4})/(\d{2})/(\d{2})/(\d{2})-(\d{2})_sps_\d+\.parquet$")


def window_of_sps_key(key: str) -> str | None:
    """The window partition key of a raw SPS object, or None for an object of another shape."""
    match = _SPS_KEY.match(key)
    if match is None:
        return None
    year, month, day, hour, minute = match.groups()
    return f"{year}-{month}-{day}-{hour}:{minute}"


@dataclass(frozen=True)
class MergeRequest:
    partition_key: str
    sps_key: str
    missing_inputs: tuple[str, ...] = ()

    @property
    def with_gaps(self) -> bool:
        return bool(self.missing_inputs)


@dataclass(frozen=True)
class SensorPlan:
    requests: tuple[MergeRequest, ...]
    cursor: str | None
    waiting: str | None = None


def plan_merges(
    new_keys: Sequence[str],
    cursor: str | None,
    missing_inputs: Callable[[str], list[str]],
    now: datetime,
    max_wait: timedelta,
    max_requests: int,
) -> SensorPlan:
    """Walk new SPS keys in order; stop at the first window still waiting for inputs, or at ``max_requests``.

    The cursor only moves past keys that produced a request (or are not SPS objects), so a waiting window
    is looked at again on the next tick.
    """
    requests: list[MergeRequest] = []
    seen: set[str] = set()
    for key in sorted(new_keys):
        if len(requests) >= max_requests:
            break
        partition = window_of_sps_key(key)
        if partition is None:
            cursor = key
            continue
        if partition in seen:
            cursor = key
            continue
        missing = tuple(missing_inputs(partition))
        if missing and now - window_start(partition) < max_wait:
            due = window_key(window_start(partition) + max_wait)
            return SensorPlan(
                tuple(requests), cursor, f"window {partition} waits for {', '.join(missing)} (until {due})"
            )
        requests.append(MergeRequest(partition, key, missing))
        seen.add(partition)
        cursor = key
    return SensorPlan(tuple(requests), cursor)
