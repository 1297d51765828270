"""Which capacity a published score was measured at: the capacity column, its legacy fill, and that it is
not a feature of the delta."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from spotlake_assets.aws.constants import FEATURE_COLUMNS as AWS_FEATURES
from spotlake_assets.aws.constants import MERGED_COLUMNS as AWS_MERGED
from spotlake_assets.azure.constants import FEATURE_COLUMNS as AZURE_FEATURES
from spotlake_assets.azure.constants import MERGED_COLUMNS as AZURE_MERGED
from spotlake_assets.domain.delta import compute_delta
from spotlake_assets.domain.scores import (
    SCORE_CAPACITY_COLUMNS,
    held_capacity,
    legacy_capacity,
    published_capacity,
    with_score_capacity,
)


def test_each_provider_publishes_the_capacity_beside_its_score_and_never_as_a_feature() -> None:
    for merged, features, score in (
        (AWS_MERGED, AWS_FEATURES, "SPS"),
        (AZURE_MERGED, AZURE_FEATURES, "Score"),
    ):
        column = SCORE_CAPACITY_COLUMNS[score]
        assert merged.index(column) == merged.index(score) + 1
        assert column not in features


@pytest.mark.parametrize(
    ("scores", "expected"),
    [([3, -1, 0, 10], [1, -1, 1, 1]), ([np.nan, 2.0], [-1, 1]), ([], [])],
)
def test_legacy_fill_is_single_node_wherever_there_is_a_score(
    scores: list[float], expected: list[int]
) -> None:
    filled = legacy_capacity(pd.Series(scores, dtype="float64"))
    assert filled.dtype == np.int64 and filled.tolist() == expected


def test_held_capacity_fills_only_what_is_missing() -> None:
    previous = pd.DataFrame({"SPS": [3, 4, -1], "SPSCapacity": [5.0, np.nan, np.nan]})
    assert held_capacity(previous, "SPS").tolist() == [5, 1, -1]
    assert held_capacity(previous.drop(columns=["SPSCapacity"]), "SPS").tolist() == [1, 1, -1]


def test_published_capacity() -> None:
    observed = np.array([True, True, False, True])
    carried = np.array([True, False, False, True])
    positions = np.array([1, -1, 0, 0], dtype=np.intp)
    previous = np.array([7, 1], dtype=np.int64)
    assert published_capacity(25, observed, carried, previous, positions).tolist() == [1, 25, -1, 7]
    none = np.zeros(4, dtype=bool)
    assert published_capacity(1, observed, none, np.empty(0, np.int64), positions).tolist() == [1, 1, -1, 1]


def test_with_score_capacity_inserts_beside_the_score_and_leaves_complete_frames_alone() -> None:
    legacy = pd.DataFrame({"InstanceType": ["a", "b"], "Score": [2, -1], "T3": [0, 0]})
    filled = with_score_capacity(legacy)
    assert list(filled.columns) == ["InstanceType", "Score", "ScoreCount", "T3"]
    assert filled["ScoreCount"].tolist() == [1, -1] and "ScoreCount" not in legacy.columns
    assert with_score_capacity(filled) is filled
    seam = pd.DataFrame({"SPS": [3, 3], "SPSCapacity": [25.0, np.nan]})  # a history read across the seam
    assert with_score_capacity(seam)["SPSCapacity"].tolist() == [25, 1]


def test_a_change_of_capacity_alone_publishes_nothing() -> None:
    keys = ["InstanceType"]
    before = pd.DataFrame({"InstanceType": ["a", "b"], "SPS": [3, 2], "SPSCapacity": [25, 1], "T3": [0, 0]})
    after = before.assign(SPSCapacity=[1, 1])
    assert compute_delta(before, after, keys, ["SPS", "T3"]).empty
    changed = compute_delta(before, after.assign(SPS=[3, 1]), keys, ["SPS", "T3"])
    assert changed["InstanceType"].tolist() == ["b"] and changed["SPSCapacity"].tolist() == [1]
