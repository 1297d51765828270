"""Parquet in and out of the lake; a corrupt file is an error naming it."""

from __future__ import annotations

import pandas as pd
import pytest

from spotlake_assets.storage.errors import CorruptLakeFile
from spotlake_assets.storage.frames import read_frame, write_frame
from spotlake_assets.storage.lake import LocalLake


def test_round_trip_keeps_types(local_lake: LocalLake) -> None:
    frame = pd.DataFrame({"InstanceType": ["m5.large"], "SPS": [3], "SpotPrice": [0.0423]})
    write_frame(local_lake, "k.parquet", frame)
    back = read_frame(local_lake, "k.parquet", ("InstanceType", "SPS"))
    pd.testing.assert_frame_equal(back, frame)


@pytest.mark.parametrize("payload", [b"", b"not parquet at all", b"PAR1\x00\x00truncated"])
def test_corrupt_file_names_the_key(local_lake: LocalLake, payload: bytes) -> None:
    local_lake.write_bytes("rawdata/aws/sps/bad.parquet", payload)
    with pytest.raises(CorruptLakeFile, match=r"rawdata/aws/sps/bad\.parquet"):
        read_frame(local_lake, "rawdata/aws/sps/bad.parquet")


def test_missing_columns_are_named(local_lake: LocalLake) -> None:
    write_frame(local_lake, "k.parquet", pd.DataFrame({"InstanceType": ["m5.large"]}))
    with pytest.raises(CorruptLakeFile, match="SPS"):
        read_frame(local_lake, "k.parquet", ("InstanceType", "SPS"))


def test_a_damaged_checkpoint_is_moved_aside_not_fatal(local_lake: LocalLake) -> None:
    import pandas as pd

    from spotlake_assets.storage.frames import read_checkpoint, write_frame

    key = "state/aws/sps_checkpoints/2026/01/01/00-00/g.parquet"
    assert read_checkpoint(local_lake, key).frame is None
    local_lake.write_bytes(key, b"")
    damaged = read_checkpoint(local_lake, key, ("SPS",))
    assert damaged.frame is None and "quarantine/" in damaged.moved_aside
    assert not local_lake.exists(key)
    write_frame(local_lake, key, pd.DataFrame({"SPS": [3]}), create_only=True)
    assert read_checkpoint(local_lake, key, ("SPS",)).frame is not None
    assert read_checkpoint(local_lake, key, ("Missing",)).frame is None
