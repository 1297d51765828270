"""Persisted SPS quota state: the day's (capacity, group) → credential ledger.

AWS allows each account 50 distinct Spot Placement Score configurations per rolling 24 hours. A query
repeated with the same account costs nothing, so the ledger maps every (capacity, group) of a day to one
credential: the eleven capacities of the cycle each get their own account, and every later window with the
same capacity reuses it. The ledger lives in the lake and is updated with conditional writes, so parallel
groups, concurrent runs and retried runs on other machines never hand one account to two configurations.
(Azure's counterpart, its call budget per endpoint, is `spotlake_assets.azure.budget`.)
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from spotlake_assets.aws.constants import PROVIDER
from spotlake_assets.aws.models import Credential
from spotlake_assets.storage.errors import CorruptLakeFile
from spotlake_assets.storage.keys import credential_map_key
from spotlake_assets.storage.lake import LakeResource
from spotlake_assets.storage.state import Current, Swap, update

log = logging.getLogger(__name__)

R = TypeVar("R")


class CredentialPoolExhausted(RuntimeError):
    """Every credential of the pool is assigned or used up for the day."""


@dataclass
class LedgerState:
    """Assignments of one day: ``"capacity:group"`` → pool index; ``retired``: indices found exhausted."""

    assignments: dict[str, int] = field(default_factory=dict)
    retired: list[int] = field(default_factory=list)

    def to_json(self) -> bytes:
        payload = {"assignments": self.assignments, "retired": sorted(set(self.retired))}
        return json.dumps(payload, sort_keys=True).encode()

    @classmethod
    def from_json(cls, data: bytes, location: str) -> LedgerState:
        try:
            payload = json.loads(data)
            assignments = {str(k): int(v) for k, v in payload["assignments"].items()}
            retired = [int(i) for i in payload["retired"]]
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise CorruptLakeFile(location, f"credential ledger is not valid ({exc})") from exc
        return cls(assignments, retired)

    def next_free(self, pool_size: int) -> int | None:
        taken = set(self.assignments.values()) | set(self.retired)
        return next((i for i in range(pool_size) if i not in taken), None)


def _slot(capacity: int, group: int) -> str:
    return f"{capacity}:{group}"


class CredentialLedger:
    """The day's (capacity, group) → credential mapping, persisted in the lake with conditional writes
    (`spotlake_assets.storage.state`: another process that updated the ledger between our read and write
    makes us re-read and decide again)."""

    def __init__(self, lake: LakeResource, day_key: str, pool: list[Credential]) -> None:
        self._lake = lake
        self._key = credential_map_key(PROVIDER, day_key)
        self._pool = pool
        self._lock = threading.Lock()
        self.rotations = 0
        # "<ledger> → <where it went>: <why>" for every damaged ledger this object moved aside.
        self.moved_aside: list[str] = []

    def _set_aside(self, exc: CorruptLakeFile, moved: str) -> None:
        """Report a damaged ledger (empty, truncated, hand-edited) that was moved aside: the day's ledger
        starts again instead of failing every rerun until someone deletes it.

        Quota risk, accepted over a pipeline stuck for the rest of the day: the old assignments are lost,
        so a (capacity, group) may now get another credential than the one that already paid for its
        configurations, which spends them a second time there (the checkpoints do not record which
        credential answered, so they cannot rebuild the map), and a credential assigned to another slot
        before may get a second slot; AWS answers MaxConfigLimitExceeded once one goes over 50 and the
        ledger rotates. Nothing is published twice or wrongly: only quota is at stake, and only that day.
        """
        location = self._lake.location(self._key)
        log.warning(
            "credential ledger %s is damaged (%s); moved aside to %s and rebuilt: configurations already "
            "paid today may be paid again on other credentials",
            location,
            exc,
            moved or "(already moved by a concurrent run)",
        )
        if moved:
            self.moved_aside.append(f"{location} → {moved}: {exc}")

    def _change(self, decide: Callable[[LedgerState], R]) -> R:
        """Apply ``decide`` to the stored ledger (an empty one when there is none) by compare-and-swap; the
        ledger is written only when ``decide`` changed it."""

        def change(current: Current[LedgerState]) -> Swap[R]:
            state = current.value or LedgerState()
            before = state.to_json()
            result = decide(state)
            after = state.to_json()
            return Swap(after if after != before else None, result)

        return update(self._lake, self._key, LedgerState.from_json, change, on_damaged=self._set_aside).result

    def _assign(self, capacity: int, group: int, retire: int | None) -> Credential:
        def decide(state: LedgerState) -> Credential:
            slot = _slot(capacity, group)
            current = state.assignments.get(slot)
            if current is not None and current != retire and current not in state.retired:
                return self._pool[current]
            if retire is not None and retire not in state.retired:
                state.retired.append(retire)
                self.rotations += 1
            chosen = state.next_free(len(self._pool))
            if chosen is None:
                raise CredentialPoolExhausted(
                    f"all {len(self._pool)} credentials are assigned or exhausted for this day"
                )
            state.assignments[slot] = chosen
            return self._pool[chosen]

        return self._change(decide)

    def reserve(self, capacity: int, groups: Sequence[int]) -> None:
        """Assign credentials to every group without one, in group order and in one conditional write.
        Assigning them as threads happen to ask would make the day's ledger depend on thread timing, so the
        same window collected twice from scratch would map its groups to different accounts."""

        def decide(state: LedgerState) -> None:
            for group in sorted(groups):
                slot = _slot(capacity, group)
                if slot in state.assignments:
                    continue
                chosen = state.next_free(len(self._pool))
                if chosen is None:
                    break  # the groups left fail in credential_for, naming the exhausted pool
                state.assignments[slot] = chosen

        with self._lock:
            self._change(decide)

    def credential_for(self, capacity: int, group: int) -> Credential:
        """The credential of (capacity, group) today, assigning a free one the first time."""
        with self._lock:
            return self._assign(capacity, group, None)

    def rotate(self, capacity: int, group: int, exhausted: Credential) -> Credential:
        """Retire ``exhausted`` for the day and give (capacity, group) the next free credential."""
        with self._lock:
            return self._assign(capacity, group, exhausted.index)
