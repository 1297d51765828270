"""The per-day SPS configuration ledger: never over budget, never spent twice, rolling 24 hours."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from spotlake_assets.aws_single.budget import (
    EXHAUSTED,
    REPEAT,
    SPENT,
    WINDOWS_PER_DAY,
    ConfigurationLedger,
    configuration_id,
    decide,
)
from spotlake_assets.storage.lake import LocalLake


def test_decide_counts_the_rolling_day() -> None:
    recent = {"old": 10, "fresh": 100}
    window = 10 + WINDOWS_PER_DAY  # "old" has just left the rolling 24 hours, "fresh" has not
    assert decide({}, recent, "fresh", window, 2) == REPEAT
    assert decide({}, recent, "old", window, 2) == SPENT
    assert decide({"x": window}, recent, "y", window, 2) == EXHAUSTED


def test_concurrent_runs_never_exceed_the_budget_nor_spend_twice(local_lake: LocalLake) -> None:
    ledger = ConfigurationLedger(local_lake, "2026-03-02", "2026-03-01", budget=5)
    configs = [configuration_id(f"m{i}.large", ("us-east-1", "eu-west-1"), 1) for i in range(8)] * 3
    with ThreadPoolExecutor(6) as pool:
        verdicts = list(pool.map(lambda cfg: ledger.admit(cfg, 1000), configs))
    assert verdicts.count(SPENT) == 5
    assert ledger.used(1000) == 5
    assert configuration_id("a", ("b", "a"), 5) == configuration_id("a", ("a", "b"), 5)
