"""The month import on a local lake (`spotlake_assets.legacy.importer`): what it writes, what it records,
bad input, a collected window, and resuming after kills."""

from __future__ import annotations

import gzip
import io
import json
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from spotlake_assets.domain.legacy import normalise_snapshot
from spotlake_assets.domain.reconstruct import snapshot_at
from spotlake_assets.legacy.importer import LegacyImportError, checkpoint_key, month_record_key
from spotlake_assets.legacy.layouts import AWS_LAYOUT
from spotlake_assets.legacy.parsing import parse_snapshot
from spotlake_assets.legacy.synthetic import SyntheticMonth
from spotlake_assets.sinks.history import compact_day, history_table, read_history, table_bytes
from spotlake_assets.storage.frames import frame_to_parquet
from spotlake_assets.storage.keys import history_key, merged_key
from spotlake_assets.storage.lake import LocalLake
from spotlake_assets_tests.legacy.support import MONTH, Crash, CrashAt, lake_content, run_import, small_month

KEYS = list(AWS_LAYOUT.key_columns)


@pytest.fixture
def month(tmp_path: Path) -> SyntheticMonth:
    return small_month(tmp_path / "archive")


@pytest.fixture
def lake(tmp_path: Path) -> LocalLake:
    return LocalLake(root=str(tmp_path / "lake"))


def _snapshot_in_archive(month: SyntheticMonth, window: datetime) -> pd.DataFrame:
    with zipfile.ZipFile(month.location) as archive:
        name = next(n for n in archive.namelist() if n.split("/", 1)[1].startswith(f"{window:%d/%H-%M}"))
        parsed = parse_snapshot(name, archive.read(name), AWS_LAYOUT)
    return normalise_snapshot(parsed.frame, AWS_LAYOUT, window).frame


def test_each_day_is_what_the_live_compaction_writes(month: SyntheticMonth, lake: LocalLake) -> None:
    report = run_import(lake, month.location)
    assert [d.day.day for d in report.days] == [1, 2]
    for day in report.days:
        done = compact_day(lake, "aws", day.day.isoformat(), AWS_LAYOUT.key_columns)
        assert (done.file_status, done.manifest_status) == (
            "already written (identical)",
            "already published",
        )
        assert done.entry.key == day.day_file


def test_point_in_time_reconstruction_gives_back_each_imported_snapshot(
    month: SyntheticMonth, lake: LocalLake
) -> None:
    run_import(lake, month.location)
    start = datetime(2024, 3, 1, tzinfo=UTC)
    history = read_history(lake, "aws", start, start + timedelta(days=2))
    assert history is not None
    frame = history.to_pandas()
    for window in (month.windows[0], month.windows[57], month.windows[-1]):
        expected = _snapshot_in_archive(month, window)
        rebuilt = snapshot_at(frame, window, KEYS)
        columns = [*KEYS, *AWS_LAYOUT.feature_columns]
        pd.testing.assert_frame_equal(
            rebuilt[columns].astype({k: str for k in KEYS}).reset_index(drop=True),
            expected[columns].astype({k: str for k in KEYS}).reset_index(drop=True),
        )


def test_gaps_and_the_malformed_file_are_recorded_never_filled(
    month: SyntheticMonth, lake: LocalLake
) -> None:
    report = run_import(lake, month.location)
    broken = datetime.strptime(f"2024-03-{month.malformed.split('/')[1]}", "%Y-%m-%d").replace(tzinfo=UTC)  # type: ignore[union-attr]
    hhmm = month.malformed.rsplit("/", 1)[1][:5]  # type: ignore[union-attr]
    broken += timedelta(hours=int(hhmm[:2]), minutes=int(hhmm[3:]))
    missing = {*month.gaps, broken}
    recorded = {
        datetime.fromisoformat(str(g["first"])) + i * timedelta(minutes=10)
        for g in report.gaps()
        for i in range(int(g["windows"]))
        if datetime.fromisoformat(str(g["first"])).day <= 2
    }
    assert recorded == missing
    for window in missing:
        assert not lake.exists(history_key("aws", window.strftime("%Y-%m-%d-%H:%M")))
    skipped = report.all_skipped()
    assert [s.name for s in skipped] == [month.malformed] and "truncated" in skipped[0].reason
    record = json.loads(lake.read_bytes(month_record_key("aws", MONTH)))
    assert record["skipped_files"][0]["file"] == month.malformed
    assert len(record["missing_days"]) == 29 and record["gaps"] == report.gaps()
    # Days without a single file are gaps, not checkpoints: a fuller archive imports them later.
    assert not lake.exists(checkpoint_key("aws", MONTH + timedelta(days=2)))


def test_a_second_run_skips_imported_days_and_changes_nothing(month: SyntheticMonth, lake: LocalLake) -> None:
    run_import(lake, month.location)
    before = lake_content(Path(lake.root))
    again = run_import(lake, month.location)
    assert all(d.resumed for d in again.days) and not again.imported_days
    assert lake_content(Path(lake.root)) == before


def _gz(text: str) -> bytes:
    return gzip.compress(text.encode(), mtime=0)


HEADER = "Time,InstanceType,Region,AZ,SPS,T3,T2,IF,OndemandPrice,SpotPrice,Savings\n"


def _row(pool: str, sps: str = "3") -> str:
    return f"2024-03-01 00:00:00,{pool},us-east-1,use1-az1,{sps},0,0,3.0,0.1,0.05,50\n"


def test_bad_input_is_skipped_counted_and_reported(tmp_path: Path, lake: LocalLake) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("aws-2024-03/01/00-00-00.csv.gz", _gz(HEADER + _row("m5.large") + _row("c5.large")))
        # The same window again (a collector that wrote twice).
        archive.writestr("aws-2024-03/01/00-00-05.csv.gz", _gz(HEADER + _row("m5.large")))
        archive.writestr("aws-2024-03/01/00-10-00.csv", HEADER + _row("m5.large") + _row("r5.large", "abc"))
        archive.writestr("aws-2024-03/01/00-20-00.csv", HEADER.replace(",SpotPrice", "") + "x\n")
        archive.writestr("aws-2024-03/01/00-30-00.csv.gz", _gz(HEADER + _row("m5.large") * 400)[:60])
        archive.writestr("aws-2024-04/01/00-00-00.csv.gz", _gz(HEADER + _row("m5.large")))
    path = tmp_path / "aws-2024-03.zip"
    path.write_bytes(buffer.getvalue())
    report = run_import(lake, path)
    reasons = {s.name: s.reason for s in report.all_skipped()}
    assert "duplicated snapshot" in reasons["aws-2024-03/01/00-00-05.csv.gz"]
    assert "missing columns ['SpotPrice']" in reasons["aws-2024-03/01/00-20-00.csv"]
    assert "truncated or corrupt gzip" in reasons["aws-2024-03/01/00-30-00.csv.gz"]
    assert "outside the month" in reasons["aws-2024-04/01/00-00-00.csv.gz"]
    assert report.dropped() == {"non_numeric:SPS": 1}
    assert report.days[0].windows == ("2024-03-01-00:00", "2024-03-01-00:10")
    # c5.large is absent at 00:10: it ceased, in the delta as the live pipeline writes it.
    window = pd.read_parquet(io.BytesIO(lake.read_bytes(history_key("aws", "2024-03-01-00:10"))))
    assert window.set_index("InstanceType")["Ceased"].to_dict() == {"c5.large": True}


def test_too_many_skipped_files_fail_before_the_day_is_written(
    month: SyntheticMonth, lake: LocalLake
) -> None:
    with pytest.raises(LegacyImportError, match="nothing of 2024-03-02 was written") as caught:
        run_import(lake, month.location, max_skipped_files=0)
    assert month.malformed is not None and month.malformed in str(caught.value)
    assert lake.exists(checkpoint_key("aws", MONTH))
    assert not lake.list_keys("history/aws/2024/03/02/") and not lake.list_keys(
        "history_daily/aws/2024/03/02/"
    )


def test_a_collected_window_wins_and_the_conflict_is_reported(month: SyntheticMonth, lake: LocalLake) -> None:
    window = month.windows[10]
    pk = window.strftime("%Y-%m-%d-%H:%M")
    collected = _snapshot_in_archive(month, window)
    collected["SpotPrice"] = np.round(collected["SpotPrice"] * 1.5, 5)
    lake.write_bytes(merged_key("aws", pk), frame_to_parquet(collected))
    stored = table_bytes(history_table(collected.assign(Ceased=False), KEYS))
    lake.write_bytes(history_key("aws", pk), stored)
    report = run_import(lake, month.location)
    assert report.days[0].conflicts == (
        {"window": pk, "reason": "collected merged snapshot differs; collected kept"},
    )
    assert lake.read_bytes(history_key("aws", pk)) == stored
    # The next window's delta is taken against the collected snapshot: every repriced pool changes back.
    following = month.windows[11].strftime("%Y-%m-%d-%H:%M")
    after = pd.read_parquet(io.BytesIO(lake.read_bytes(history_key("aws", following))))
    assert len(after) >= (collected["SpotPrice"] > 0).sum()


def test_killed_at_random_points_the_retries_end_with_the_uninterrupted_history(
    month: SyntheticMonth, tmp_path: Path
) -> None:
    reference = LocalLake(root=str(tmp_path / "reference"))
    counter = CrashAt(None)
    run_import(reference, month.location, on_step=counter)
    expected = lake_content(Path(reference.root))
    lake = LocalLake(root=str(tmp_path / "resumed"))
    rng = np.random.default_rng(7)
    kills = 4
    for _ in range(kills):
        # A kill somewhere in what is left: the steps already done are skipped by the retry.
        with pytest.raises(Crash):
            run_import(lake, month.location, on_step=CrashAt(int(rng.integers(0, counter.steps // 2))))
    run_import(lake, month.location)
    assert lake_content(Path(lake.root)) == expected
