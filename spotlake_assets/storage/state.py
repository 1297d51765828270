"""State objects changed only by compare-and-swap, with one retry policy.

Every object in the lake that more than one writer updates (the AWS credential ledger, the Azure SPS budget
and invalid-value registry, the history manifest, `latest_<provider>.json`) goes through `update`: read the
object and its ETag, decide, write with a condition — create-only when there was no object, ``if_match``
on the ETag read otherwise. A writer that lost the race (`PreconditionFailed`) re-reads and decides again,
under `retrying` (tenacity: a bounded number of attempts with a short random wait, so racers spread out),
and gives up with the last `PreconditionFailed` when the attempts run out.

The ETag is taken before the body, so an object that changes between the two reads is refused at the write
rather than overwritten. A damaged object (the decoder raises `CorruptLakeFile`) is moved aside to
``quarantine/`` and treated as absent when the caller asks for that (``on_damaged``), so a bad file is
rebuilt instead of failing every rerun; a version someone replaced meanwhile is never moved aside.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

import tenacity

from spotlake_assets.storage.errors import CorruptLakeFile, LakeKeyNotFound, PreconditionFailed
from spotlake_assets.storage.lake import LakeResource, StoredObject

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

# Lost races are cheap to retry (one HEAD and one GET) and, with a random wait, rarely repeat: 30 attempts
# cover the busiest case measured (ten Azure batches and the parallel AWS groups of two runs at once).
CAS_ATTEMPTS = 30
CAS_MAX_WAIT_S = 0.2

Decoder = Callable[[bytes, str], T]
"""Turns an object's bytes (and its location, for messages) into a value; `CorruptLakeFile` when damaged."""

OnDamaged = Callable[[CorruptLakeFile, str], None]
"""Told about a damaged object after it was moved aside: the error and where it went ("" when a concurrent
writer moved it first)."""


@dataclass(frozen=True)
class Current(Generic[T]):
    """An object as read for an update: its value (None when absent or moved aside) and the ETag a swap must
    match (None: the swap is create-only)."""

    value: T | None
    etag: str | None


@dataclass(frozen=True)
class Swap(Generic[R]):
    """What an update decided: the bytes to write (None leaves the object as it is) and what to return."""

    data: bytes | None
    result: R


@dataclass(frozen=True)
class Updated(Generic[R]):
    result: R
    attempts: int
    written: bool


def retrying(location: str, attempts: int = CAS_ATTEMPTS) -> tenacity.Retrying:
    """The retry policy of every compare-and-swap: only a lost race is retried, after a random wait of at
    most `CAS_MAX_WAIT_S`; the last `PreconditionFailed` is re-raised when ``attempts`` are spent."""

    def lost(state: tenacity.RetryCallState) -> None:
        log.info(
            "%s changed concurrently; re-reading (attempt %d of %d)", location, state.attempt_number, attempts
        )

    return tenacity.Retrying(
        retry=tenacity.retry_if_exception_type(PreconditionFailed),
        stop=tenacity.stop_after_attempt(attempts),
        wait=tenacity.wait_random(0, CAS_MAX_WAIT_S),
        before_sleep=lost,
        reraise=True,
    )


def read_current(
    lake: LakeResource, key: str, decode: Decoder[T], on_damaged: OnDamaged | None = None
) -> Current[T]:
    """The object at ``key`` for an update. A damaged one raises `CorruptLakeFile`, unless ``on_damaged`` is
    given: then it is moved aside (if nobody replaced it meanwhile) and read as absent."""
    head = lake.head(key)
    if head is None:
        return Current(None, None)
    try:
        data = lake.read_bytes(key)
    except LakeKeyNotFound:
        return Current(None, None)  # deleted or moved aside by another writer since the HEAD
    try:
        return Current(decode(data, lake.location(key)), head.etag)
    except CorruptLakeFile as exc:
        if on_damaged is None:
            raise
        again = lake.head(key)
        if again is None or again.etag != head.etag:
            # Someone replaced it since we read it: never move their (valid) version aside.
            return read_current(lake, key, decode, on_damaged)
        moved = lake.move_aside(key, str(exc))
        on_damaged(exc, moved)
        return Current(None, None)


def swap(lake: LakeResource, key: str, data: bytes, etag: str | None) -> StoredObject:
    """Write ``data`` only if the object is still the one read: create-only when ``etag`` is None (there was
    no object), else only over that ETag. `PreconditionFailed` when another writer got in between."""
    if etag is None:
        return lake.write_bytes(key, data, create_only=True)
    return lake.write_bytes(key, data, if_match=etag)


def update(
    lake: LakeResource,
    key: str,
    decode: Decoder[T],
    change: Callable[[Current[T]], Swap[R]],
    *,
    attempts: int = CAS_ATTEMPTS,
    on_damaged: OnDamaged | None = None,
) -> Updated[R]:
    """Read, ``change``, swap; on a lost race read and decide again (see `retrying`). ``change`` must only
    decide (it may run several times); errors it raises are not retried."""
    for attempt in retrying(lake.location(key), attempts):
        with attempt:
            current = read_current(lake, key, decode, on_damaged)
            step = change(current)
            if step.data is not None:
                swap(lake, key, step.data, current.etag)
            # Returned from inside the attempt: only a successful one gets here.
            return Updated(step.result, attempt.retry_state.attempt_number, step.data is not None)
    raise AssertionError("unreachable: the last attempt returns or raises")
