"""Collectors asked about a past window say what they did, in the run log and in `replay` metadata: the
simulation replays its past (deterministic, not an observation), a real "now"-only API skips."""

from __future__ import annotations

from typing import Any

import dagster as dg

from spotlake_assets.aws.definitions import aws_assets
from spotlake_assets.storage.lake import LocalLake
from spotlake_assets_tests.aws.test_assets import FAST_SPS, WINDOWS, day_built, resources

__all__ = ["day_built"]  # the fixture, imported for pytest
COLLECTORS = ["aws/sps", "aws/interruption_frequency", "aws/spot_price"]


def collect_past_window(lake: LocalLake, **api: Any) -> tuple[dg.DagsterInstance, dg.ExecuteInProcessResult]:
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize(
        aws_assets,
        selection=COLLECTORS,
        partition_key=WINDOWS[0],
        resources=resources(lake, **api),
        run_config=FAST_SPS,
        instance=instance,
    )
    return instance, result


def test_a_simulated_past_window_is_a_labelled_replay(day_built: LocalLake) -> None:
    instance, result = collect_past_window(day_built)
    for event in result.get_asset_materialization_events():
        materialization = event.event_specific_data.materialization  # type: ignore[union-attr]
        replay = str(materialization.metadata["replay"].value)
        assert replay.startswith("simulated: a past window replayed"), materialization.asset_key
    logged = [r.user_message for r in instance.all_logs(result.run_id) if "replayed from" in r.user_message]
    assert {m.split(" ")[0] for m in logged} == set(COLLECTORS)


def test_a_real_api_skips_a_past_window_and_says_so(day_built: LocalLake) -> None:
    instance, result = collect_past_window(day_built, replay_past=False)
    observations = [
        e.event_specific_data.asset_observation  # type: ignore[union-attr]
        for e in result.all_events
        if e.event_type_value == "ASSET_OBSERVATION"
    ]
    assert {o.asset_key.to_user_string() for o in observations} == {"aws/sps", "aws/interruption_frequency"}
    assert all(str(o.metadata["replay"].value).startswith("skipped") for o in observations)
    logged = [
        r.user_message
        for r in instance.all_logs(result.run_id)
        if "cannot observe the past" in r.user_message
    ]
    assert len(logged) == 2
