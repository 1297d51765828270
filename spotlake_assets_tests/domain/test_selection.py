"""Pure tests of the single-account scoring and selection (domain/selection.py)."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest

from spotlake_assets.domain import selection as sel

TYPES = [f"t{i:02d}.large" for i in range(40)]


def costs(seed: int = 0) -> dict[str, int]:
    return {t: 1 + (i * 7 + seed) % 4 for i, t in enumerate(TYPES)}


def scores() -> dict[str, float]:
    return {t: float(i % 9) for i, t in enumerate(TYPES)}


@pytest.mark.parametrize("budget", [0, 1, 3, 7, 20, 50, 500])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_budget_is_never_exceeded(budget: int, seed: int) -> None:
    for top_k, explore, fill in [(4, 2, True), (40, 0, False), (0, 40, True), (100, 100, True)]:
        chosen = sel.select_types(
            scores(), costs(seed), budget=budget, top_k=top_k, explore=explore, seed=seed, fill=fill
        )
        assert chosen.spent <= budget
        assert len(set(chosen.types)) == len(chosen.types)
    assert sel.random_selection(costs(seed), budget=budget, seed=seed).spent <= budget


def test_top_k_are_the_best_scores_and_exploration_comes_from_the_rest() -> None:
    flat = {t: 1 for t in TYPES}
    chosen = sel.select_types(scores(), flat, budget=10, top_k=4, explore=3, seed=5, fill=False)
    top = [c for c in chosen.choices if c.role == sel.TOP]
    explore = [c for c in chosen.choices if c.role == sel.EXPLORE]
    assert [c.score for c in top] == [8.0] * 4
    assert len(explore) == 3 and not {c.instance_type for c in explore} & {c.instance_type for c in top}
    assert chosen.share(sel.EXPLORE) == pytest.approx(3 / 7)
    filled = sel.select_types(scores(), flat, budget=10, top_k=4, explore=3, seed=5, fill=True)
    assert filled.spent == 10 and filled.share(sel.EXPLORE) == pytest.approx(0.3)


def test_exploration_varies_with_the_seed_and_is_reproducible_per_seed() -> None:
    flat = {t: 1 for t in TYPES}
    runs = {s: sel.select_types(scores(), flat, budget=8, top_k=4, explore=4, seed=s) for s in range(6)}
    again = {s: sel.select_types(scores(), flat, budget=8, top_k=4, explore=4, seed=s) for s in range(6)}
    assert runs == again
    explored = {tuple(c.instance_type for c in r.choices if c.role == sel.EXPLORE) for r in runs.values()}
    assert len(explored) > 1
    assert sel.day_seed(7, "2026-03-01") == sel.day_seed(7, "2026-03-01") != sel.day_seed(7, "2026-03-02")


def test_without_history_the_uniform_prior_ranks_by_the_seeded_tie_break() -> None:
    empty = sel.changes_per_day(pd.DataFrame(columns=["InstanceType", "Region", "AZ", "Time"]))
    scored = sel.decayed_scores(empty, date(2026, 3, 1), TYPES)
    assert (scored["Score"] == sel.UNIFORM_PRIOR).all() and not scored["Observed"].any()
    picks = {
        sel.select_types(
            dict(zip(scored["InstanceType"], scored["Score"], strict=True)),
            {t: 1 for t in TYPES},
            budget=5,
            top_k=5,
            explore=0,
            seed=s,
        ).types
        for s in range(5)
    }
    assert len(picks) > 1


def test_unseen_types_rank_at_the_observed_mean_so_quiet_observed_types_give_way() -> None:
    flat = {t: 1 for t in TYPES}
    seen = TYPES[:4]
    scored = {t: 0.0 for t in TYPES} | {seen[0]: 30.0, seen[1]: 10.0, seen[2]: 0.0, seen[3]: 0.0}
    optimistic = sel.select_types(scored, flat, budget=6, top_k=6, explore=0, seed=3, observed=seen)
    # Mean of the observed: 10. The best is kept, the one at the mean ties with the unseen, the quiet go.
    assert optimistic.types[0] == seen[0]
    assert seen[2] not in optimistic.types and seen[3] not in optimistic.types
    assert len(set(optimistic.types) - set(seen)) >= 4
    # Without `observed`, a quiet observed type ties with every unseen one (the uniform prior of 0).
    uniform = [sel.select_types(scored, flat, budget=6, top_k=6, explore=0, seed=s).types for s in range(20)]
    assert any(seen[2] in picked or seen[3] in picked for picked in uniform)
    # Nothing observed: ranking falls back to the scores themselves (the seeded uniform tie-break).
    none_seen = sel.select_types(scored, flat, budget=6, top_k=6, explore=0, seed=3, observed=[])
    assert none_seen == sel.select_types(scored, flat, budget=6, top_k=6, explore=0, seed=3)


def history(rows: list[tuple[str, str, str]]) -> pd.DataFrame:
    return pd.DataFrame(
        [(t, "us-east-1", az, pd.Timestamp(ts, tz="UTC")) for t, az, ts in rows],
        columns=["InstanceType", "Region", "AZ", "Time"],
    )


def test_a_pools_first_row_is_not_a_change_later_rows_are() -> None:
    frame = history(
        [
            ("a", "use1-az1", "2026-03-01 00:00"),
            ("a", "use1-az1", "2026-03-01 05:00"),
            ("a", "use1-az1", "2026-03-02 05:00"),
            ("a", "use1-az2", "2026-03-01 00:00"),
            ("b", "use1-az1", "2026-03-02 00:00"),
        ]
    )
    counts = sel.changes_per_day(frame)
    assert counts.to_dict("records") == [
        {"Day": "2026-03-01", "InstanceType": "a", "Changes": 1},
        {"Day": "2026-03-02", "InstanceType": "a", "Changes": 1},
    ]


@pytest.mark.parametrize("decay", [0.25, 0.5, 1.0])
def test_decay_weighs_each_day_of_age(decay: float) -> None:
    changes = pd.DataFrame(
        {
            "Day": ["2026-03-03", "2026-03-02", "2026-03-01", "2026-03-04"],
            "InstanceType": ["a", "a", "b", "a"],
            "Changes": [4, 8, 16, 99],
        }
    )
    scored = sel.decayed_scores(changes, date(2026, 3, 3), ["a", "b", "c"], decay).set_index("InstanceType")
    assert scored.loc["a", "Score"] == pytest.approx(4 + 8 * decay)  # the day after as_of is ignored
    assert scored.loc["b", "Score"] == pytest.approx(16 * decay**2)
    assert scored.loc["c", "Score"] == 0.0 and not scored.loc["c", "Observed"]
    with pytest.raises(ValueError, match="decay"):
        sel.decayed_scores(changes, date(2026, 3, 3), ["a"], 0.0)
