"""Metadata every asset reports, through a real ``materialize()`` of two assets in one process."""

from __future__ import annotations

import sys

import dagster as dg
import numpy as np
import pytest

from spotlake_assets.orchestration.metrics import Stopwatch
from spotlake_assets.orchestration.reporting import run_metadata

BIG_MIB = 96


@dg.asset
def heavy() -> dg.MaterializeResult[None]:
    watch = Stopwatch()
    block = np.ones(BIG_MIB * 1024 * 1024 // 8)
    rows = int(block.size)
    del block
    return dg.MaterializeResult(metadata=run_metadata(watch, rows=rows, api_calls=0, simulated=True))


@dg.asset(deps=[heavy])
def light() -> dg.MaterializeResult[None]:
    watch = Stopwatch()
    return dg.MaterializeResult(metadata=run_metadata(watch, rows=1, api_calls=0, simulated=True))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RSS sections need /proc/self/clear_refs")
def test_each_asset_reports_its_own_peak_not_an_earlier_assets() -> None:
    result = dg.materialize([heavy, light])
    assert result.success
    heavy_peak, light_peak = (
        result.asset_materializations_for_node(name)[0].metadata["peak_rss_mib"].value
        for name in ("heavy", "light")
    )
    assert isinstance(heavy_peak, float) and isinstance(light_peak, float)
    # `light` runs after `heavy` freed its block: it must not inherit heavy's peak.
    assert light_peak < heavy_peak - BIG_MIB / 2
