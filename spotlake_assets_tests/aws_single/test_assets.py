"""Tier 3: `materialize()` of the whole single-account graph on the simulated cloud and a temporary lake."""

from __future__ import annotations

from typing import Any

import dagster as dg
import pandas as pd

from spotlake_assets.aws.credentials import AwsCredentialPool
from spotlake_assets.aws.simulation import SimulatedAwsApi
from spotlake_assets.aws_single import constants as c
from spotlake_assets.aws_single.definitions import definitions
from spotlake_assets.aws_single.notify import ReportNotifier
from spotlake_assets.aws_single.resources import SimulatedEc2Lab
from spotlake_assets.domain.windows import capacity_for_window
from spotlake_assets.storage import keys
from spotlake_assets.storage.frames import read_frame
from spotlake_assets.storage.lake import LocalLake

DAY = "2026-03-01"
WINDOWS = ["2026-03-01-00:00", "2026-03-01-00:10", "2026-03-01-00:20"]


def resources(lake: LocalLake) -> dict[str, Any]:
    return {
        "lake": lake,
        "aws_api": SimulatedAwsApi(seed=11, scale=0.03, exhausted_credential_rate=0.0),
        "aws_credentials": AwsCredentialPool(source="simulated", simulated_size=1, seed=11),
        "aws_ec2": SimulatedEc2Lab(seed=11, scale=0.03),
        "report_notifier": ReportNotifier(),
    }


def select(*names: str) -> dg.AssetSelection:
    return dg.AssetSelection.keys(*(dg.AssetKey(n.split("/")) for n in names))


def metadata(result: dg.ExecuteInProcessResult, key: str) -> dict[str, Any]:
    events = result.asset_materializations_for_node(key.replace("/", "__"))
    return {k: v.value for k, v in events[-1].metadata.items()}


def run_day(lake: LocalLake, budget: int = 50) -> dict[str, dg.ExecuteInProcessResult]:
    assets = definitions().assets
    res = resources(lake)
    out: dict[str, dg.ExecuteInProcessResult] = {}
    out["daily"] = dg.materialize(
        assets,
        selection=select("aws_single/selection", "aws/instance_architectures", "aws/amis"),
        partition_key=DAY,
        resources=res,
        run_config={"ops": {"aws_single__selection": {"config": {"budget": budget}}}},
    )
    sps_config = {"ops": {"aws_single__sps": {"config": {"budget": budget}}}}
    for window in WINDOWS:
        out[window] = dg.materialize(
            assets,
            selection=select(
                "aws_single/sps",
                "aws_single/interruption_frequency",
                "aws_single/merged",
                "aws_single/delta",
                "aws_single/history",
            ),
            partition_key=window,
            resources=res,
            run_config=sps_config,
        )
    out["score"] = dg.materialize(
        assets, selection=select("aws_single/daily_score"), partition_key=DAY, resources=res
    )
    out["launch"] = dg.materialize(
        assets, selection=select("aws_single/launch_time"), partition_key=WINDOWS[-1], resources=res
    )
    out["sweep"] = dg.materialize(assets, selection=select("aws_single/launch_sweep"), resources=res)
    return out


def test_the_whole_single_account_graph_materializes_on_the_simulated_cloud(local_lake: LocalLake) -> None:
    out = run_day(local_lake)
    assert all(r.success for r in out.values())
    selection = read_frame(local_lake, c.selection_key(DAY))
    assert 0 < selection["Configurations"].sum() <= 50
    assert set(selection["Role"]) >= {"top", "explore"}
    picked = metadata(out["daily"], "aws_single/selection")
    assert picked["simulated"] is True and picked["prior"] == "uniform"
    sps = read_frame(local_lake, keys.sps_key(c.PREFIX, WINDOWS[0], 1))
    assert set(sps["InstanceType"]) <= set(selection["InstanceType"]) and len(sps) > 0
    # Same layout as the main pipeline: merged, delta and history under the mode's prefix.
    for window in WINDOWS:
        assert local_lake.exists(keys.merged_key(c.PREFIX, window))
        assert local_lake.exists(keys.history_key(c.PREFIX, window))
    # The first window spends the configurations; later windows repeat them for free.
    first, later = metadata(out[WINDOWS[0]], "aws_single/sps"), metadata(out[WINDOWS[1]], "aws_single/sps")
    assert first["configurations_spent"] == selection["Configurations"].sum()
    assert later["configurations_spent"] == 0 and later["configurations_repeated"] > 0
    # A past window on the simulated cloud is a replay, and says so like the main collectors.
    assert str(first["replay"]).startswith("simulated: a past window replayed")
    report = metadata(out["score"], "aws_single/daily_score")
    assert "single-account report" in report["report"]
    assert report["top_k"], "three windows of history hold changes"
    assert report["plot_top_k"].startswith("![top K by change score](data:image/png;base64,")
    assert report["deliveries"] == {
        "smtp": "skipped: SMTP host, sender or recipients not configured",
        "ses": "skipped: SES region, sender or recipients not configured",
        "slack": "skipped: no webhook configured",
    }
    amis = read_frame(local_lake, c.amis_key(DAY))
    assert set(amis["Architecture"]) == set(c.ARCHITECTURES) and amis["ImageId"].str.startswith("ami-").all()
    launch = read_frame(local_lake, c.launch_time_key(WINDOWS[-1]))
    assert len(launch) == 1 and (launch["LaunchTimeS"] > 0).all() and not launch["TimedOut"].any()
    curve = read_frame(local_lake, c.launch_curve_key(WINDOWS[-1]))
    assert curve["Ready"].iloc[-1] == 1 and curve["ElapsedS"].is_monotonic_increasing
    # The next day's selection reads today's history: unseen types rank at the observed types' mean.
    tomorrow = dg.materialize(
        definitions().assets,
        selection=select("aws_single/selection"),
        partition_key="2026-03-02",
        resources=resources(local_lake),
    )
    picked = metadata(tomorrow, "aws_single/selection")
    assert picked["types_with_history"] > 0
    assert picked["prior"] == "decayed history, unseen at the observed mean"


def test_a_small_budget_stops_cleanly_with_a_note(local_lake: LocalLake) -> None:
    out = run_day(local_lake, budget=3)
    assert out[WINDOWS[0]].success
    sps = metadata(out[WINDOWS[0]], "aws_single/sps")
    assert sps["budget_used"] <= 3
    ledger = pd.read_json(local_lake.root + "/" + c.ledger_key(DAY), typ="series")
    assert len(ledger["spent"]) <= 3


def test_cycling_capacities_is_a_config_and_the_merge_follows_it(local_lake: LocalLake) -> None:
    assets = definitions().assets
    res = resources(local_lake)
    assert dg.materialize(
        assets, selection=select("aws_single/selection"), partition_key=DAY, resources=res
    ).success
    window = "2026-03-01-00:30"  # capacity 5 in the main pipeline's cycle
    done = dg.materialize(
        assets,
        selection=select("aws_single/sps", "aws_single/interruption_frequency", "aws_single/merged"),
        partition_key=window,
        resources=res,
        run_config={"ops": {"aws_single__sps": {"config": {"capacity": 0}}}},
    )
    assert done.success
    capacity = capacity_for_window(window)
    assert capacity != 1 and metadata(done, "aws_single/sps")["target_capacity"] == capacity
    assert local_lake.exists(keys.sps_key(c.PREFIX, window, capacity))
    assert local_lake.exists(keys.merged_key(c.PREFIX, window))
