"""Tier 1: the authored catalogue and the simulated Azure (deterministic, synthetic, realistic shape)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from spotlake_assets.azure.catalogue import load_catalogue
from spotlake_assets.azure.credentials import simulated_login
from spotlake_assets.azure.models import Endpoint, InvalidRequestValues, MaxRequestsReached
from spotlake_assets.azure.simulation import SimulatedAzureApi

START = datetime(2026, 3, 1, tzinfo=UTC)


def test_catalogue_has_the_advertised_shape() -> None:
    catalogue = load_catalogue()
    public = [r for r in catalogue.regions if not r.sovereign]
    assert 55 <= len(public) <= 65 and any(r.sovereign for r in catalogue.regions)
    assert 250 <= len(catalogue.sizes) <= 400
    assert len({s.series for s in catalogue.sizes.values()}) >= 30
    # Availability differs per region: flagship regions offer far more sizes than restricted ones.
    per_region = {r.code: 0 for r in catalogue.regions}
    for _, region in catalogue.offerings:
        per_region[region] += 1
    assert per_region["eastus"] > 2 * per_region["germanynorth"] > 0
    assert catalogue.sps_invalid_sizes and catalogue.sps_invalid_regions


@pytest.mark.parametrize("scale", [0.1, 0.3])
def test_scaled_catalogue_is_a_stable_subset(scale: float) -> None:
    small, full = load_catalogue(scale), load_catalogue()
    assert set(small.sizes) < set(full.sizes)
    assert len(small.sizes) == pytest.approx(scale * len(full.sizes), rel=0.35)
    assert all(full.offerings[key] == zones for key, zones in small.offerings.items())


def test_same_seed_same_world_other_seed_other_scores() -> None:
    login = simulated_login(2, 7)
    endpoint = Endpoint(login.subscriptions[0], "eastus")
    args = (["eastus", "westeurope"], ["Standard_D2s_v5", "Standard_E8s_v5"], 10, START)

    def scores(seed: int) -> list[str]:
        api = SimulatedAzureApi(seed=seed, throttle_rate=0, transient_rate=0, busy_endpoint_rate=0)
        return [s.score for s in api.spot_placement_scores(login, endpoint, *args)]

    assert scores(7) == scores(7)
    assert any(scores(7) != scores(seed) for seed in range(8, 14))


def test_simulated_api_enforces_the_request_limit_and_names_invalid_values() -> None:
    api = SimulatedAzureApi(seed=3, throttle_rate=0, transient_rate=0, busy_endpoint_rate=0)
    login = simulated_login(1, 3)
    endpoint = Endpoint(login.subscriptions[0], "eastus")
    for _ in range(9):
        api.spot_placement_scores(login, endpoint, ["eastus"], ["Standard_D2s_v5"], 1, START)
    with pytest.raises(MaxRequestsReached):
        api.spot_placement_scores(login, endpoint, ["eastus"], ["Standard_D2s_v5"], 1, START)
    other = Endpoint(login.subscriptions[0], "westus2")
    with pytest.raises(InvalidRequestValues) as error:
        api.spot_placement_scores(login, other, ["eastus", "jioindiacentral"], ["Standard_D2s_v5"], 1, START)
    assert error.value.regions == ("jioindiacentral",) and "desiredLocations" in str(error.value)
