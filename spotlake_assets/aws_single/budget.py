"""The account's SPS configuration ledger: one JSON object per UTC day under ``state/aws_single/sps_ledger/``,
changed only by compare-and-swap (`storage/state.update`).

AWS counts distinct configurations (instance type, regions, capacity) over a rolling 24 hours, and asking
again about a configuration already counted is free. The ledger mirrors that: a configuration is recorded
(with the window it was first spent in) *before* the call, so a retried or concurrent run finds it and
spends nothing, and the budget is checked against every configuration spent in the 24 hours before the
window (today's ledger plus yesterday's entries that are still inside the rolling day). A configuration that
does not fit is refused; the collector then stops cleanly.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from spotlake_assets.aws_single.constants import ledger_key
from spotlake_assets.storage.errors import CorruptLakeFile, LakeKeyNotFound
from spotlake_assets.storage.lake import LakeResource
from spotlake_assets.storage.state import Current, Swap, update

WINDOWS_PER_DAY = 144
SPENT = "spent"
REPEAT = "repeat"
EXHAUSTED = "exhausted"


def configuration_id(instance_type: str, regions: tuple[str, ...], capacity: int) -> str:
    return f"{instance_type}|{','.join(sorted(regions))}|{capacity}"


def decide(
    today: Mapping[str, int], recent: Mapping[str, int], configuration: str, window: int, budget: int
) -> str:
    """Pure: `REPEAT` if ``configuration`` is already counted in the rolling 24 h before ``window``, `SPENT`
    if it fits the budget, else `EXHAUSTED`. ``today``/``recent``: configuration → first window spent."""
    live = {c for c, w in {**recent, **today}.items() if window - WINDOWS_PER_DAY < w <= window}
    # Entries of today at a later window (a backfill running behind) still count: never spend twice.
    live |= set(today)
    if configuration in live:
        return REPEAT
    return SPENT if len(live) < budget else EXHAUSTED


def _decode(data: bytes, location: str) -> dict[str, int]:
    try:
        document: Any = json.loads(data)
        spent = document["spent"]
        if not isinstance(spent, dict):
            raise TypeError("spent is not an object")
        return {str(k): int(v) for k, v in spent.items()}
    except (ValueError, KeyError, TypeError) as exc:
        raise CorruptLakeFile(location, f"not an SPS ledger: {exc}") from exc


def _encode(day: str, budget: int, spent: Mapping[str, int]) -> bytes:
    return json.dumps({"day": day, "budget": budget, "spent": dict(sorted(spent.items()))}, indent=1).encode()


@dataclass
class ConfigurationLedger:
    lake: LakeResource
    day: str
    previous_day: str
    budget: int

    def _recent(self) -> dict[str, int]:
        try:
            return _decode(self.lake.read_bytes(ledger_key(self.previous_day)), ledger_key(self.previous_day))
        except (LakeKeyNotFound, CorruptLakeFile):
            return {}

    def admit(self, configuration: str, window: int) -> str:
        """Record ``configuration`` as spent at ``window`` if it fits; the decision (see `decide`)."""
        recent = self._recent()

        def change(current: Current[dict[str, int]]) -> Swap[str]:
            today = current.value or {}
            verdict = decide(today, recent, configuration, window, self.budget)
            if verdict != SPENT:
                return Swap(None, verdict)
            return Swap(_encode(self.day, self.budget, {**today, configuration: window}), verdict)

        return update(self.lake, ledger_key(self.day), _decode, change).result

    def used(self, window: int) -> int:
        """Configurations counted in the 24 hours before ``window`` (today's all count)."""
        try:
            today = _decode(self.lake.read_bytes(ledger_key(self.day)), ledger_key(self.day))
        except LakeKeyNotFound:
            today = {}
        recent = self._recent()
        return len({c for c, w in recent.items() if window - WINDOWS_PER_DAY < w <= window} | set(today))
