"""Tier 3: the shared merge → delta → sinks factory, materialized over the simulated AWS graph.

Idempotency is tested the hard way: one run is SIGKILLed between the Timestream write and the latest-state
update, another dies there with the real boto3 client; each rerun must leave exactly what one clean run
leaves (records in Timestream, history files, latest state).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import weakref
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
import pytest

from spotlake_assets.aws.constants import KEY_COLUMNS
from spotlake_assets.domain.reconstruct import snapshot_at
from spotlake_assets.domain.windows import window_start
from spotlake_assets.orchestration.pipeline import ChangeSpec, build_change_assets
from spotlake_assets.sinks.history import load_manifest, read_history
from spotlake_assets.sinks.timestream import Boto3Timestream, LocalTimestream
from spotlake_assets.storage import keys
from spotlake_assets.storage.frames import read_frame, write_frame
from spotlake_assets.storage.lake import LocalLake, StoredObject
from spotlake_assets_tests.sinks.fakes import FakeTimestreamService
from spotlake_assets_tests.sinks.support import (  # noqa: F401 (boto_env is a fixture)
    DAY,
    WINDOW_ASSETS,
    WINDOWS,
    boto_env,
    build_day,
    materialized,
    metadata,
    run,
)

ROOT = Path(__file__).resolve().parents[2]


def lake_at(path: Path) -> LocalLake:
    return LocalLake(root=str(path))


def files(lake: LocalLake, prefix: str) -> dict[str, bytes]:
    return {k: lake.read_bytes(k) for k in lake.list_keys(prefix)}


def checks(result: dg.ExecuteInProcessResult) -> dict[str, bool]:
    return {
        f"{e.asset_check_key.asset_key.to_user_string()}:{e.asset_check_key.name}": e.passed
        for e in result.get_asset_check_evaluations()
    }


def as_plain(frame: pd.DataFrame) -> pd.DataFrame:
    """Compare snapshots by value: categoricals as strings, times in ms. Without SPSCapacity: not a feature,
    so the history holds the capacity of a row's last publication (docs/data-contracts.md#score-capacity)."""
    out = frame.drop(columns=["SPSCapacity"])
    for column in out.columns:
        if isinstance(out[column].dtype, pd.CategoricalDtype):
            out[column] = out[column].astype(str)
    out["Time"] = out["Time"].astype("datetime64[ms, UTC]")
    return out.sort_values(list(KEY_COLUMNS), ignore_index=True)


# --- the factory's shape ------------------------------------------------------------------------------------


def test_the_factory_builds_every_sink_for_any_provider() -> None:
    spec = ChangeSpec(
        "azure",
        ("InstanceTier", "InstanceType", "Region", "AvailabilityZone"),
        ("Score", "SpotPrice"),
        api_resource_key="azure_api",
    )
    built = {a.key.to_user_string(): a for a in build_change_assets(spec)}
    assert set(built) == {
        "azure/delta",
        "azure/history",
        "azure/timestream",
        "azure/latest",
        "azure/history_daily",
    }
    latest_deps = {k.to_user_string() for k in built["azure/latest"].asset_deps[built["azure/latest"].key]}
    assert latest_deps == {"azure/merged", "azure/history", "azure/timestream"}
    assert spec.timestream_mapping().measure_name == "azure_values"
    assert "timestream" in built["azure/timestream"].required_resource_keys
    check_specs = list(built["azure/timestream"].check_specs)
    assert [c.name for c in check_specs] == ["no_rejected_records"] and check_specs[0].blocking


class _Api(dg.ConfigurableResource):  # type: ignore[type-arg]
    @property
    def simulated(self) -> bool:
        return True


def test_an_azure_shaped_provider_reaches_every_sink(tmp_path: Path) -> None:
    keys_ = ("InstanceTier", "InstanceType", "Region", "AvailabilityZone")
    spec = ChangeSpec("azure", keys_, ("Score", "SpotPrice"), api_resource_key="azure_api")
    lake = lake_at(tmp_path)
    window = "2026-03-01-00:10"
    merged = pd.DataFrame(
        {
            "InstanceTier": ["Standard", "Standard"],
            "InstanceType": ["Standard_D2s_v3", "Standard_E4s_v5"],
            "Region": ["eastus", "westeurope"],
            "AvailabilityZone": ["1", "2"],
            "Score": [3, 1],
            "SpotPrice": [0.02, 0.05],
            "Time": pd.Series([pd.Timestamp(window_start(window))] * 2, dtype="datetime64[ns, UTC]"),
        }
    )
    write_frame(lake, keys.merged_key("azure", window), merged)
    sink = LocalTimestream(root=lake.root)
    result = dg.materialize(
        build_change_assets(spec),
        selection=["azure/delta", "azure/history", "azure/timestream", "azure/latest"],
        partition_key=window,
        resources={"lake": lake, "azure_api": _Api(), "timestream": sink},
    )
    assert all(checks(result).values())
    assert metadata(result, "azure/timestream")["target"] == "spotlake.azure"
    stored = sink.stored("azure")
    assert len(stored) == 2 and stored[0]["MeasureName"] == "azure_values"
    assert [d["Name"] for d in stored[0]["Dimensions"]] == list(keys_)
    assert lake.exists("history/azure/2026/03/01/00-10.parquet") and lake.exists(
        "latest_data/latest_azure.json"
    )


# --- reconstruction -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def six_windows(tmp_path_factory: pytest.TempPathFactory) -> LocalLake:
    lake = lake_at(tmp_path_factory.mktemp("six") / "lake")
    build_day(lake)
    for window in WINDOWS:
        run(lake, WINDOW_ASSETS, window)
    return lake


def test_history_reconstructs_every_windows_merged_snapshot(six_windows: LocalLake) -> None:
    lake = six_windows
    start, end = window_start(WINDOWS[0]), window_start(WINDOWS[-1])
    table = read_history(lake, "aws", start, end)
    assert table is not None
    history = table.to_pandas()
    assert history["Ceased"].any() or len(history) > len(read_frame(lake, keys.merged_key("aws", WINDOWS[0])))
    for window in WINDOWS:
        merged = as_plain(read_frame(lake, keys.merged_key("aws", window)))
        rebuilt = as_plain(snapshot_at(history, window_start(window), KEY_COLUMNS))
        pd.testing.assert_frame_equal(rebuilt, merged, check_dtype=True)


def test_compaction_keeps_reconstruction_exact(six_windows: LocalLake, tmp_path: Path) -> None:
    lake = lake_at(tmp_path / "copy")
    for key, data in files(six_windows, "").items():
        lake.write_bytes(key, data)
    result = run(lake, ["aws/history_daily"], DAY)
    meta = metadata(result, "aws/history_daily")
    assert meta["windows"] == 6 and meta["manifest_status"] == "published"
    # Six of 144 windows: the day is incomplete, which is a warning, not a failure.
    (evaluation,) = result.get_asset_check_evaluations()
    assert not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.WARN
    assert list(load_manifest(lake, "aws").days) == [DAY]
    table = read_history(lake, "aws", window_start(WINDOWS[0]), window_start(WINDOWS[-1]))
    assert table is not None
    for window in WINDOWS:
        merged = as_plain(read_frame(lake, keys.merged_key("aws", window)))
        rebuilt = as_plain(snapshot_at(table.to_pandas(), window_start(window), KEY_COLUMNS))
        pd.testing.assert_frame_equal(rebuilt, merged)


# --- idempotency --------------------------------------------------------------------------------------------


def sink_state(lake: LocalLake) -> dict[str, Any]:
    return {
        "timestream": files(lake, "timestream/"),
        "history": files(lake, "history/"),
        "latest": files(lake, "latest_data/"),
        "delta": files(lake, "delta/"),
    }


@pytest.fixture(scope="module")
def clean_two_windows(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    lake = lake_at(tmp_path_factory.mktemp("clean") / "lake")
    build_day(lake)
    for window in WINDOWS[:2]:
        run(lake, WINDOW_ASSETS, window)
    return sink_state(lake)


def test_running_a_window_twice_duplicates_nothing(tmp_path: Path, clean_two_windows: dict[str, Any]) -> None:
    lake = lake_at(tmp_path)
    build_day(lake)
    run(lake, WINDOW_ASSETS, WINDOWS[0])
    run(lake, WINDOW_ASSETS, WINDOWS[1])
    again = run(lake, WINDOW_ASSETS, WINDOWS[1])
    assert metadata(again, "aws/timestream")["records_rejected"] == 0
    assert sink_state(lake) == clean_two_windows


def test_a_run_killed_between_timestream_and_latest_reruns_to_one_clean_run(
    tmp_path: Path, clean_two_windows: dict[str, Any]
) -> None:
    lake = lake_at(tmp_path / "lake")
    build_day(lake)
    run(lake, WINDOW_ASSETS, WINDOWS[0])
    latest_before = lake.read_bytes(keys.latest_key("aws"))
    marker = tmp_path / "timestream-written"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(
        [sys.executable, "-m", "spotlake_assets_tests.sinks.support", lake.root, WINDOWS[1], str(marker)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 180
        while not marker.exists():
            assert process.poll() is None, process.stderr.read().decode()[-3000:] if process.stderr else ""
            assert time.monotonic() < deadline, "the run never reached the Timestream write"
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)
        assert process.wait(timeout=30) == -signal.SIGKILL
    finally:
        if process.poll() is None:
            process.kill()
        if process.stderr:
            process.stderr.close()
    # Killed after Timestream, before latest: the records are in, latest still shows the previous window.
    assert lake.read_bytes(keys.latest_key("aws")) == latest_before
    assert lake.list_keys("timestream/spotlake/aws/2026/03/01/00-10")
    rerun = run(lake, WINDOW_ASSETS, WINDOWS[1])
    assert metadata(rerun, "aws/history")["status"] in {"written", "already written (identical)"}
    assert metadata(rerun, "aws/timestream")["records_rejected"] == 0
    assert sink_state(lake) == clean_two_windows


class FailingLatestLake(LocalLake):
    """The run dies where the latest state would be written (after both sinks)."""

    def write_bytes(
        self, key: str, data: bytes, *, create_only: bool = False, if_match: str | None = None
    ) -> StoredObject:
        if key.startswith("latest_data/") and window_tag(data) == "2026-03-01 00:10:00":
            raise OSError("injected: the instance was reclaimed before latest was written")
        return super().write_bytes(key, data, create_only=create_only, if_match=if_match)


def window_tag(data: bytes) -> str:
    records = json.loads(data)
    return str(records[0]["Time"]) if records else ""


SERVICES: dict[str, FakeTimestreamService] = {}
ATTACHED: weakref.WeakSet[Any] = weakref.WeakSet()


class FakeBackedTimestream(Boto3Timestream):
    """The real boto3 sink, its client answered by a fake service (attached to whichever client the run
    creates: Dagster initialises its own copy of the resource for each run)."""

    service: str

    def client(self) -> Any:
        client = super().client()
        if client not in ATTACHED:
            SERVICES[self.service].attach(client)
            ATTACHED.add(client)
        return client


def boto3_sink(name: str) -> tuple[Boto3Timestream, FakeTimestreamService]:
    SERVICES[name] = FakeTimestreamService()
    sink = FakeBackedTimestream(
        service=name, writers=4, max_attempts=2, retry_mode="standard", rejected_backoff_s=0.0
    )
    return sink, SERVICES[name]


@pytest.mark.usefixtures("boto_env")
def test_an_interrupted_run_with_the_boto3_client_reruns_to_one_clean_run(tmp_path: Path) -> None:
    clean = lake_at(tmp_path / "clean")
    clean_sink, clean_service = boto3_sink("clean")
    build_day(clean)
    for window in WINDOWS[:2]:
        run(clean, WINDOW_ASSETS, window, timestream=clean_sink)

    broken = FailingLatestLake(root=str(tmp_path / "broken"))
    sink, service = boto3_sink("interrupted")
    build_day(broken)
    run(broken, WINDOW_ASSETS, WINDOWS[0], timestream=sink)
    failed = run(broken, WINDOW_ASSETS, WINDOWS[1], timestream=sink, raise_on_error=False)
    assert not failed.success and "aws/timestream" in materialized(failed)
    assert "aws/latest" not in materialized(failed)
    sent_before_rerun = len(service.sent)
    fixed = lake_at(tmp_path / "broken")
    rerun = run(fixed, WINDOW_ASSETS, WINDOWS[1], timestream=sink)
    assert metadata(rerun, "aws/timestream")["records_rejected"] == 0
    # The rerun sends the window again (same Version), and Timestream keeps one record per key.
    assert len(service.sent) > sent_before_rerun
    assert service.stored() == clean_service.stored()
    assert files(fixed, "history/") == files(clean, "history/")
    assert files(fixed, "latest_data/") == files(clean, "latest_data/")


def test_rejected_records_fail_the_blocking_check_and_keep_latest(tmp_path: Path) -> None:
    lake = lake_at(tmp_path)
    build_day(lake)
    run(lake, WINDOW_ASSETS, WINDOWS[0])
    latest_before = lake.read_bytes(keys.latest_key("aws"))
    # Someone already wrote other values for the next window under the same Version.
    other = lake_at(tmp_path / "other")
    build_day(other)
    run(other, WINDOW_ASSETS, WINDOWS[1])
    sps = b'"Name":"SPS","Type":"BIGINT","Value":"'
    for key, data in files(other, "timestream/").items():
        if key.endswith("00-10-00.jsonl"):
            lake.write_bytes(key, data.replace(sps, sps + b"1"))
    result = run(lake, WINDOW_ASSETS, WINDOWS[1], raise_on_error=False)
    meta = metadata(result, "aws/timestream")
    assert (
        meta["records_rejected"] > 0 and meta["records_rejected"] == meta["rows"] - meta["records_ingested"]
    )
    assert "equal or higher version" in next(iter(meta["rejection_reasons"]))
    assert meta["rejected_records"][0]["existing_version"] == meta["version"]
    assert checks(result)["aws/timestream:no_rejected_records"] is False
    assert "aws/latest" not in materialized(result)
    assert lake.read_bytes(keys.latest_key("aws")) == latest_before
    # A deliberate revision (higher Version) goes through.
    revised = run(
        lake,
        WINDOW_ASSETS,
        WINDOWS[1],
        run_config={
            "ops": {
                "aws__sps": {"config": {"backoff_initial_s": 0.001, "backoff_max_s": 0.002}},
                "aws__timestream": {"config": {"revision": 1}},
            }
        },
    )
    assert metadata(revised, "aws/timestream")["records_rejected"] == 0
    assert "aws/latest" in materialized(revised)


# --- first windows ------------------------------------------------------------------------------------------


def test_missing_and_corrupt_previous_states_are_explicit_first_windows(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    lake = lake_at(tmp_path)
    build_day(lake)
    first = run(lake, WINDOW_ASSETS, WINDOWS[0])
    meta = metadata(first, "aws/delta")
    assert meta["first_window"] is True and "no previous merged snapshot at" in meta["first_window_reason"]
    run(lake, ["aws/sps", "aws/interruption_frequency", "aws/spot_price", "aws/merged"], WINDOWS[1])
    lake.write_bytes(keys.merged_key("aws", WINDOWS[0]), b"PAR1 not parquet")
    with caplog.at_level("ERROR"):
        second = run(lake, ["aws/delta"], WINDOWS[1])
    meta = metadata(second, "aws/delta")
    assert (
        meta["first_window"] is True and "previous merged snapshot unreadable" in meta["first_window_reason"]
    )
    assert meta["rows"] == len(read_frame(lake, keys.merged_key("aws", WINDOWS[1])))
    assert any("treating as the first window" in r.getMessage() for r in caplog.records)


def test_compaction_of_the_closed_day_fires_at_00_30_despite_its_history_dependency() -> None:
    """history_daily declares its lineage (history → history_daily) yet is still requested at 00:30: the
    day's history windows were all written before the tick, so `on_cron`'s "deps updated since the tick"
    part would never hold."""
    from datetime import UTC, datetime, timedelta

    spec = ChangeSpec("aws", KEY_COLUMNS, ("SPS",), api_resource_key="aws_api")
    assets = build_change_assets(spec)
    daily = dg.AssetKey(["aws", "history_daily"])
    (compaction,) = [a for a in assets if a.key == daily]
    assert dg.AssetKey(["aws", "history"]) in compaction.asset_deps[daily]
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    # Evaluating conditions runs nothing: the resources only have to exist.
    unused = {key: dg.ResourceDefinition.none_resource() for key in ("lake", "aws_api", "timestream")}
    defs = dg.with_resources(assets, unused)
    with dg.instance_for_test() as instance:
        before = dg.evaluate_automation_conditions(
            defs=defs, instance=instance, evaluation_time=today + timedelta(minutes=20)
        )
        after = dg.evaluate_automation_conditions(
            defs=defs,
            instance=instance,
            evaluation_time=today + timedelta(minutes=31),
            cursor=before.cursor,
        )
    assert after.get_requested_partitions(daily) == {(today - timedelta(days=1)).strftime("%Y-%m-%d")}
