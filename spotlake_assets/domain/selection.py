"""Adaptive selection of the instance types a single AWS account queries (issue 14). Pure: no Dagster, no I/O.

One account may ask about roughly 50 distinct SPS configurations (instance type, regions, capacity) in 24
hours, so it can follow only a few instance types. The types worth following are the ones whose scores
move: a type whose pools sit at 10 (or 1) all day tells nothing new after its first answer.

Scoring (documented decay):
    score(type, as of day D) = sum over days d <= D of changes(type, d) * decay ** (D - d)
where changes(type, d) counts every change of SPS/IF features (any row of the open history after a pool's
first row: new values, or the pool ceasing) over all the type's regions and AZs on day d. With the default
``decay = 0.5`` a day's changes weigh half as much each day they age, so yesterday dominates but a type that
went quiet for a day is not forgotten at once. Days older than the look-back are not read at all.

Prior: a type with no history at all scores ``prior`` (default 0, i.e. uniform: every unseen type ties with
every other); ties are broken by a seeded random order, so with no history the selection is uniform random.
Once some types have been observed, `select_types` given ``observed`` ranks every unseen type at the mean
score per configuration of the observed ones (optimism under uncertainty): volatility is heavy-tailed across
types (a few change many times more often than the median), so an observed type below the mean is worth less
than an unseen draw and gives its place to one, while the above-mean ones are kept. Without ``observed`` an
observed type that turned out quiet (score 0) ties with the unseen types and can hold its place for days.

Selection: the top K types by score per configuration (a type costs the configurations of its queries, one
per ≤ 10-AZ group of its regions; the budget is counted in configurations, so a type whose score comes from
many AZs must also pay for them; ``per_configuration=False`` ranks by the raw score), each skipped when it
does not fit; then S types drawn at random (seeded) from the rest (exploration); then, with ``fill``, the
next best types while budget remains. The budget is never exceeded: every choice is checked against what
is left.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING

# Run-time modules (pandas, numpy, cloud SDKs) are imported where used: loading the definitions skips them.
if TYPE_CHECKING:
    import pandas as pd

DEFAULT_DECAY = 0.5
DEFAULT_LOOKBACK_DAYS = 7
DEFAULT_BUDGET = 50
DEFAULT_TOP_K = 4
DEFAULT_EXPLORE = 2
UNIFORM_PRIOR = 0.0

TOP = "top"
EXPLORE = "explore"
FILL = "fill"

CHANGE_COLUMNS = ("Day", "InstanceType", "Changes")


def day_seed(seed: int, day: str) -> int:
    """A stable per-day seed (blake2b, never Python's salted hash): a rerun of a day picks the same set, the
    next day explores differently."""
    digest = hashlib.blake2b(f"{seed}\x1f{day}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 1


def changes_per_day(
    history: pd.DataFrame,
    key_columns: Sequence[str] = ("InstanceType", "Region", "AZ"),
    time_column: str = "Time",
) -> pd.DataFrame:
    """History rows (one per pool per window where something changed) → changes per (day, instance type).

    A pool's first row in ``history`` is where it was first seen (a first window writes every pool), not a
    change; every later row is one. Columns `CHANGE_COLUMNS`, Day an ISO date string.
    """
    import pandas as pd

    if history.empty:
        return pd.DataFrame(
            {c: pd.Series(dtype=object if c != "Changes" else "int64") for c in CHANGE_COLUMNS}
        )
    keys = list(key_columns)
    times = pd.to_datetime(history[time_column], utc=True)
    frame = history[keys].astype(str).assign(_time=times).sort_values([*keys, "_time"], kind="stable")
    changed = frame.duplicated(subset=keys, keep="first")
    rows = frame.loc[changed]
    counts = (
        rows.assign(Day=rows["_time"].dt.strftime("%Y-%m-%d"))
        .groupby(["Day", "InstanceType"], sort=True)
        .size()
        .rename("Changes")
        .reset_index()
    )
    counts["Changes"] = counts["Changes"].astype("int64")
    return counts[list(CHANGE_COLUMNS)]


def decayed_scores(
    changes: pd.DataFrame,
    as_of: date,
    universe: Sequence[str],
    decay: float = DEFAULT_DECAY,
    prior: float = UNIFORM_PRIOR,
) -> pd.DataFrame:
    """Score every type of ``universe`` as of ``as_of`` (see the module docstring).

    Returns InstanceType, Score, Changes (undecayed, over the rows given) and Observed (whether any history
    mentions the type), one row per type of ``universe``, sorted by type. Days after ``as_of`` are ignored.
    """
    import numpy as np
    import pandas as pd

    if not 0.0 < decay <= 1.0:
        raise ValueError(f"decay must be in (0, 1], got {decay}")
    types = sorted(set(universe))
    result = pd.DataFrame({"InstanceType": types})
    if changes.empty:
        weighted = pd.Series(dtype="float64")
        raw = pd.Series(dtype="int64")
    else:
        days = pd.to_datetime(changes["Day"]).dt.date
        age = np.array([(as_of - d).days for d in days], dtype="int64")
        usable = changes.loc[age >= 0]
        weights = decay ** age[age >= 0].astype("float64")
        products = usable["Changes"].to_numpy(dtype="float64") * weights
        weighted = pd.Series(products, index=usable.index).groupby(usable["InstanceType"]).sum()
        raw = usable.groupby("InstanceType")["Changes"].sum()
    observed = result["InstanceType"].isin(weighted.index)
    result["Score"] = result["InstanceType"].map(weighted).where(observed, prior).astype("float64")
    result["Changes"] = result["InstanceType"].map(raw).fillna(0).astype("int64")
    result["Observed"] = observed.astype(bool)
    return result


@dataclass(frozen=True)
class Choice:
    instance_type: str
    role: str  # TOP, EXPLORE or FILL
    score: float
    cost: int  # configurations its queries spend


@dataclass(frozen=True)
class Selection:
    choices: tuple[Choice, ...]
    budget: int
    seed: int
    # Types ranked in the top K that did not fit in what was left of the budget.
    skipped_over_budget: tuple[str, ...]

    @property
    def spent(self) -> int:
        return sum(c.cost for c in self.choices)

    @property
    def types(self) -> tuple[str, ...]:
        return tuple(c.instance_type for c in self.choices)

    def share(self, role: str) -> float:
        """The share of the spent configurations that went to ``role`` (0 when nothing was spent)."""
        spent = self.spent
        return sum(c.cost for c in self.choices if c.role == role) / spent if spent else 0.0


def select_types(
    scores: Mapping[str, float],
    costs: Mapping[str, int],
    *,
    budget: int = DEFAULT_BUDGET,
    top_k: int = DEFAULT_TOP_K,
    explore: int = DEFAULT_EXPLORE,
    seed: int = 0,
    fill: bool = True,
    per_configuration: bool = True,
    observed: Collection[str] | None = None,
) -> Selection:
    """Choose types within ``budget`` configurations (see the module docstring). Types without a positive
    cost (nothing to query) are never chosen. Deterministic for given inputs and ``seed``.

    ``observed``: the types with history; the others then rank at the observed types' mean (optimistic
    prior, see the module docstring). None, or no observed candidate: every type ranks by its own score."""
    import numpy as np

    if budget < 0 or top_k < 0 or explore < 0:
        raise ValueError(f"budget, top_k and explore must be non-negative, got {budget}, {top_k}, {explore}")
    candidates = sorted(t for t in scores if costs.get(t, 0) > 0)
    rng = np.random.default_rng(seed)
    # One seeded random key per candidate breaks ties in the ranking (the uniform prior's random order).
    tiebreak = dict(zip(candidates, rng.permutation(len(candidates)).tolist(), strict=True))

    def own_rank(t: str) -> float:
        return scores[t] / costs[t] if per_configuration else scores[t]

    known = set(observed) if observed is not None else set(candidates)
    seen = [t for t in candidates if t in known]
    optimistic = sum(own_rank(t) for t in seen) / len(seen) if seen else None

    def rank(t: str) -> float:
        return own_rank(t) if optimistic is None or t in known else optimistic

    ranked = sorted(candidates, key=lambda t: (-rank(t), tiebreak[t]))
    remaining = budget
    chosen: list[Choice] = []
    taken: set[str] = set()
    skipped: list[str] = []

    def take(instance_type: str, role: str) -> bool:
        nonlocal remaining
        cost = int(costs[instance_type])
        if cost > remaining:
            return False
        remaining -= cost
        taken.add(instance_type)
        chosen.append(Choice(instance_type, role, float(scores[instance_type]), cost))
        return True

    for instance_type in ranked:
        if sum(1 for c in chosen if c.role == TOP) >= top_k:
            break
        if not take(instance_type, TOP):
            skipped.append(instance_type)
    rest = [t for t in candidates if t not in taken]
    explored = 0
    for position in rng.permutation(len(rest)).tolist():
        if explored >= explore:
            break
        if take(rest[position], EXPLORE):
            explored += 1
    if fill:
        for instance_type in ranked:
            if instance_type not in taken:
                take(instance_type, FILL)
    return Selection(tuple(chosen), budget, seed, tuple(skipped))


def random_selection(costs: Mapping[str, int], *, budget: int, seed: int) -> Selection:
    """The baseline: types in a uniformly random (seeded) order, each taken while it fits the budget."""
    import numpy as np

    candidates = sorted(t for t, c in costs.items() if c > 0)
    rng = np.random.default_rng(seed)
    remaining = budget
    chosen: list[Choice] = []
    for position in rng.permutation(len(candidates)).tolist():
        instance_type = candidates[position]
        cost = int(costs[instance_type])
        if cost <= remaining:
            remaining -= cost
            chosen.append(Choice(instance_type, EXPLORE, 0.0, cost))
    return Selection(tuple(chosen), budget, seed, ())


def selection_frame(selection: Selection) -> pd.DataFrame:
    """One row per chosen type: InstanceType, Role, Score, Configurations, Seed (what a rerun reproduces)."""
    import pandas as pd

    return pd.DataFrame(
        {
            "InstanceType": pd.Series([c.instance_type for c in selection.choices], dtype=object),
            "Role": pd.Series([c.role for c in selection.choices], dtype=object),
            "Score": pd.Series([c.score for c in selection.choices], dtype="float64"),
            "Configurations": pd.Series([c.cost for c in selection.choices], dtype="int64"),
            "Seed": pd.Series([selection.seed] * len(selection.choices), dtype="int64"),
        }
    )


def top_k(scores: pd.DataFrame, k: int) -> pd.DataFrame:
    """The ``k`` highest scores (ties by type name), for the daily report."""
    return scores.sort_values(["Score", "InstanceType"], ascending=[False, True], kind="stable").head(k)
