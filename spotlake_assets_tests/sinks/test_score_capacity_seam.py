"""SPSCapacity across the seam: windows written before the column existed (merged, delta, history, latest
without it) followed by windows written with it. The merge chain, the sinks and `spotlake query` (latest,
series, snapshot) all read the old files with the documented fill (docs/data-contracts.md#score-capacity)."""

from __future__ import annotations

import json
from typing import Any

import pandas as pd
import pyarrow.parquet as pq
import pytest

from spotlake_assets.query.cli import main
from spotlake_assets.sinks.history import read_table, table_bytes
from spotlake_assets.storage import keys
from spotlake_assets.storage.frames import read_frame, write_frame
from spotlake_assets.storage.lake import LocalLake
from spotlake_assets_tests.sinks.support import WINDOW_ASSETS, WINDOWS, build_day, metadata, run

OLD, NEW = WINDOWS[:2], WINDOWS[2:4]
COLUMN = "SPSCapacity"


def strip_column(lake: LocalLake, window: str) -> None:
    """Rewrite a window's merged, delta and history as the code before SPSCapacity wrote them."""
    for key in (keys.merged_key("aws", window), keys.delta_key("aws", window)):
        write_frame(lake, key, read_frame(lake, key).drop(columns=[COLUMN]))
    history = keys.history_key("aws", window)
    lake.write_bytes(history, table_bytes(read_table(lake, history).drop_columns([COLUMN])))


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> LocalLake:
    built = LocalLake(root=str(tmp_path_factory.mktemp("seam") / "lake"))
    build_day(built)
    for window in OLD:
        run(built, WINDOW_ASSETS, window)
        strip_column(built, window)
    latest = keys.latest_key("aws")
    records = json.loads(built.read_bytes(latest))
    built.write_bytes(
        latest, json.dumps([{k: v for k, v in r.items() if k != COLUMN} for r in records]).encode()
    )
    return built


def test_the_old_files_really_lack_the_column(lake: LocalLake) -> None:
    assert COLUMN not in read_frame(lake, keys.merged_key("aws", OLD[-1])).columns
    assert COLUMN not in pq.read_schema(lake.location(keys.history_key("aws", OLD[-1]))).names


def test_query_latest_fills_a_latest_object_from_before(lake: LocalLake, capsys: Any) -> None:
    assert main(["query", "latest", "--lake", lake.root, "--format", "json", "-q"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows and all(r[COLUMN] == (1 if r["SPS"] >= 0 else -1) for r in rows)
    assert list(rows[0]).index(COLUMN) == list(rows[0]).index("SPS") + 1


@pytest.fixture(scope="module")
def continued(lake: LocalLake) -> LocalLake:
    """The new code merging on from the old windows."""
    for window in NEW:
        run(lake, WINDOW_ASSETS, window)
    return lake


def test_the_chain_continues_on_a_previous_snapshot_without_the_column(continued: LocalLake) -> None:
    merged = read_frame(continued, keys.merged_key("aws", NEW[0]))
    delta = read_frame(continued, keys.delta_key("aws", NEW[0]))
    assert merged[COLUMN].dtype == "int64" and delta[COLUMN].dtype == "int64"
    scored = merged["SPS"] >= 0
    assert (merged.loc[~scored, COLUMN] == -1).all() and (merged.loc[scored, COLUMN] >= 1).all()
    # Not a feature: the fill of the old snapshot changed no row by itself, so the delta is no larger than
    # the pools whose features changed.
    previous = read_frame(continued, keys.merged_key("aws", OLD[-1]))
    joined = merged.merge(previous, on=["InstanceType", "Region", "AZ"], suffixes=("", "_old"))
    features = ["SPS", "T3", "T2", "IF", "SpotPrice", "OndemandPrice"]
    same = (joined[features].to_numpy() == joined[[f"{f}_old" for f in features]].to_numpy()).all(axis=1)
    changed_keys = set(
        delta.loc[~delta["Ceased"], "AZ"].astype(str)
        + delta.loc[~delta["Ceased"], "InstanceType"].astype(str)
    )
    unchanged_keys = set(joined.loc[same, "AZ"].astype(str) + joined.loc[same, "InstanceType"].astype(str))
    assert not changed_keys & unchanged_keys
    latest = json.loads(continued.read_bytes(keys.latest_key("aws")))
    assert all(COLUMN in r for r in latest)


def test_a_rerun_of_an_old_windows_sinks_keeps_its_history(continued: LocalLake) -> None:
    result = run(continued, ["aws/history", "aws/timestream"], OLD[-1])
    assert metadata(result, "aws/history")["status"] == "already written (before the score-capacity columns)"


def test_series_and_snapshot_read_across_the_seam(continued: LocalLake, capsys: Any) -> None:
    history = pd.concat(read_table(continued, keys.history_key("aws", w)).to_pandas() for w in (*OLD, *NEW))
    pool = history.groupby(["InstanceType", "Region", "AZ"]).size().idxmax()
    argv = ["--lake", continued.root, "--format", "json", "-q"]
    assert main(["query", "series", *argv, "--instance-type", pool[0], "--region", pool[1], "--az", pool[2],
                 "--start", "2026-03-01T00:00", "--end", "2026-03-01T00:40"]) == 0  # fmt: skip
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) > 1 and all(isinstance(r[COLUMN], int) and r[COLUMN] >= -1 for r in rows)
    for at in ("2026-03-01T00:10", "2026-03-01T00:30"):
        assert main(["query", "snapshot", *argv, "--at", at, "--limit", "0"]) == 0
        rows = json.loads(capsys.readouterr().out)
        assert rows and all(isinstance(r[COLUMN], int) for r in rows)
