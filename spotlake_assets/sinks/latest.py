"""`latest_data/latest_<provider>.json`: the newest merged snapshot in SpotLake's record layout.

Consumers (SpotLake's web page among them) read it as a JSON array of records with SpotLake's column names
and ``Time`` as ``YYYY-MM-DD HH:MM:SS``. It is replaced by compare-and-swap on its ETag and never by an older
window, so a backfill or a late retry cannot roll it back.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime

import pandas as pd

from spotlake_assets.storage.errors import PreconditionFailed
from spotlake_assets.storage.keys import latest_key
from spotlake_assets.storage.lake import LakeResource
from spotlake_assets.storage.state import Current, Swap, update

log = logging.getLogger(__name__)

LATEST_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"


class LatestConflict(RuntimeError):
    """The latest object changed while this window was being published."""


def latest_records_json(frame: pd.DataFrame) -> bytes:
    out = frame.copy()
    out["Time"] = pd.to_datetime(out["Time"], utc=True).dt.strftime(LATEST_TIME_FORMAT)
    return json.dumps(out.to_dict(orient="records"), separators=(",", ":")).encode()


def latest_time(data: bytes) -> pd.Timestamp | None:
    """The window a latest object describes; None for an empty snapshot. ValueError when unreadable."""
    records = json.loads(data)
    if not isinstance(records, list):
        raise ValueError("not a JSON array of records")
    if not records:
        return None
    return pd.Timestamp(records[0]["Time"], tz="UTC")


@dataclass(frozen=True)
class LatestWrite:
    key: str
    status: str


def publish_latest(
    lake: LakeResource, provider: str, window: datetime, snapshot: pd.DataFrame, label: str
) -> LatestWrite:
    """Replace the latest object with ``snapshot`` (the window starting at ``window``) unless it already
    holds a newer window. An unreadable object is replaced, with an error logged: it is derived data and
    the snapshot is complete. Another writer that changed it meanwhile makes this one read it again and
    decide again (`spotlake_assets.storage.state`); `LatestConflict` when that keeps happening."""
    key = latest_key(provider)
    this_window = pd.Timestamp(window)
    data = latest_records_json(snapshot)

    def change(current: Current[bytes]) -> Swap[str]:
        stored = current.value
        if stored is None:
            return Swap(data, "replaced")
        status = "replaced"
        try:
            held = latest_time(stored)
        except (ValueError, KeyError, TypeError) as exc:
            log.error("%s is unreadable (%s); replacing it with %s", lake.location(key), exc, label)
            held, status = None, "replaced an unreadable object"
        if held is not None and held > this_window:
            return Swap(None, f"kept newer window {held.isoformat()}")
        if stored == data:
            return Swap(None, "already current (identical)")
        return Swap(data, status)

    try:
        done = update(lake, key, lambda stored, _location: stored, change)
    except PreconditionFailed as exc:
        raise LatestConflict(
            f"{lake.location(key)} kept changing while {label} was being published; retry the run to "
            "re-evaluate which window is newest"
        ) from exc
    return LatestWrite(key, done.result)
