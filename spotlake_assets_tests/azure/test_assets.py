"""Tier 3: `materialize()` over the Azure graph on a temporary lake with the simulated Azure."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import dagster as dg
import pandas as pd
import pytest

from spotlake_assets.azure.budget import EndpointBudget
from spotlake_assets.azure.constants import FEATURE_COLUMNS, KEY_COLUMNS, MERGED_COLUMNS
from spotlake_assets.azure.credentials import AzureCredentials, simulated_login
from spotlake_assets.azure.definitions import azure_assets, definitions
from spotlake_assets.azure.demo import azure_summary_lines
from spotlake_assets.azure.models import Endpoint, PlacementScore
from spotlake_assets.azure.simulation import SimulatedAzureApi
from spotlake_assets.azure.workload import requests_from_frame
from spotlake_assets.domain.windows import capacity_for_window, window_start
from spotlake_assets.sinks.timestream import LocalTimestream
from spotlake_assets.storage import keys
from spotlake_assets.storage.frames import read_frame, write_frame
from spotlake_assets.storage.lake import LocalLake
from spotlake_assets_tests.azure.fakes import ScriptedAzureApi

DAY = "2026-03-01"
WINDOWS = ["2026-03-01-00:00", "2026-03-01-00:10", "2026-03-01-00:20"]
WINDOW_ASSETS = [
    "azure/sps",
    "azure/interruption_frequency",
    "azure/price",
    "azure/merged",
    "azure/delta",
    "azure/history",
    "azure/timestream",
    "azure/latest",
]
FAST = {"ops": {"azure__sps": {"config": {"backoff_s": 0.001, "max_wait_s": 0.001}}}}
SUBSCRIPTIONS = 4


def resources(lake: LocalLake, **api: Any) -> dict[str, Any]:
    return {
        "lake": lake,
        "timestream": LocalTimestream(root=lake.root),
        "azure_api": SimulatedAzureApi(seed=11, scale=0.1, **api),
        "azure_credentials": AzureCredentials(
            source="simulated", simulated_subscriptions=SUBSCRIPTIONS, seed=11
        ),
    }


def run(
    lake: LocalLake, selection: Sequence[str], partition: str, *, raise_on_error: bool = True, **api: Any
) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        azure_assets,
        selection=list(selection),
        partition_key=partition,
        resources=resources(lake, **api),
        run_config=FAST if "azure/sps" in selection else None,
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


@pytest.fixture
def day_built(local_lake: LocalLake) -> LocalLake:
    run(local_lake, ["azure/workload"], DAY)
    return local_lake


def test_day_then_windows_end_to_end(day_built: LocalLake) -> None:
    lake = day_built
    workload = requests_from_frame(read_frame(lake, keys.workload_key("azure", DAY)))
    assert workload and all(len(r.regions) <= 8 and len(r.sizes) <= 5 for r in workload)
    results = [run(lake, WINDOW_ASSETS, w) for w in WINDOWS]
    for window, result in zip(WINDOWS, results, strict=True):
        assert all(checks(result).values()), checks(result)
        assert lake.exists(keys.sps_key("azure", window, capacity_for_window(window)))
        sps = metadata(result, "azure/sps")
        assert sps["simulated"] is True and sps["uncovered_requests"] == 0
        endpoints = SUBSCRIPTIONS * len(read_frame(lake, keys.sps_locations_key("azure", DAY)))
        assert 0 < sps["budget_used"] <= 9 * endpoints
    merged = read_frame(lake, keys.merged_key("azure", WINDOWS[-1]))
    assert tuple(merged.columns) == MERGED_COLUMNS and not merged.duplicated(list(KEY_COLUMNS)).any()
    first, second = metadata(results[0], "azure/delta"), metadata(results[1], "azure/delta")
    assert first["rows"] == metadata(results[0], "azure/merged")["rows"]
    # The second delta holds exactly the rows whose features differ between the two merged snapshots.
    before, after = (
        read_frame(lake, keys.merged_key("azure", w)).astype({c: str for c in KEY_COLUMNS})
        for w in WINDOWS[:2]
    )
    joined = before.merge(after, on=list(KEY_COLUMNS), how="outer", suffixes=("_0", "_1"), indicator=True)
    differs = joined["_merge"] != "both"
    for feature in FEATURE_COLUMNS:
        differs |= joined[f"{feature}_0"] != joined[f"{feature}_1"]
    assert second["rows"] == int(differs.sum()) > 0
    assert second["rows"] < len(after)  # Time changed for every row; only real changes are published
    latest = json.loads(lake.read_bytes(keys.latest_key("azure")))
    assert len(latest) == len(merged) and latest[0]["Time"] == "2026-03-01 00:20:00"
    assert len(lake.list_keys("history/azure/")) == 3
    assert metadata(results[1], "azure/timestream")["rows"] == second["rows"]


def test_rerunning_a_window_spends_no_calls_and_duplicates_nothing(day_built: LocalLake) -> None:
    lake = day_built
    run(lake, WINDOW_ASSETS, WINDOWS[0])
    before = {k: lake.read_bytes(k) for k in lake.list_keys("") if not k.startswith("timestream/")}
    again = run(lake, WINDOW_ASSETS, WINDOWS[0])
    sps = metadata(again, "azure/sps")
    assert sps["api_calls"] == 0 and sps["batches_resumed"] == sps["batches"]
    assert metadata(again, "azure/history")["status"].startswith("already written")
    after = {k: lake.read_bytes(k) for k in lake.list_keys("") if not k.startswith("timestream/")}
    assert after.keys() == before.keys()
    for prefix in ("history/", "state/", "latest_data/", "delta/", "merged/"):
        assert {k: v for k, v in after.items() if k.startswith(prefix)} == {
            k: v for k, v in before.items() if k.startswith(prefix)
        }


def test_budget_exhaustion_materializes_what_was_collected_and_names_the_rest(day_built: LocalLake) -> None:
    lake = day_built
    locations = read_frame(lake, keys.sps_locations_key("azure", DAY))["Location"]
    login = simulated_login(SUBSCRIPTIONS, 11)
    endpoints = [Endpoint(s, loc) for s in login.subscriptions for loc in locations]
    # Earlier windows used all but 6 calls of the hour.
    moment = SimulatedAzureApi().now(window_start(WINDOWS[0]))
    EndpointBudget(lake).reserve(endpoints, 9 * len(endpoints) - 6, moment)
    result = run(
        lake, WINDOW_ASSETS, WINDOWS[0], busy_endpoint_rate=0.0, throttle_rate=0.0, transient_rate=0.0
    )
    sps = metadata(result, "azure/sps")
    assert sps["budget_exhausted"] is True and sps["api_calls"] == 6 and sps["rows"] > 0
    assert sps["uncovered_requests"] > 0 and {u["why"] for u in sps["uncovered"].values()} == {
        "no (subscription, location) has SPS budget left"
    }
    # Named against the plan: each uncovered request with its locations and sizes.
    assert all(u["regions"] and u["sizes"] for u in sps["uncovered"].values())
    assert sps["uncovered_pairs"] > 0
    assert checks(result)["azure/sps:covers_workload"] is False
    assert checks(result)["azure/merged:unique_keys"] is True  # the window still merges what it has


def test_next_day_plan_excludes_learned_invalid_values(day_built: LocalLake) -> None:
    lake = day_built
    result = run(lake, WINDOW_ASSETS[:1], WINDOWS[0])
    learned = metadata(result, "azure/sps")
    invalid = set(learned["learned_invalid_regions"]) | set(learned["learned_invalid_sizes"])
    assert "jioindiacentral" in invalid
    tomorrow = run(lake, ["azure/workload"], "2026-03-02")
    assert metadata(tomorrow, "azure/workload")["excluded_pairs"] > 0
    requests = requests_from_frame(read_frame(lake, keys.workload_key("azure", "2026-03-02")))
    assert not invalid & {v for r in requests for v in (*r.regions, *r.sizes)}
    universe = read_frame(lake, keys.workload_universe_key("azure", "2026-03-02"))
    assert not universe.loc[universe["Region"] == "jioindiacentral", "Planned"].any()


def test_past_windows_are_skipped_when_azure_cannot_observe_them(day_built: LocalLake) -> None:
    result = run(day_built, WINDOW_ASSETS[:3], WINDOWS[0], replay_past=False)
    assert result.get_asset_materialization_events() == []
    observed = [
        e.asset_observation_data.asset_observation for e in result.all_events if e.is_asset_observation
    ]
    assert {o.asset_key.to_user_string() for o in observed} == {
        "azure/sps",
        "azure/interruption_frequency",
        "azure/price",
    }
    assert not any(checks(result).values())


def test_a_price_page_that_keeps_failing_fails_the_asset_with_its_url(day_built: LocalLake) -> None:
    result = run(
        day_built, ["azure/price"], WINDOWS[0], raise_on_error=False, failing_price_regions=["eastus"]
    )
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    data = failure.step_failure_data
    assert data is not None and data.user_failure_data is not None
    assert "armRegionName eq 'eastus'" in (data.user_failure_data.description or "")


def test_jobs_and_schedules_run_the_day_and_a_window(local_lake: LocalLake) -> None:
    defs = definitions(running=False).definitions(resources(local_lake))
    daily = defs.resolve_job_def("azure_daily_job").execute_in_process(partition_key=DAY)
    window = defs.resolve_job_def("azure_window_job").execute_in_process(
        partition_key=WINDOWS[0], run_config=FAST
    )
    assert daily.success and window.success
    materialized = {
        e.asset_key.to_user_string() for e in window.get_asset_materialization_events() if e.asset_key
    }
    assert materialized == set(WINDOW_ASSETS)
    lines = azure_summary_lines(
        {"azure/workload": metadata(daily, "azure/workload")},
        [(WINDOWS[0], {a: metadata(window, a) for a in ("azure/sps", "azure/merged", "azure/delta")})],
    )
    assert "SPS requests" in lines[0] and lines[2].startswith(f"  {WINDOWS[0]}")
    assert str(metadata(window, "azure/sps")["api_calls"]) in lines[2]
    tick = datetime(2026, 3, 1, 23, 55, tzinfo=UTC)
    schedule = defs.resolve_schedule_def("azure_workload_schedule")
    repository = defs.get_repository_def()
    with dg.build_schedule_context(scheduled_execution_time=tick, repository_def=repository) as context:
        request = schedule.evaluate_tick(context).run_requests[0]  # type: ignore[index]
    assert (request.partition_key, request.run_key) == ("2026-03-02", "azure-workload-2026-03-02")
    window_schedule = defs.resolve_schedule_def("azure_window_schedule")
    tick = datetime(2026, 3, 1, 0, 10, tzinfo=UTC)
    with dg.build_schedule_context(scheduled_execution_time=tick, repository_def=repository) as context:
        request = window_schedule.evaluate_tick(context).run_requests[0]  # type: ignore[index]
    assert (request.partition_key, request.run_key) == ("2026-03-01-00:10", "azure-window-2026-03-01-00:10")


def test_merged_keeps_sps_rows_without_price_when_price_is_missing(day_built: LocalLake) -> None:
    lake = day_built
    run(lake, ["azure/sps", "azure/interruption_frequency"], WINDOWS[0])
    result = dg.materialize(
        azure_assets,
        selection=["azure/merged"],
        partition_key=WINDOWS[0],
        resources=resources(lake),
        run_config={"ops": {"azure__merged": {"config": {"allow_missing_inputs": True}}}},
    )
    merged = read_frame(lake, keys.merged_key("azure", WINDOWS[0]))
    scored = merged[merged["Score"] > 0]
    assert len(scored) == metadata(result, "azure/merged")["sps_rows"] > 0
    assert (scored["SpotPrice"] == -1).all() and (scored["OndemandPrice"] == -1).all()
    # With no price file every scored row is kept unpriced, and the metadata says how many.
    assert metadata(result, "azure/merged")["unpriced_rows"] == len(scored)
    assert checks(result)["azure/merged:inputs_complete"] is False
    assert isinstance(merged["Time"].dtype, pd.DatetimeTZDtype)


def test_rebuilding_a_day_after_its_sps_learned_gives_the_same_plan(day_built: LocalLake) -> None:
    lake = day_built
    day_keys = [keys.workload_key("azure", DAY), keys.workload_universe_key("azure", DAY)]
    before = [read_frame(lake, k) for k in day_keys]
    learned = metadata(run(lake, WINDOW_ASSETS[:1], WINDOWS[0]), "azure/sps")
    invalid = set(learned["learned_invalid_regions"]) | set(learned["learned_invalid_sizes"])
    assert invalid  # the day's own calls taught the registry something …
    rebuilt = run(lake, ["azure/workload"], DAY)
    # … which the day's rebuilt plan ignores (it used to exclude it: a new plan, new rows, HistoryConflict).
    for key, frame in zip(day_keys, before, strict=True):
        pd.testing.assert_frame_equal(read_frame(lake, key), frame)
    assert metadata(rebuilt, "azure/workload")["exclusions_source"] == "reused"
    # The next day's plan leaves it out.
    tomorrow = run(lake, ["azure/workload"], "2026-03-02")
    assert set(metadata(tomorrow, "azure/workload")["excluded_regions"]) >= set(
        learned["learned_invalid_regions"]
    )
    requests = requests_from_frame(read_frame(lake, keys.workload_key("azure", "2026-03-02")))
    assert not invalid & {v for r in requests for v in (*r.regions, *r.sizes)}


def _score_eleven(lake: LocalLake, window: str) -> str:
    key = keys.sps_key("azure", window, capacity_for_window(window))
    frame = read_frame(lake, key)
    frame.loc[0, "Score"] = 11
    write_frame(lake, key, frame)
    return "scores_in_range"


def _unrelated_rates(lake: LocalLake, window: str) -> str:
    key = keys.interruption_frequency_key("azure", window)
    frame = read_frame(lake, key)
    write_frame(lake, key, frame.assign(InstanceType=frame["InstanceType"] + "_renamed"))
    return "join_coverage"


@pytest.mark.parametrize("damage", [_score_eleven, _unrelated_rates])
def test_a_failed_blocking_check_on_merged_stops_delta_and_sinks(day_built: LocalLake, damage: Any) -> None:
    lake = day_built
    run(lake, WINDOW_ASSETS[:3], WINDOWS[0])
    check = damage(lake, WINDOWS[0])
    result = run(lake, WINDOW_ASSETS[3:], WINDOWS[0], raise_on_error=False)
    assert not result.success
    assert checks(result)[f"azure/merged:{check}"] is False
    materialized = {
        e.asset_key.to_user_string() for e in result.get_asset_materialization_events() if e.asset_key
    }
    assert materialized == {"azure/merged"}  # its metadata says why; nothing downstream ran
    assert metadata(result, "azure/merged")["written"] is False
    assert not lake.exists(keys.merged_key("azure", WINDOWS[0]))  # the next window never reads it
    assert lake.list_keys("history/azure/") == [] and not lake.exists(keys.latest_key("azure"))
    assert lake.list_keys("delta/azure/") == []


def test_collapsed_if_coverage_names_the_numbers(day_built: LocalLake) -> None:
    lake = day_built
    run(lake, WINDOW_ASSETS[:3], WINDOWS[0])
    _unrelated_rates(lake, WINDOWS[0])
    result = run(lake, ["azure/merged"], WINDOWS[0], raise_on_error=False)
    evaluation = next(e for e in result.get_asset_check_evaluations() if e.check_name == "join_coverage")
    values: dict[str, Any] = {k: getattr(v, "value", v) for k, v in evaluation.metadata.items()}
    assert values["market_rated"] == 0 and values["market_pairs"] > 0
    assert values["problems"].startswith("IF coverage 0/")


SENT: list[tuple[str, ...]] = []


class RecordingAzureApi(ScriptedAzureApi):
    """Dagster runs a copy of the resource: calls are recorded where the test can see them."""

    def spot_placement_scores(self, *args: Any) -> list[PlacementScore]:
        SENT.append(tuple(args[3]))
        return super().spot_placement_scores(*args)


def test_a_permanent_sps_error_fails_the_asset_at_once_naming_it(day_built: LocalLake) -> None:
    workload = requests_from_frame(read_frame(day_built, keys.workload_key("azure", DAY)))
    SENT.clear()
    api = RecordingAzureApi(permanent=list(workload[0].sizes))
    result = dg.materialize(
        azure_assets,
        selection=["azure/sps"],
        partition_key=WINDOWS[0],
        resources={**resources(day_built), "azure_api": api},
        run_config={
            "ops": {"azure__sps": {"config": {"backoff_s": 0.001, "max_wait_s": 0.001, "workers": 1}}}
        },
        raise_on_error=False,
    )
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    data = failure.step_failure_data
    assert data is not None and data.user_failure_data is not None
    first_line = (data.user_failure_data.description or "").splitlines()[0]
    assert first_line.startswith(f"azure/sps {WINDOWS[0]}: SPS ") and "HTTP 404 (permanent" in first_line
    assert [workload[0].sizes] == SENT  # neither retried nor followed by the rest of the window
    assert day_built.list_keys(keys.sps_checkpoint_prefix("azure", WINDOWS[0])) == []
    assert not any(e.event_type_value == "STEP_UP_FOR_RETRY" for e in result.all_events)
