"""The synthetic month's drift (`spotlake_assets.legacy.synthetic`): realistic enough to size a benchmark."""

from __future__ import annotations

from spotlake_assets.legacy.synthetic import _Pools


def test_the_pool_count_stays_near_its_start_all_month() -> None:
    # A month is about 4,400 snapshots: pools come and go, but SpotLake's count does not halve, and a
    # "2k-pool month" must hold about 2k rows per snapshot to the end.
    pools = _Pools("aws", 2_000, seed=15)
    start = int(pools.alive.sum())
    alive = []
    for _ in range(31 * 144):
        pools.step()
        alive.append(int(pools.alive.sum()))
    assert start > 0.97 * 2_000
    assert min(alive) > 0.95 * 2_000
    assert len(set(alive)) > 1  # some do come and go
