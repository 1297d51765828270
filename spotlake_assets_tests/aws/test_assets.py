"""Tier 3: `materialize()` over the AWS graph on a temporary lake with the simulated AWS."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import dagster as dg
import pandas as pd
import pytest

from spotlake_assets.aws import workload
from spotlake_assets.aws.constants import FEATURE_COLUMNS, KEY_COLUMNS, MERGED_COLUMNS
from spotlake_assets.aws.credentials import AwsCredentialPool
from spotlake_assets.aws.definitions import aws_assets
from spotlake_assets.aws.simulation import SimulatedAwsApi, SimulatedWorld, simulated_credentials
from spotlake_assets.aws.workload import PackingResult
from spotlake_assets.domain.windows import capacity_for_window
from spotlake_assets.sinks.timestream import LocalTimestream
from spotlake_assets.storage import keys
from spotlake_assets.storage.frames import read_frame, write_frame
from spotlake_assets.storage.lake import LocalLake
from spotlake_assets_tests.aws.fakes import NoOfferingsApi, ScriptedAwsApi

DAY = "2026-03-01"
WINDOWS = ["2026-03-01-00:00", "2026-03-01-00:10", "2026-03-01-00:20"]
DAILY = ["aws/workload", "aws/ondemand_price"]
WINDOW_ASSETS = [
    "aws/sps",
    "aws/interruption_frequency",
    "aws/spot_price",
    "aws/merged",
    "aws/delta",
    "aws/history",
    "aws/latest",
]
FAST_SPS = {
    "ops": {
        "aws__sps": {
            "config": {
                "backoff_initial_s": 0.001,
                "backoff_max_s": 0.002,
                "step_retries": 1,
                "step_retry_wait_s": 0,
            }
        }
    }
}


def resources(lake: LocalLake, **api: Any) -> dict[str, Any]:
    return {
        "lake": lake,
        "aws_api": SimulatedAwsApi(seed=11, scale=0.03, **api),
        "aws_credentials": AwsCredentialPool(source="simulated", simulated_size=200, seed=11),
        "timestream": LocalTimestream(root=lake.root),
    }


def run(
    lake: LocalLake, selection: Sequence[str], partition: str, *, raise_on_error: bool = True, **api: Any
) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        aws_assets,
        selection=list(selection),
        partition_key=partition,
        resources=resources(lake, **api),
        run_config=FAST_SPS if "aws/sps" in selection else None,
        raise_on_error=raise_on_error,
    )


def metadata(result: dg.ExecuteInProcessResult, asset: str) -> dict[str, Any]:
    for event in result.get_asset_materialization_events():
        materialization = event.event_specific_data.materialization  # type: ignore[union-attr]
        if materialization.asset_key.to_user_string() == asset:
            return {k: getattr(v, "value", v) for k, v in materialization.metadata.items()}
    raise AssertionError(f"{asset} was not materialized")


def checks(result: dg.ExecuteInProcessResult) -> dict[str, bool]:
    return {
        f"{e.asset_check_key.asset_key.to_user_string()}:{e.asset_check_key.name}": e.passed
        for e in result.get_asset_check_evaluations()
    }


def failure_text(result: dg.ExecuteInProcessResult) -> str:
    """Every message in the first step failure's error chain (Dagster wraps the user's exception)."""
    failure = next(e for e in result.all_events if e.is_step_failure)
    data = failure.step_failure_data
    assert data is not None
    error = data.error
    texts = [data.user_failure_data.description or ""] if data.user_failure_data else []
    while error is not None:
        texts.append(error.message)
        error = error.cause
    return "\n".join(texts)


@pytest.fixture
def day_built(local_lake: LocalLake) -> LocalLake:
    run(local_lake, DAILY, DAY)
    return local_lake


def test_day_then_windows_end_to_end(day_built: LocalLake) -> None:
    lake = day_built
    results = [run(lake, WINDOW_ASSETS, w) for w in WINDOWS]
    for window, result in zip(WINDOWS, results, strict=True):
        assert all(checks(result).values()), checks(result)
        assert lake.exists(keys.sps_key("aws", window, capacity_for_window(window)))
        assert metadata(result, "aws/sps")["simulated"] is True
    merged = read_frame(lake, keys.merged_key("aws", WINDOWS[-1]))
    assert tuple(merged.columns) == MERGED_COLUMNS
    first, second = metadata(results[0], "aws/delta"), metadata(results[1], "aws/delta")
    assert first["first_window"] is True and first["rows"] == metadata(results[0], "aws/merged")["rows"]
    # The second delta holds exactly the pools whose features differ between the two merged snapshots.
    before, after = (
        read_frame(lake, keys.merged_key("aws", w)).astype({"InstanceType": str, "Region": str, "AZ": str})
        for w in WINDOWS[:2]
    )
    joined = before.merge(after, on=list(KEY_COLUMNS), how="outer", suffixes=("_0", "_1"), indicator=True)
    differs = joined["_merge"] != "both"
    for feature in FEATURE_COLUMNS:
        differs |= joined[f"{feature}_0"] != joined[f"{feature}_1"]
    assert second["rows"] == int(differs.sum()) > 0
    latest = json.loads(lake.read_bytes(keys.latest_key("aws")))
    assert len(latest) == len(merged) and latest[0]["Time"] == "2026-03-01 00:20:00"
    assert set(latest[0]) == set(MERGED_COLUMNS)
    assert len(lake.list_keys("history/aws/")) == 3


def test_rerunning_a_window_duplicates_nothing(day_built: LocalLake) -> None:
    lake = day_built
    for window in WINDOWS[:2]:
        run(lake, WINDOW_ASSETS, window)
    before = {k: lake.read_bytes(k) for k in lake.list_keys("")}
    again = run(lake, WINDOW_ASSETS, WINDOWS[1])
    sps = metadata(again, "aws/sps")
    assert sps["api_calls"] == 0 and sps["groups_resumed"] == sps["credential_groups"]
    assert metadata(again, "aws/history")["status"] == "already written (identical)"
    after = {k: lake.read_bytes(k) for k in lake.list_keys("")}
    assert after.keys() == before.keys()
    for key in ("history/", "state/", "latest_data/", "delta/"):
        assert {k: v for k, v in after.items() if k.startswith(key)} == {
            k: v for k, v in before.items() if k.startswith(key)
        }


def test_an_older_window_never_replaces_latest(day_built: LocalLake) -> None:
    lake = day_built
    run(lake, WINDOW_ASSETS, WINDOWS[1])
    result = run(lake, WINDOW_ASSETS, WINDOWS[0])
    assert metadata(result, "aws/latest")["status"].startswith("kept newer window")
    assert json.loads(lake.read_bytes(keys.latest_key("aws")))[0]["Time"] == "2026-03-01 00:10:00"


def test_corrupt_input_fails_merge_with_its_name_and_writes_nothing(day_built: LocalLake) -> None:
    lake = day_built
    run(lake, ["aws/sps", "aws/interruption_frequency", "aws/spot_price"], WINDOWS[0])
    if_key = keys.interruption_frequency_key("aws", WINDOWS[0])
    lake.write_bytes(if_key, b"PAR1 garbage")
    result = run(lake, ["aws/merged"], WINDOWS[0], raise_on_error=False)
    assert not result.success
    assert f"corrupt lake file {lake.location(if_key)}" in failure_text(result)
    assert not lake.exists(keys.merged_key("aws", WINDOWS[0]))


def test_exhausted_pool_fails_naming_groups_without_raw_file(day_built: LocalLake) -> None:
    lake = day_built
    result = dg.materialize(
        aws_assets,
        selection=["aws/sps"],
        partition_key=WINDOWS[0],
        resources={
            **resources(lake),
            "aws_credentials": AwsCredentialPool(source="simulated", simulated_size=2, seed=11),
        },
        run_config=FAST_SPS,
        raise_on_error=False,
    )
    assert not result.success
    assert "credential groups uncovered" in failure_text(result)
    assert not lake.exists(keys.sps_key("aws", WINDOWS[0], capacity_for_window(WINDOWS[0])))
    assert lake.list_keys(keys.sps_checkpoint_prefix("aws", WINDOWS[0]))


def test_throttling_storm_fails_boundedly_without_raw_file(day_built: LocalLake) -> None:
    result = run(day_built, ["aws/sps"], WINDOWS[0], raise_on_error=False, throttle_rate=1.0)
    assert not result.success
    assert "credential groups uncovered" in failure_text(result)
    assert "RequestLimitExceeded" in failure_text(result)
    assert not day_built.exists(keys.sps_key("aws", WINDOWS[0], capacity_for_window(WINDOWS[0])))


def test_a_failing_region_is_an_explicit_gap(day_built: LocalLake) -> None:
    result = run(day_built, ["aws/spot_price"], WINDOWS[0], failing_regions=["eu-west-1"])
    assert checks(result) == {"aws/spot_price:all_regions_collected": False}
    assert "eu-west-1" in metadata(result, "aws/spot_price")["failed_regions"]
    prices = read_frame(day_built, keys.spot_price_key("aws", WINDOWS[0]))
    assert not prices["AZ"].str.startswith("euw1-").any()


def test_workload_reports_the_solver(day_built: LocalLake) -> None:
    frame = read_frame(day_built, keys.workload_key("aws", DAY))
    assert (frame["AZWeight"] <= 10).all()
    assert isinstance(frame, pd.DataFrame) and frame["Group"].max() == (len(frame) - 1) // 50


def scripted(lake: LocalLake, api: ScriptedAwsApi) -> dict[str, Any]:
    return {
        "lake": lake,
        "aws_api": api,
        "aws_credentials": AwsCredentialPool(source="simulated", simulated_size=5),
        "timestream": LocalTimestream(root=lake.root),
    }


def test_malformed_advisor_document_fails_without_raw_file(local_lake: LocalLake) -> None:
    result = dg.materialize(
        aws_assets,
        selection=["aws/interruption_frequency"],
        partition_key=WINDOWS[0],
        resources=scripted(local_lake, ScriptedAwsApi()),
        raise_on_error=False,
    )
    assert not result.success
    assert "the advisor document has no 'ranges' key" in failure_text(result)
    assert local_lake.list_keys("rawdata/") == []


def test_empty_offerings_fail_the_workload_without_files(local_lake: LocalLake) -> None:
    result = dg.materialize(
        aws_assets,
        selection=["aws/workload"],
        partition_key=DAY,
        resources=scripted(local_lake, NoOfferingsApi()),
        raise_on_error=False,
    )
    assert not result.success
    assert "offering" in failure_text(result).lower()
    assert local_lake.list_keys("rawdata/") == []


def test_sps_answer_without_az_id_fails_without_raw_file(local_lake: LocalLake) -> None:
    resources = scripted(local_lake, ScriptedAwsApi(malformed_type="m5.large"))
    dg.materialize(aws_assets, selection=["aws/workload"], partition_key=DAY, resources=resources)
    result = dg.materialize(
        aws_assets,
        selection=["aws/sps"],
        partition_key=WINDOWS[0],
        resources=resources,
        run_config=FAST_SPS,
        raise_on_error=False,
    )
    assert not result.success
    assert "AvailabilityZoneId" in failure_text(result)
    assert not local_lake.list_keys("rawdata/aws/sps/")


def test_backfill_of_a_past_window_skips_now_only_collectors(day_built: LocalLake) -> None:
    """Against an API that cannot see the past, SPS and IF skip (nothing stored, downstream skipped);
    spot prices, which AWS keeps a history of, are still collected."""
    result = run(day_built, WINDOW_ASSETS, WINDOWS[0], replay_past=False)
    assert result.success
    materialized = {
        e.asset_key.to_user_string() for e in result.get_asset_materialization_events() if e.asset_key
    }
    assert materialized == {"aws/spot_price"}
    observations = [
        e.event_specific_data.asset_observation  # type: ignore[union-attr]
        for e in result.all_events
        if e.event_type_value == "ASSET_OBSERVATION"
    ]
    assert {o.asset_key.to_user_string() for o in observations} == {"aws/sps", "aws/interruption_frequency"}
    assert all("cannot be observed" in str(o.metadata["reason"].value) for o in observations)
    assert day_built.list_keys("rawdata/aws/sps/") == []
    assert not day_built.exists(keys.merged_key("aws", WINDOWS[0]))


def test_overdue_inputs_merge_with_explicit_gaps(day_built: LocalLake) -> None:
    lake = day_built
    run(lake, ["aws/sps"], WINDOWS[0])
    strict = run(lake, ["aws/merged"], WINDOWS[0], raise_on_error=False)
    assert not strict.success and "spot_if" in failure_text(strict)
    result = dg.materialize(
        aws_assets,
        selection=["aws/merged"],
        partition_key=WINDOWS[0],
        resources=resources(lake),
        run_config={"ops": {"aws__merged": {"config": {"allow_missing_inputs": True}}}},
    )
    assert checks(result)["aws/merged:inputs_complete"] is False
    merged = read_frame(lake, keys.merged_key("aws", WINDOWS[0]))
    assert (merged["IF"] == -1).all() and (merged["SpotPrice"] == -1).all()
    assert (merged["SPS"] >= 1).all()


# --- issue 10: nothing wrong is published, nothing is dropped silently, state heals itself ------------------

PUBLISHING = ["aws/merged", "aws/delta", "aws/history", "aws/timestream", "aws/latest"]


def step_failure_description(result: dg.ExecuteInProcessResult) -> str:
    failure = next(e for e in result.all_events if e.is_step_failure)
    data = failure.step_failure_data
    assert data is not None and data.user_failure_data is not None
    return data.user_failure_data.description or ""


def materialized(result: dg.ExecuteInProcessResult) -> set[str]:
    return {e.asset_key.to_user_string() for e in result.get_asset_materialization_events() if e.asset_key}


def test_an_out_of_range_score_is_never_stored_and_a_rerun_collects_again(
    day_built: LocalLake, monkeypatch: pytest.MonkeyPatch
) -> None:
    lake = day_built
    with monkeypatch.context() as patch:
        patch.setattr(SimulatedWorld, "sps_score", staticmethod(lambda pool, capacity, window: 11))
        bad = run(lake, WINDOW_ASSETS, WINDOWS[0], raise_on_error=False)
    assert not bad.success
    assert step_failure_description(bad).startswith(
        "malformed response from GetSpotPlacementScores: field 'Score' = 11 in row {'InstanceType': "
    )
    assert materialized(bad) <= {"aws/interruption_frequency", "aws/spot_price"}
    # Neither checkpointed nor written: the rerun with a sound answer queries again and publishes it.
    assert lake.list_keys("state/aws/sps_checkpoints/") == []
    assert lake.list_keys("rawdata/aws/sps/") == []
    good = run(lake, WINDOW_ASSETS, WINDOWS[0])
    assert metadata(good, "aws/sps")["api_calls"] > 0
    latest = pd.DataFrame(json.loads(lake.read_bytes(keys.latest_key("aws"))))
    assert latest["SPS"].between(1, 10).all()


def test_merged_coverage_is_measured_against_the_plan_and_blocks_publishing(day_built: LocalLake) -> None:
    lake = day_built
    run(lake, ["aws/sps", "aws/interruption_frequency", "aws/spot_price"], WINDOWS[0])
    sps_key = keys.sps_key("aws", WINDOWS[0], capacity_for_window(WINDOWS[0]))
    sps = read_frame(lake, sps_key)
    lost = sps.iloc[0]
    # An SPS file short of one planned (type, AZ) pair: merged's own SPS input cannot reveal it.
    write_frame(lake, sps_key, sps.drop(index=0))
    result = run(lake, PUBLISHING, WINDOWS[0], raise_on_error=False)
    assert checks(result)["aws/merged:covers_workload"] is False
    check = next(e for e in result.get_asset_check_evaluations() if e.check_name == "covers_workload")
    assert check.metadata["missing_type_az"].value == 1
    (sample,) = check.metadata["missing_sample"].value  # type: ignore[misc]
    assert isinstance(sample, str)
    assert sample.startswith(f"{lost['InstanceType']} in ") and lost["AZ"] in sample
    # A failed guard stops the publication in the same run: no delta, history, Timestream or latest.
    assert materialized(result) == {"aws/merged"}
    assert not result.success
    assert not lake.exists(keys.delta_key("aws", WINDOWS[0]))
    assert lake.list_keys("history/aws/") == [] and not lake.exists(keys.latest_key("aws"))
    assert lake.list_keys("timestream/") == []


def test_merged_reports_rows_it_drops(day_built: LocalLake) -> None:
    lake = day_built
    run(lake, ["aws/sps", "aws/interruption_frequency", "aws/spot_price"], WINDOWS[0])
    price_key = keys.spot_price_key("aws", WINDOWS[0])
    prices = read_frame(lake, price_key)
    stray = pd.DataFrame({"InstanceType": ["m5.large"] * 2, "AZ": ["zzz1-az9"] * 2, "SpotPrice": [0.1, 0.2]})
    write_frame(lake, price_key, pd.concat([prices, stray.assign(InstanceType=["m5.large", "c5.large"])]))
    result = run(lake, ["aws/merged"], WINDOWS[0])
    merged = metadata(result, "aws/merged")
    assert merged["dropped_rows"] == {"spot_price: AZ id not in the day's zones": 2}
    assert merged["unknown_azs"] == ["zzz1-az9"]
    assert set(merged["unjoined_rows"]) == {
        "interruption_frequency: no pool of that (InstanceType, Region)",
        "ondemand: no pool of that (InstanceType, Region)",
    }


class AdvisorWithoutRegion(SimulatedAwsApi):
    """The simulated advisor document with one region's entries gone."""

    missing_region: str = "eu-west-1"

    def spot_advisor_document(self, window_start: datetime) -> bytes:
        document = json.loads(super().spot_advisor_document(window_start))
        del document["spot_advisor"][self.missing_region]
        return json.dumps(document).encode()


def test_an_advisor_without_a_workload_region_fails_naming_it(day_built: LocalLake) -> None:
    region = sorted(read_frame(day_built, keys.zones_key("aws", DAY))["Region"])[0]
    api = AdvisorWithoutRegion(seed=11, scale=0.03, missing_region=region)
    result = dg.materialize(
        aws_assets,
        selection=["aws/interruption_frequency"],
        partition_key=WINDOWS[0],
        resources={**resources(day_built), "aws_api": api},
    )
    check = next(e for e in result.get_asset_check_evaluations() if e.check_name == "covers_workload_regions")
    assert (check.passed, check.severity) == (False, dg.AssetCheckSeverity.WARN)
    assert check.metadata["missing_regions"].value == [region]
    assert checks(run(day_built, ["aws/interruption_frequency"], WINDOWS[0])) == {
        "aws/interruption_frequency:unique_keys": True,
        "aws/interruption_frequency:covers_workload_regions": True,
    }


def test_sps_api_calls_count_every_attempt(local_lake: LocalLake) -> None:
    """Rotations and throttle retries are calls too: 2 queries, 1 exhausted credential, 3 throttles."""
    first_key = simulated_credentials(5, 7)[0].access_key_id
    api = ScriptedAwsApi(exhausted_keys=[first_key], throttle_first_attempts=2)
    dg.materialize(
        aws_assets, selection=["aws/workload"], partition_key=DAY, resources=scripted(local_lake, api)
    )
    result = dg.materialize(
        aws_assets,
        selection=["aws/sps"],
        partition_key=WINDOWS[0],
        resources=scripted(local_lake, api),
        run_config=FAST_SPS,
    )
    sps = metadata(result, "aws/sps")
    # c5.xlarge: MaxConfigLimitExceeded on the first key, throttled once, answered; m5.large: throttled
    # twice, answered.
    assert (sps["api_calls"], sps["credential_rotations"], sps["throttle_retries"]) == (6, 1, 3)


def test_workload_reports_the_optimality_gap(local_lake: LocalLake, monkeypatch: pytest.MonkeyPatch) -> None:
    def one_region_per_query(weights: Any, capacity: int = 10, time_limit_s: float = 2.0) -> PackingResult:
        bins = tuple((region,) for region in sorted(weights))
        return PackingResult(bins=bins, status="FEASIBLE", lower_bound=1, solve_seconds=0.0)

    monkeypatch.setattr(workload, "pack_regions", one_region_per_query)
    result = dg.materialize(
        aws_assets,
        selection=["aws/workload"],
        partition_key=DAY,
        resources=scripted(local_lake, ScriptedAwsApi()),
    )
    built = metadata(result, "aws/workload")
    # Two types over two regions: 4 queries where 2 would do.
    assert (built["queries"], built["lower_bound"], built["optimality_gap"]) == (4, 2, 1.0)


def test_damaged_checkpoint_and_ledger_are_moved_aside_and_named(
    day_built: LocalLake, caplog: pytest.LogCaptureFixture
) -> None:
    lake = day_built
    first = run(lake, ["aws/sps"], WINDOWS[0])
    damaged = lake.list_keys(keys.sps_checkpoint_prefix("aws", WINDOWS[0]))[0]
    lake.write_bytes(damaged, b"")
    lake.write_bytes(keys.credential_map_key("aws", DAY), b"{ cut short")
    again = run(lake, ["aws/sps"], WINDOWS[0])
    sps = metadata(again, "aws/sps")
    (moved,) = sps["checkpoints_moved_aside"]
    assert moved.startswith(lake.location(damaged) + " → ")
    (ledger,) = sps["ledger_moved_aside"]
    assert ledger.startswith(lake.location(keys.credential_map_key("aws", DAY)) + " → ")
    assert sps["groups_resumed"] == sps["credential_groups"] - 1 and sps["api_calls"] > 0
    sps_key = keys.sps_key("aws", WINDOWS[0], capacity_for_window(WINDOWS[0]))
    assert metadata(first, "aws/sps")["rows"] == sps["rows"] == len(read_frame(lake, sps_key))
    assert f"checkpoint {damaged} is damaged" in caplog.text
    assert "credential ledger" in caplog.text and "is damaged" in caplog.text
