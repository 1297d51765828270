"""Persisted SPS state: the call budget per (subscription, calling location), quarantines, and the regions
and sizes the API has rejected. Kept in the lake under ``state/azure/`` and updated with conditional writes
(create-only, then ETag compare-and-swap), so parallel batches, concurrent runs and retried runs on other
machines never spend one endpoint's budget twice.

Budget rule (SpotLake's, kept): fewer than 10 calls per (subscription, location) in any 62 minutes, i.e. at
most `CALLS_PER_ENDPOINT` timestamps newer than ``now - BUDGET_HORIZON``. An endpoint that answered "maximum
number of requests" is quarantined until ``now + QUARANTINE``. Slots are taken before the call and never
given back: a slot reserved for a call that was not made errs on the safe side.

Self-healing: a state file that is empty, not JSON or breaks its schema (a kill mid-write on a filesystem
without atomic rename, a bad manual edit) is moved aside to ``quarantine/…`` (named in the log and in
`moved_aside`, which the assets put in metadata) and rebuilt empty, instead of failing every rerun. Losing a
budget file forgets recent calls: Azure's own "maximum number of requests" answer then quarantines the
endpoints that are really spent. A file is only ever written after its new content validated.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, time
from typing import Any, TypeVar

from spotlake_assets.azure.constants import BUDGET_HORIZON, CALLS_PER_ENDPOINT, PROVIDER, QUARANTINE
from spotlake_assets.azure.models import Endpoint
from spotlake_assets.domain.windows import day_start
from spotlake_assets.storage import keys
from spotlake_assets.storage.errors import CorruptLakeFile, LakeKeyNotFound, PreconditionFailed
from spotlake_assets.storage.lake import LakeResource
from spotlake_assets.storage.state import Current, Swap, read_current, update

log = logging.getLogger(__name__)

BUDGET_KEY = f"state/{PROVIDER}/sps_budget.json"
INVALID_KEY = f"state/{PROVIDER}/sps_invalid.json"

T = TypeVar("T")


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


def _timestamps(value: Any, location: str, where: str) -> None:
    if not isinstance(value, dict):
        raise CorruptLakeFile(location, f"{where!r} must be an object")
    for stamps in value.values():
        for stamp in stamps if isinstance(stamps, list) else [stamps]:
            _parse_time(stamp, location)


Validator = Callable[[dict[str, Any], str], None]


class _JsonState:
    """One JSON object in the lake, changed only by compare-and-swap (`spotlake_assets.storage.state`);
    damaged content is moved aside."""

    def __init__(self, lake: LakeResource, key: str, validate: Validator) -> None:
        self._lake = lake
        self._key = key
        self._validate = validate
        self._lock = threading.Lock()
        # Damaged versions found, with where they went ("corrupt lake file <where>: <why> → moved to …").
        self.moved_aside: list[str] = []

    @property
    def location(self) -> str:
        return self._lake.location(self._key)

    def _decode(self, data: bytes, location: str) -> dict[str, Any]:
        try:
            document = json.loads(data)
        except ValueError as exc:
            raise CorruptLakeFile(location, f"not JSON ({exc})") from exc
        if not isinstance(document, dict):
            raise CorruptLakeFile(location, "not a JSON object")
        self._validate(document, location)
        return document

    def _damaged(self, exc: CorruptLakeFile, moved: str) -> None:
        log.warning(
            "state file %s is damaged (%s); moved aside to %s, rebuilt empty", self.location, exc, moved
        )
        self.moved_aside.append(f"{exc} → moved to {moved}")

    def read(self) -> dict[str, Any]:
        return read_current(self._lake, self._key, self._decode, self._damaged).value or {}

    def update(self, mutate: Callable[[dict[str, Any]], T]) -> T:
        def change(current: Current[dict[str, Any]]) -> Swap[T]:
            document = dict(current.value or {})
            result = mutate(document)
            # Never store what could not be read back: a bug here would otherwise poison every later run.
            self._validate(document, self.location)
            return Swap(json.dumps(document, sort_keys=True, separators=(",", ":")).encode(), result)

        with self._lock:
            return update(self._lake, self._key, self._decode, change, on_damaged=self._damaged).result


def _validate_budget(document: dict[str, Any], location: str) -> None:
    _timestamps(document.get("calls", {}), location, "calls")
    for key, stamps in document.get("calls", {}).items():
        if not isinstance(stamps, list):
            raise CorruptLakeFile(location, f"calls[{key!r}] is not a list")
    _timestamps(document.get("quarantine", {}), location, "quarantine")


def _validate_invalid(document: dict[str, Any], location: str) -> None:
    _timestamps(document.get("regions", {}), location, "regions")
    _timestamps(document.get("sizes", {}), location, "sizes")


@dataclass(frozen=True)
class BudgetView:
    """How much budget is left at one moment (for metadata and for deciding to stop)."""

    endpoints: int
    calls_made: int  # within the horizon
    calls_left: int
    quarantined: tuple[str, ...]


class EndpointBudget:
    """The persisted call budget and quarantine of every (subscription, calling location)."""

    def __init__(
        self, lake: LakeResource, *, limit: int = CALLS_PER_ENDPOINT, horizon: Any = BUDGET_HORIZON
    ) -> None:
        self._state = _JsonState(lake, BUDGET_KEY, _validate_budget)
        self.limit = limit
        self.horizon = horizon
        self.quarantine_period = QUARANTINE

    @property
    def moved_aside(self) -> list[str]:
        """Damaged budget files moved aside by this object (for metadata)."""
        return list(self._state.moved_aside)

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
        document = self._state.read()
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
        )


@dataclass
class InvalidValues:
    regions: dict[str, str] = field(default_factory=dict)  # name → when learned (ISO)
    sizes: dict[str, str] = field(default_factory=dict)


class InvalidRegistry:
    """Regions and sizes the SPS API rejected, learned from its error messages and left out of the plans of
    later days (each value with the moment it was first learned)."""

    def __init__(self, lake: LakeResource) -> None:
        self._state = _JsonState(lake, INVALID_KEY, _validate_invalid)

    @property
    def moved_aside(self) -> list[str]:
        """Damaged registry files moved aside by this object (for metadata)."""
        return list(self._state.moved_aside)

    def _parse(self, document: dict[str, Any]) -> InvalidValues:
        regions, sizes = document.get("regions", {}), document.get("sizes", {})
        if not isinstance(regions, dict) or not isinstance(sizes, dict):
            raise CorruptLakeFile(self._state.location, "'regions' and 'sizes' must be objects")
        return InvalidValues(
            {str(k): str(v) for k, v in regions.items()}, {str(k): str(v) for k, v in sizes.items()}
        )

    def load(self) -> InvalidValues:
        document = self._state.read()
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


def learned_before(values: InvalidValues, cutoff: datetime) -> InvalidValues:
    """The registry entries first learned strictly before ``cutoff``. Pure."""
    return InvalidValues(
        {k: v for k, v in values.regions.items() if datetime.fromisoformat(v) < cutoff},
        {k: v for k, v in values.sizes.items() if datetime.fromisoformat(v) < cutoff},
    )


def exclusions_key(day: str) -> str:
    """The create-only record of what the day's workload left out, next to the workload itself."""
    return keys.sps_exclusions_key(PROVIDER, day)


@dataclass(frozen=True)
class PlanExclusions:
    """The invalid regions and sizes a day's plan leaves out, and how they were obtained."""

    values: InvalidValues
    # "recorded" (first build), "reused" (a rebuild reads the record) or "re-derived" (the record was
    # damaged and moved aside: derived again from the registry by the same rule).
    source: str
    moved_aside: tuple[str, ...] = ()


def _exclusions_bytes(values: InvalidValues) -> bytes:
    document = {"regions": dict(sorted(values.regions.items())), "sizes": dict(sorted(values.sizes.items()))}
    _validate_invalid(document, "")
    return json.dumps(document, sort_keys=True, indent=1).encode()


def _read_exclusions(lake: LakeResource, key: str) -> InvalidValues:
    location = lake.location(key)
    try:
        document = json.loads(lake.read_bytes(key))
    except ValueError as exc:
        raise CorruptLakeFile(location, f"not JSON ({exc})") from exc
    if not isinstance(document, dict) or set(document) != {"regions", "sizes"}:
        raise CorruptLakeFile(location, "not an object with exactly 'regions' and 'sizes'")
    _validate_invalid(document, location)
    return InvalidValues(dict(document["regions"]), dict(document["sizes"]))


def plan_exclusions(lake: LakeResource, day: str, registry: InvalidRegistry) -> PlanExclusions:
    """What the workload of ``day`` leaves out, identical on every rebuild of that day.

    Rule: the registry entries learned before the day starts (UTC, on the registry's clock — the wall clock
    against Azure, the window clock in the simulation). The plan for D is built at 23:55 on D-1, so that is
    everything known then, and what D's own SPS calls learn only reaches D+1's plan. The set is recorded
    create-only at `exclusions_key` on the first build and read back by every rebuild, so nothing that
    happens to the registry later (more learning, a damaged registry moved aside) changes an existing
    day's plan. A damaged record is moved aside (named) and derived again by the same rule.
    """
    key = exclusions_key(day)
    moved: list[str] = []
    try:
        return PlanExclusions(_read_exclusions(lake, key), "reused", tuple(registry.moved_aside))
    except LakeKeyNotFound:
        source = "recorded"
    except CorruptLakeFile as exc:
        target = lake.move_aside(key, str(exc))
        log.warning("plan exclusions %s are damaged (%s); moved aside to %s", key, exc, target)
        moved.append(f"{exc} → moved to {target}")
        source = "re-derived"
    start = datetime.combine(day_start(day), time(0), tzinfo=UTC)
    values = learned_before(registry.load(), start)
    try:
        lake.write_bytes(key, _exclusions_bytes(values), create_only=True)
    except PreconditionFailed:
        # A concurrent first build recorded it first: that record is the day's.
        values, source = _read_exclusions(lake, key), "reused"
    return PlanExclusions(values, source, tuple(moved + registry.moved_aside))
