"""Column names shared by the pandas transforms and the frame declarations, kept apart from the transforms so
that declaring a frame (which loading the definitions does) does not import numpy and pandas."""

from __future__ import annotations

from collections.abc import Mapping

CEASED_COLUMN = "Ceased"
# Score column → the column naming the capacity it was measured at.
SCORE_CAPACITY_COLUMNS: Mapping[str, str] = {"SPS": "SPSCapacity", "Score": "ScoreCount"}
