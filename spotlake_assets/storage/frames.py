"""DataFrames in and out of the lake as Parquet (zstd). Never pickle: the lake crosses process and bucket
boundaries, and Parquet keeps the schema.

What a frame must hold is its `FrameType` (`storage.frame_types`, declared per provider in ``frames.py``):
a read checks it (a frame that breaks it is a `CorruptLakeFile`, so a damaged checkpoint is moved aside like
an unreadable one) and a write checks it before any byte is stored. A plain tuple of column names is still
accepted for the few frames without a declared type."""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from spotlake_assets.storage.errors import CorruptLakeFile, LakeKeyNotFound
from spotlake_assets.storage.frame_types import FrameSchemaError, FrameType
from spotlake_assets.storage.lake import LakeResource, StoredObject

# Run-time modules (pandas, numpy, cloud SDKs) are imported where used: loading the definitions skips them.
if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)


def frame_to_parquet(frame: pd.DataFrame) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    buffer = io.BytesIO()
    table = pa.Table.from_pandas(frame, preserve_index=False)
    pq.write_table(table, buffer, compression="zstd")
    return buffer.getvalue()


# What a read requires: a declared frame type, or (frames without one) the names of required columns.
Required = FrameType | tuple[str, ...]


def parquet_to_frame(data: bytes, location: str, required: Required = ()) -> pd.DataFrame:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        frame: pd.DataFrame = pq.read_table(io.BytesIO(data)).to_pandas()
    except (pa.ArrowException, OSError) as exc:
        raise CorruptLakeFile(location, f"not a readable Parquet file ({exc})") from exc
    if isinstance(required, FrameType):
        try:
            return required.conform(frame)
        except FrameSchemaError as exc:
            raise CorruptLakeFile(location, str(exc)) from exc
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise CorruptLakeFile(location, f"missing columns {missing}")
    return frame


def write_frame(
    lake: LakeResource,
    key: str,
    frame: pd.DataFrame,
    *,
    create_only: bool = False,
    frame_type: FrameType | None = None,
) -> StoredObject:
    """Store ``frame`` at ``key``; with ``frame_type``, only a frame that satisfies it (`FrameSchemaError`
    otherwise, before anything is written)."""
    if frame_type is not None:
        frame_type.validate(frame, lake.location(key))
    return lake.write_bytes(key, frame_to_parquet(frame), create_only=create_only)


def read_frame(lake: LakeResource, key: str, required: Required = ()) -> pd.DataFrame:
    return parquet_to_frame(lake.read_bytes(key), lake.location(key), required)


@dataclass(frozen=True)
class Checkpoint:
    """A state frame read back for a resume: the frame, or None (absent, or damaged and moved aside)."""

    frame: pd.DataFrame | None
    # Where a damaged checkpoint was moved, with why; empty when it was fine or absent.
    moved_aside: str = ""


def read_checkpoint(lake: LakeResource, key: str, required: Required = ()) -> Checkpoint:
    """A checkpoint written by an earlier attempt. One that is empty, unreadable or missing columns (a kill
    mid-write on a filesystem without atomic rename, a bad manual edit) is moved aside and reported instead
    of failing every rerun: its work is simply done again."""
    try:
        data = lake.read_bytes(key)
    except LakeKeyNotFound:
        return Checkpoint(None)
    try:
        return Checkpoint(parquet_to_frame(data, lake.location(key), required))
    except CorruptLakeFile as exc:
        moved = lake.move_aside(key, str(exc))
        log.warning("checkpoint %s is damaged (%s); moved aside to %s, collecting it again", key, exc, moved)
        return Checkpoint(None, f"{lake.location(key)} → {moved}: {exc}")
