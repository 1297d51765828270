"""A scripted `AwsApi` for collector tests: every answer and failure is chosen by the test."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pydantic import PrivateAttr

from spotlake_assets.aws.models import (
    AvailabilityZone,
    ConfigLimitExceeded,
    Credential,
    MalformedResponse,
    Offering,
    OndemandQuote,
    SpotPriceQuote,
    SpsScore,
    Throttled,
)
from spotlake_assets.aws.resources import AwsApi

ZONES = {
    "us-east-1": [("us-east-1a", "use1-az6"), ("us-east-1b", "use1-az1"), ("us-east-1c", "use1-az2")],
    "eu-west-1": [("eu-west-1a", "euw1-az1"), ("eu-west-1b", "euw1-az2")],
}


class ScriptedAwsApi(AwsApi):
    exhausted_keys: list[str] = []
    throttle_every_call: bool = False
    throttle_first_attempts: int = 0
    malformed_type: str | None = None
    replay_past: bool = True

    _calls: list[tuple[str, str]] = PrivateAttr(default_factory=list)
    _attempts: dict[str, int] = PrivateAttr(default_factory=dict)
    _lock: Any = PrivateAttr(default_factory=threading.Lock)

    @property
    def simulated(self) -> bool:
        return True

    @property
    def observes_past(self) -> bool:
        return self.replay_past

    @property
    def calls(self) -> list[tuple[str, str]]:
        return self._calls

    def regions(self) -> list[str]:
        return sorted(ZONES)

    def availability_zones(self, region: str) -> list[AvailabilityZone]:
        return [AvailabilityZone(region, name, zid) for name, zid in ZONES[region]]

    def instance_type_offerings(self, region: str) -> list[Offering]:
        return [Offering(t, region, zid) for t in ("m5.large", "c5.xlarge") for _, zid in ZONES[region]]

    def spot_placement_scores(
        self,
        credential: Credential,
        instance_type: str,
        regions: Sequence[str],
        capacity: int,
        window_start: datetime,
    ) -> list[SpsScore]:
        with self._lock:
            self._calls.append((credential.access_key_id, instance_type))
            attempt_key = f"{instance_type}:{','.join(regions)}"
            self._attempts[attempt_key] = self._attempts.get(attempt_key, 0) + 1
            attempt = self._attempts[attempt_key]
        if credential.access_key_id in self.exhausted_keys:
            raise ConfigLimitExceeded(credential.label)
        if self.throttle_every_call or attempt <= self.throttle_first_attempts:
            raise Throttled("RequestLimitExceeded")
        if instance_type == self.malformed_type:
            raise MalformedResponse(
                "GetSpotPlacementScores",
                "AvailabilityZoneId",
                None,
                {"InstanceType": instance_type},
                "missing",
            )
        return [
            SpsScore(instance_type, region, zid, 1 + (len(instance_type) + i) % 10)
            for region in regions
            for i, (_, zid) in enumerate(ZONES[region])
        ]

    def spot_prices(self, region: str, window_start: datetime) -> list[SpotPriceQuote]:
        return [SpotPriceQuote("m5.large", name, 0.04) for name, _ in ZONES[region]]

    def ondemand_prices(self, region: str) -> list[OndemandQuote]:
        return [OndemandQuote(region, "m5.large", 0.096)]

    def spot_advisor_document(self, window_start: datetime) -> bytes:
        return b"{}"


class NoOfferingsApi(ScriptedAwsApi):
    """An account where describe_instance_type_offerings answers nothing in every region."""

    def instance_type_offerings(self, region: str) -> list[Offering]:
        return []
