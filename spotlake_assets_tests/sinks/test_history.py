"""Tiers 1-2: the Parquet history (window writes, daily compaction, manifest) on a local lake and on moto S3,
including races between concurrent writers."""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from spotlake_assets.aws.constants import KEY_COLUMNS
from spotlake_assets.sinks.history import (
    EmptyDay,
    HistoryConflict,
    ManifestConflict,
    compact_day,
    history_sources,
    history_table,
    load_manifest,
    manifest_key,
    publish_day,
    read_history,
    read_manifest_for_update,
    write_window_history,
)
from spotlake_assets.storage import keys
from spotlake_assets.storage.errors import PreconditionFailed
from spotlake_assets.storage.frames import frame_to_parquet
from spotlake_assets.storage.lake import LakeResource, LocalLake, S3Lake, StoredObject

DAY = "2026-03-01"


def window_delta(minute: int, pools: list[tuple[str, str, str]], sps: int = 3) -> pd.DataFrame:
    n = len(pools)
    stamp = pd.Timestamp(datetime(2026, 3, 1, minute // 60, minute % 60, tzinfo=UTC))
    return pd.DataFrame(
        {
            "InstanceType": pd.Categorical([p[0] for p in pools]),
            "Region": pd.Categorical([p[1] for p in pools]),
            "AZ": pd.Categorical([p[2] for p in pools]),
            "SPS": np.full(n, sps, dtype=np.int64),
            "SpotPrice": np.full(n, 0.01 * (minute + 1)),
            "Time": pd.Series([stamp] * n, dtype="datetime64[ns, UTC]"),
            "Ceased": np.zeros(n, dtype=bool),
        }
    )


POOLS = [
    ("m5.large", "us-east-1", "use1-az2"),
    ("c5.xlarge", "eu-west-1", "euw1-az1"),
    ("m5.large", "us-east-1", "use1-az1"),
]


def wkey(minute: int) -> str:
    return f"{DAY}-{minute // 60:02d}:{minute % 60:02d}"


def write_windows(lake: LakeResource, minutes: list[int]) -> None:
    for minute in minutes:
        write_window_history(
            lake, "aws", wkey(minute), window_delta(minute, POOLS, sps=minute // 10 + 1), KEY_COLUMNS
        )


# --- one schema, sorted -------------------------------------------------------------------------------------


def test_history_tables_have_one_normalised_schema_sorted_by_key_then_time() -> None:
    frame = pd.concat([window_delta(10, POOLS), window_delta(0, POOLS)], ignore_index=True)
    table = history_table(frame, KEY_COLUMNS)
    assert table.schema.field("InstanceType").type == pa.string()
    assert table.schema.field("Time").type == pa.timestamp("ms", tz="UTC")
    assert table.schema.metadata is None
    rows = table.select(["InstanceType", "AZ", "Time"]).to_pylist()
    assert [(r["InstanceType"], r["AZ"], r["Time"].minute) for r in rows] == [
        ("c5.xlarge", "euw1-az1", 0),
        ("c5.xlarge", "euw1-az1", 10),
        ("m5.large", "use1-az1", 0),
        ("m5.large", "use1-az1", 10),
        ("m5.large", "use1-az2", 0),
        ("m5.large", "use1-az2", 10),
    ]


# --- window writes ------------------------------------------------------------------------------------------


def test_a_window_is_written_once_and_reruns_are_no_ops(local_lake: LocalLake) -> None:
    frame = window_delta(0, POOLS)
    first = write_window_history(local_lake, "aws", wkey(0), frame, KEY_COLUMNS)
    stored = local_lake.read_bytes(first.key)
    again = write_window_history(local_lake, "aws", wkey(0), frame, KEY_COLUMNS)
    assert (first.status, again.status, first.key) == (
        "written",
        "already written (identical)",
        "history/aws/2026/03/01/00-00.parquet",
    )
    assert local_lake.read_bytes(first.key) == stored
    assert pq.read_metadata(io.BytesIO(stored)).row_group(0).column(0).compression == "ZSTD"


def test_a_legacy_window_file_with_the_same_rows_counts_as_identical(local_lake: LocalLake) -> None:
    # Written the way the first version of the sink did (categoricals, ns times, pandas metadata).
    frame = window_delta(0, POOLS).sort_values(list(KEY_COLUMNS), ignore_index=True)
    local_lake.write_bytes(keys.history_key("aws", wkey(0)), frame_to_parquet(frame))
    assert (
        write_window_history(local_lake, "aws", wkey(0), frame, KEY_COLUMNS).status
        == "already written (identical)"
    )


def test_other_rows_for_a_written_window_fail_loudly(local_lake: LocalLake) -> None:
    write_window_history(local_lake, "aws", wkey(0), window_delta(0, POOLS), KEY_COLUMNS)
    before = local_lake.read_bytes(keys.history_key("aws", wkey(0)))
    with pytest.raises(HistoryConflict, match="already holds a different delta for aws 2026-03-01-00:00"):
        write_window_history(local_lake, "aws", wkey(0), window_delta(0, POOLS, sps=9), KEY_COLUMNS)
    assert local_lake.read_bytes(keys.history_key("aws", wkey(0))) == before


# --- compaction and manifest --------------------------------------------------------------------------------


def test_compaction_merges_a_day_and_publishes_it(local_lake: LocalLake) -> None:
    write_windows(local_lake, [0, 10, 20])
    done = compact_day(local_lake, "aws", DAY, KEY_COLUMNS)
    assert (done.file_status, done.manifest_status, done.manifest_attempts) == ("written", "published", 1)
    assert done.entry.windows == ("00-00", "00-10", "00-20") and done.entry.rows == 9
    assert done.entry.key.startswith("history_daily/aws/2026/03/01/2026-03-01-")
    table = pq.read_table(io.BytesIO(local_lake.read_bytes(done.entry.key)))
    assert table.equals(history_table(table.to_pandas(), KEY_COLUMNS))
    manifest = json.loads(local_lake.read_bytes(manifest_key("aws")))
    assert (
        manifest["days"][DAY]["key"] == done.entry.key and manifest["format"] == "spotlake-history-manifest/1"
    )
    # A rerun changes nothing.
    before = {k: local_lake.read_bytes(k) for k in local_lake.list_keys("history_daily/")}
    again = compact_day(local_lake, "aws", DAY, KEY_COLUMNS)
    assert (again.file_status, again.manifest_status) == ("already written (identical)", "already published")
    assert {k: local_lake.read_bytes(k) for k in local_lake.list_keys("history_daily/")} == before


class CountingLake(LocalLake):
    """A lake that counts reads per key (each is a GET on S3)."""

    def model_post_init(self, context: object) -> None:
        super().model_post_init(context)
        self._reads: dict[str, int] = {}

    def read_bytes(self, key: str) -> bytes:
        self._reads[key] = self._reads.get(key, 0) + 1
        return super().read_bytes(key)


def test_compaction_reads_each_window_file_once(tmp_path: Path) -> None:
    lake = CountingLake(root=str(tmp_path))
    write_windows(lake, [0, 10, 20])
    lake._reads.clear()
    done = compact_day(lake, "aws", DAY, KEY_COLUMNS)
    windows = {k: n for k, n in lake._reads.items() if k.startswith("history/")}
    assert windows == {keys.history_key("aws", wkey(m)): 1 for m in (0, 10, 20)}
    assert done.input_bytes == sum(len(lake.read_bytes(k)) for k in windows)


def test_a_late_window_is_read_until_a_recompaction_publishes_a_new_file(local_lake: LocalLake) -> None:
    write_windows(local_lake, [0, 10])
    first = compact_day(local_lake, "aws", DAY, KEY_COLUMNS)
    write_windows(local_lake, [20])
    day = datetime(2026, 3, 1).date()
    sources = history_sources(local_lake, "aws", day, day)
    assert sources.describe() == "1 compacted days + 1 window files"
    assert sources.keys == (first.entry.key, "history/aws/2026/03/01/00-20.parquet")
    second = compact_day(local_lake, "aws", DAY, KEY_COLUMNS)
    assert second.entry.key != first.entry.key and second.manifest_status == "published"
    assert local_lake.exists(first.entry.key)  # readers of the previous manifest can still finish
    assert history_sources(local_lake, "aws", day, day).keys == (second.entry.key,)


def test_compaction_refuses_an_empty_day_and_lost_windows(local_lake: LocalLake) -> None:
    with pytest.raises(EmptyDay, match="no aws history windows for 2026-03-01"):
        compact_day(local_lake, "aws", DAY, KEY_COLUMNS)
    write_windows(local_lake, [0, 10])
    compact_day(local_lake, "aws", DAY, KEY_COLUMNS)
    (local_lake._path(keys.history_key("aws", wkey(10)))).unlink()
    with pytest.raises(HistoryConflict, match=r"windows \['00-10'\] whose history files are gone"):
        compact_day(local_lake, "aws", DAY, KEY_COLUMNS)


class RacingLake(LocalLake):
    """A lake where another writer republishes the manifest right before each of our writes to it."""

    def write_bytes(
        self, key: str, data: bytes, *, create_only: bool = False, if_match: str | None = None
    ) -> StoredObject:
        if key == manifest_key("aws"):
            document = json.loads(self.read_bytes(key))
            document["days"][f"2026-02-{len(document['days']):02d}"] = {
                "key": "x",
                "rows": 1,
                "sha256": "0",
                "windows": [],
            }
            super().write_bytes(key, json.dumps(document).encode())
        return super().write_bytes(key, data, create_only=create_only, if_match=if_match)


def test_a_manifest_that_keeps_changing_fails_after_bounded_attempts(tmp_path: Path) -> None:
    plain = LocalLake(root=str(tmp_path))
    write_windows(plain, [0])
    compact_day(plain, "aws", DAY, KEY_COLUMNS)
    write_windows(plain, [10])
    racing = RacingLake(root=str(tmp_path))
    with pytest.raises(ManifestConflict, match="another writer won; nothing was overwritten"):
        compact_day(racing, "aws", DAY, KEY_COLUMNS, manifest_attempts=3)


def test_reads_go_through_the_manifest_and_filter_the_range(local_lake: LocalLake) -> None:
    write_windows(local_lake, [0, 10, 20])
    compact_day(local_lake, "aws", DAY, KEY_COLUMNS)
    table = read_history(
        local_lake, "aws", datetime(2026, 3, 1, 0, 5, tzinfo=UTC), datetime(2026, 3, 1, 0, 20, tzinfo=UTC)
    )
    assert table is not None and table.num_rows == 6
    assert (
        read_history(local_lake, "aws", datetime(2026, 3, 2, tzinfo=UTC), datetime(2026, 3, 2, 1, tzinfo=UTC))
        is None
    )


# --- races on S3 (moto honours IfNoneMatch / IfMatch) -------------------------------------------------------
# The races run on `s3_server_lake`: a moto server applying one request at a time, as S3 does. In-process
# moto checks a condition and then writes without a lock, so under `pytest -n 2` both racers could win.


def race(workers: list[Callable[[], str]]) -> list[str]:
    """Run ``workers`` at the same moment; each returns a status or the failure's message."""
    barrier = threading.Barrier(len(workers))
    out: list[str] = [""] * len(workers)

    def run(i: int) -> None:
        barrier.wait()
        try:
            out[i] = workers[i]()
        except (HistoryConflict, ManifestConflict) as exc:
            out[i] = f"{type(exc).__name__}: {exc}"

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(workers))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def test_a_concurrent_second_writer_of_a_window_loses_cleanly(s3_server_lake: S3Lake) -> None:
    ours, theirs = window_delta(0, POOLS), window_delta(0, POOLS, sps=7)
    results = race(
        [
            lambda: write_window_history(s3_server_lake, "aws", wkey(0), ours, KEY_COLUMNS).status,
            lambda: write_window_history(s3_server_lake, "aws", wkey(0), theirs, KEY_COLUMNS).status,
        ]
    )
    assert sorted(r.split(":")[0] for r in results) == ["HistoryConflict", "written"]
    loser = next(r for r in results if r.startswith("HistoryConflict"))
    assert "s3://spotlake-prod/history/aws/2026/03/01/00-00.parquet already holds a different delta" in loser
    assert "another run wrote this window first" in loser
    # With the same rows, the second writer's rerun is a no-op.
    results = race(
        [lambda: write_window_history(s3_server_lake, "aws", wkey(10), ours, KEY_COLUMNS).status] * 2
    )
    assert sorted(results) == ["already written (identical)", "written"]


def test_a_concurrent_second_writer_of_the_manifest_loses_cleanly(s3_server_lake: S3Lake) -> None:
    write_windows(s3_server_lake, [0])
    compact_day(s3_server_lake, "aws", DAY, KEY_COLUMNS)
    base = read_manifest_for_update(s3_server_lake, "aws")
    entry = base.days[DAY]
    # Both writers read the same manifest, then publish different entries at the same moment.
    results = race(
        [
            lambda: publish_day(s3_server_lake, base, replace(entry, day="2026-03-02")),
            lambda: publish_day(s3_server_lake, base, replace(entry, day="2026-03-03")),
        ]
    )
    assert sorted(r.split(":")[0] for r in results) == ["ManifestConflict", "published"]
    loser = next(r for r in results if r.startswith("ManifestConflict"))
    assert "s3://spotlake-prod/history_daily/aws/manifest.json changed while aws 2026-03-0" in loser
    assert "nothing was overwritten" in loser
    published = load_manifest(s3_server_lake, "aws")
    assert DAY in published.days and len(published.days) == 2


def test_concurrent_compactions_of_one_day_publish_it_once(s3_server_lake: S3Lake) -> None:
    write_windows(s3_server_lake, [0, 10, 20])
    results = race([lambda: compact_day(s3_server_lake, "aws", DAY, KEY_COLUMNS).manifest_status] * 3)
    assert results.count("published") == 1 and results.count("already published") == 2
    assert list(load_manifest(s3_server_lake, "aws").days) == [DAY]
    assert len(s3_server_lake.list_keys("history_daily/aws/2026/")) == 1


def test_a_stale_manifest_create_is_refused(s3_lake: S3Lake) -> None:
    write_windows(s3_lake, [0])
    stale = read_manifest_for_update(s3_lake, "aws")  # no manifest yet
    compact_day(s3_lake, "aws", DAY, KEY_COLUMNS)
    entry = load_manifest(s3_lake, "aws").days[DAY]
    with pytest.raises(ManifestConflict, match="expected no manifest"):
        publish_day(s3_lake, stale, replace(entry, day="2026-03-04"))
    with pytest.raises(PreconditionFailed):
        s3_lake.write_bytes(manifest_key("aws"), b"{}", create_only=True)
