"""The README's single-account section promises defaults, names and guard rails: each is checked here."""

from __future__ import annotations

import re
from pathlib import Path

import dagster as dg
from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition

from spotlake_assets.aws_single import constants as c
from spotlake_assets.aws_single.assets import DailyScoreConfig, LaunchConfig, SelectionConfig, SingleSpsConfig
from spotlake_assets.aws_single.definitions import definitions
from spotlake_assets.aws_single.environment import PORT_VARIABLE, REPORT_FIELDS
from spotlake_assets.domain import selection as sel

ROOT = Path(__file__).resolve().parents[2]


def section() -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index("## For a researcher with one AWS account")
    return text[start : text.index("\n## ", start + 1)]


def test_the_readme_names_match_the_code() -> None:
    text = section()
    defs = definitions()
    for schedule in (
        "aws_single_selection_schedule",
        "aws_single_window_schedule",
        "aws_single_report_schedule",
    ):
        assert schedule in text and schedule in {s.name for s in defs.schedules}
    for variable in [*REPORT_FIELDS.values(), PORT_VARIABLE]:
        assert variable.removeprefix("SPOTLAKE_REPORT_SMTP") in text or variable in text, variable
    assert c.LAUNCH_TAG in text and "state/aws_single/sps_ledger/" in c.ledger_key("2026-03-01")
    assert "make demo MODE=single" in text


def test_the_documented_defaults_are_the_code_defaults() -> None:
    text = section()
    assert sel.DEFAULT_BUDGET == SelectionConfig().budget == SingleSpsConfig().budget == 50
    assert (sel.DEFAULT_DECAY, sel.DEFAULT_LOOKBACK_DAYS, sel.DEFAULT_TOP_K, sel.DEFAULT_EXPLORE) == (
        0.5,
        7,
        4,
        2,
    )
    assert "default 0.5, over 7 days" in text and "top K (default\n  4)" in text and "S (default 2)" in text
    assert SingleSpsConfig().capacity == 1 and "fixed capacity (default 1" in text
    launch = LaunchConfig()
    assert launch.smallest_size and launch.instance_hour_cap == 2.0 and launch.poll_s == 3.0
    assert launch.timeout_s == 600.0 and "default\n2 h" in text
    assert DailyScoreConfig().plot


def test_launch_time_is_in_no_schedule_and_the_sweep_runs_every_30_minutes() -> None:
    defs = definitions()
    launch = dg.AssetKey([c.PREFIX, "launch_time"])
    scheduled: set[dg.AssetKey] = set()
    for schedule in defs.schedules:
        job = schedule.job
        assert isinstance(job, UnresolvedAssetJobDefinition)
        scheduled |= job.selection.resolve(defs.assets)
    assert dg.AssetKey([c.PREFIX, "sps"]) in scheduled and launch not in scheduled
    sweep = next(s for s in defs.schedules if s.name == "aws_single_sweep_schedule")
    assert sweep.cron_schedule == "*/30 * * * *" and re.search(r"every 30 minutes", section())
