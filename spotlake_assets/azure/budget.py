"""Persisted SPS state: the call budget per (subscription, calling location), quarantines, and the regions
and sizes the API has rejected. Kept in the lake under ``state/azure/`` and updated with conditional writes
(create-only, then ETag compare-and-swap), so parallel batches, concurrent runs and retried runs on other
machines never spend one endpoint's budget twice.

Budget rule (SpotLake's, kept): fewer than 10 calls per (subscription, location) in any 62 minutes, i.e. at
most `CALLS_PER_ENDPOINT` timestamps newer than ``now - BUDGET_HORIZON``. An endpoint that answered "maximum
number of requests" is quarantined until ``now + QUARANTINE``. Slots are taken before the call and never
given back: a slot reserved for a call that was not made errs on the safe side.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_random

from spotlake_assets.azure.constants import BUDGET_HORIZON, CALLS_PER_ENDPOINT, PROVIDER, QUARANTINE
from spotlake_assets.azure.models import Endpoint
from spotlake_assets.lake.errors import CorruptLakeFile, PreconditionFailed
from spotlake_assets.lake.resources import LakeResource

BUDGET_KEY = f"state/{PROVIDER}/sps_budget.json"
INVALID_KEY = f"state/{PROVIDER}/sps_invalid.json"

T = TypeVar("T")


class _LostRace(Exception):
    pass


def _endpoint_key(endpoint: Endpoint) -> str:
    return f"{endpoint.subscription}|{endpoint.location}"


def _parse_time(value: Any, location: str) -> datetime:
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError as exc:
        raise CorruptLakeFile(location, f"bad timestamp {value!r}") from exc
    if moment.tzinfo is None:
        raise CorruptLakeFile(location, f"timestamp {value!r} has no time zone")
    return moment


class _JsonState:
    """One JSON object in the lake, changed only by compare-and-swap."""

    def __init__(self, lake: LakeResource, key: str) -> None:
        self._lake = lake
        self._key = key
        self._lock = threading.Lock()

    @property
    def location(self) -> str:
        return self._lake.location(self._key)

    def read(self) -> tuple[dict[str, Any], str | None]:
        head = self._lake.head(self._key)
        if head is None:
            return {}, None
        try:
            document = json.loads(self._lake.read_bytes(self._key))
        except ValueError as exc:
            raise CorruptLakeFile(self.location, f"not JSON ({exc})") from exc
        if not isinstance(document, dict):
            raise CorruptLakeFile(self.location, "not a JSON object")
        return document, head.etag

    def _attempt(self, mutate: Callable[[dict[str, Any]], T]) -> T:
        document, etag = self.read()
        result = mutate(document)
        data = json.dumps(document, sort_keys=True, separators=(",", ":")).encode()
        try:
            if etag is None:
                self._lake.write_bytes(self._key, data, create_only=True)
            else:
                self._lake.write_bytes(self._key, data, if_match=etag)
        except PreconditionFailed as exc:
            # Another writer got in between our read and write: re-read and decide again.
            raise _LostRace() from exc
        return result

    def update(self, mutate: Callable[[dict[str, Any]], T]) -> T:
        retrying = Retrying(
            retry=retry_if_exception_type(_LostRace),
            stop=stop_after_attempt(30),
            wait=wait_random(0, 0.1),
            reraise=True,
        )
        with self._lock:
            result: T = retrying(self._attempt, mutate)
        return result


@dataclass(frozen=True)
class BudgetView:
    """How much budget is left at one moment (for metadata and for deciding to stop)."""

    endpoints: int
    calls_made: int  # within the horizon
    calls_left: int
    quarantined: tuple[str, ...]
    exhausted: int  # endpoints with no call left


class EndpointBudget:
    """The persisted call budget and quarantine of every (subscription, calling location)."""

    def __init__(
        self, lake: LakeResource, *, limit: int = CALLS_PER_ENDPOINT, horizon: Any = BUDGET_HORIZON
    ) -> None:
        self._state = _JsonState(lake, BUDGET_KEY)
        self.limit = limit
        self.horizon = horizon
        self.quarantine_period = QUARANTINE

    def _clean(
        self, document: dict[str, Any], now: datetime
    ) -> tuple[dict[str, list[datetime]], dict[str, datetime]]:
        location = self._state.location
        calls_doc = document.get("calls", {})
        quarantine_doc = document.get("quarantine", {})
        if not isinstance(calls_doc, dict) or not isinstance(quarantine_doc, dict):
            raise CorruptLakeFile(location, "'calls' and 'quarantine' must be objects")
        oldest = now - self.horizon
        calls: dict[str, list[datetime]] = {}
        for key, stamps in calls_doc.items():
            if not isinstance(stamps, list):
                raise CorruptLakeFile(location, f"calls[{key!r}] is not a list")
            # Later timestamps (a replay of an older window) still count: never spend a slot twice.
            kept = [t for t in (_parse_time(s, location) for s in stamps) if t > oldest]
            if kept:
                calls[key] = kept
        quarantine = {
            key: until
            for key, until in ((k, _parse_time(v, location)) for k, v in quarantine_doc.items())
            if until > now
        }
        return calls, quarantine

    @staticmethod
    def _store(
        document: dict[str, Any], calls: dict[str, list[datetime]], quarantine: dict[str, datetime]
    ) -> None:
        document["calls"] = {k: sorted(t.isoformat() for t in v) for k, v in sorted(calls.items())}
        document["quarantine"] = {k: v.isoformat() for k, v in sorted(quarantine.items())}

    def reserve(self, endpoints: Sequence[Endpoint], count: int, now: datetime) -> list[Endpoint]:
        """Take up to ``count`` call slots at ``now``, spreading them over the endpoints with the most left.

        Returns fewer (possibly none) when the budget runs out; each returned endpoint may be called once.
        """
        if count <= 0:
            return []

        def mutate(document: dict[str, Any]) -> list[Endpoint]:
            calls, quarantine = self._clean(document, now)
            left = {
                endpoint: self.limit - len(calls.get(_endpoint_key(endpoint), []))
                for endpoint in sorted(set(endpoints))
                if _endpoint_key(endpoint) not in quarantine
            }
            granted: list[Endpoint] = []
            while len(granted) < count:
                # Most calls left first, then a stable order: consecutive windows spread over every endpoint.
                best = max(
                    left.items(),
                    key=lambda item: (item[1], item[0].location, item[0].subscription),
                    default=None,
                )
                if best is None or best[1] <= 0:
                    break
                granted.append(best[0])
                left[best[0]] -= 1
                calls.setdefault(_endpoint_key(best[0]), []).append(now)
            self._store(document, calls, quarantine)
            return granted

        return self._state.update(mutate)

    def quarantine(self, endpoint: Endpoint, now: datetime) -> None:
        def mutate(document: dict[str, Any]) -> None:
            calls, quarantine = self._clean(document, now)
            quarantine[_endpoint_key(endpoint)] = now + self.quarantine_period
            self._store(document, calls, quarantine)

        self._state.update(mutate)

    def view(self, endpoints: Iterable[Endpoint], now: datetime) -> BudgetView:
        document, _ = self._state.read()
        calls, quarantine = self._clean(document, now)
        wanted = sorted(set(endpoints))
        left = [
            0 if _endpoint_key(e) in quarantine else max(0, self.limit - len(calls.get(_endpoint_key(e), [])))
            for e in wanted
        ]
        return BudgetView(
            endpoints=len(wanted),
            calls_made=sum(len(calls.get(_endpoint_key(e), [])) for e in wanted),
            calls_left=sum(left),
            quarantined=tuple(e.label for e in wanted if _endpoint_key(e) in quarantine),
            exhausted=sum(1 for n in left if n == 0),
        )


@dataclass
class InvalidValues:
    regions: dict[str, str] = field(default_factory=dict)  # name → when learned (ISO)
    sizes: dict[str, str] = field(default_factory=dict)


class InvalidRegistry:
    """Regions and sizes the SPS API rejected, learned from its error messages and never planned again."""

    def __init__(self, lake: LakeResource) -> None:
        self._state = _JsonState(lake, INVALID_KEY)

    def _parse(self, document: dict[str, Any]) -> InvalidValues:
        regions, sizes = document.get("regions", {}), document.get("sizes", {})
        if not isinstance(regions, dict) or not isinstance(sizes, dict):
            raise CorruptLakeFile(self._state.location, "'regions' and 'sizes' must be objects")
        return InvalidValues(
            {str(k): str(v) for k, v in regions.items()}, {str(k): str(v) for k, v in sizes.items()}
        )

    def load(self) -> InvalidValues:
        document, _ = self._state.read()
        return self._parse(document)

    def learn(self, regions: Iterable[str], sizes: Iterable[str], now: datetime) -> None:
        new_regions, new_sizes = sorted(set(regions)), sorted(set(sizes))
        if not new_regions and not new_sizes:
            return

        def mutate(document: dict[str, Any]) -> None:
            known = self._parse(document)
            for name in new_regions:
                known.regions.setdefault(name, now.isoformat())
            for name in new_sizes:
                known.sizes.setdefault(name, now.isoformat())
            document["regions"] = dict(sorted(known.regions.items()))
            document["sizes"] = dict(sorted(known.sizes.items()))

        self._state.update(mutate)
