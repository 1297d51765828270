"""The one compare-and-swap helper: create-only then ETag swaps, lost races re-read and decided again (a
bounded number of times), damaged objects moved aside only when the caller asks; the one botocore config."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import PrivateAttr

from spotlake_assets.storage.botocore_config import client_config
from spotlake_assets.storage.errors import CorruptLakeFile, PreconditionFailed
from spotlake_assets.storage.lake import LocalLake, StoredObject
from spotlake_assets.storage.state import Current, Swap, read_current, update

KEY = "state/test/counter.json"


def decode(data: bytes, location: str) -> int:
    try:
        return int(json.loads(data)["n"])
    except (ValueError, KeyError, TypeError) as exc:
        raise CorruptLakeFile(location, f"not a counter ({exc})") from exc


def increment(current: Current[int]) -> Swap[int]:
    n = (current.value or 0) + 1
    return Swap(json.dumps({"n": n}).encode(), n)


class RacingLake(LocalLake):
    """Another writer bumps the counter right before each of our first ``races`` conditional writes."""

    races: int = 0
    _raced: int = PrivateAttr(default=0)

    @property
    def left(self) -> int:
        return self.races - self._raced

    def write_bytes(
        self, key: str, data: bytes, *, create_only: bool = False, if_match: str | None = None
    ) -> StoredObject:
        if self.left > 0 and (create_only or if_match is not None):
            self._raced += 1
            current = read_current(self, key, decode)
            super().write_bytes(key, json.dumps({"n": (current.value or 0) + 100}).encode())
        return super().write_bytes(key, data, create_only=create_only, if_match=if_match)


def test_creates_then_swaps_on_the_etag(local_lake: LocalLake) -> None:
    first = update(local_lake, KEY, decode, increment)
    second = update(local_lake, KEY, decode, increment)
    assert (first.result, first.attempts, first.written) == (1, 1, True)
    assert (second.result, second.attempts) == (2, 1)
    assert decode(local_lake.read_bytes(KEY), KEY) == 2


def test_a_decision_to_keep_writes_nothing(local_lake: LocalLake) -> None:
    kept = update(local_lake, KEY, decode, lambda current: Swap(None, "kept"))
    assert (kept.result, kept.written) == ("kept", False)
    assert not local_lake.exists(KEY)


def test_a_lost_race_is_read_and_decided_again(tmp_path: Path) -> None:
    lake = RacingLake(root=str(tmp_path), races=2)
    done = update(lake, KEY, decode, increment)
    # Two other writers got in first (+100 each): the third attempt builds on what they wrote.
    assert (done.result, done.attempts) == (201, 3)
    assert decode(lake.read_bytes(KEY), KEY) == 201


def test_races_that_never_stop_fail_after_bounded_attempts(tmp_path: Path) -> None:
    lake = RacingLake(root=str(tmp_path), races=10)
    with pytest.raises(PreconditionFailed):
        update(lake, KEY, decode, increment, attempts=3)
    assert lake.left == 7


def test_a_damaged_object_fails_unless_the_caller_heals_it(local_lake: LocalLake) -> None:
    local_lake.write_bytes(KEY, b"{not json")
    with pytest.raises(CorruptLakeFile, match="not a counter"):
        update(local_lake, KEY, decode, increment)
    moved: list[str] = []
    done = update(local_lake, KEY, decode, increment, on_damaged=lambda exc, where: moved.append(where))
    assert done.result == 1
    (where,) = moved
    assert "quarantine/state/test/counter.json." in where and Path(where).read_bytes() == b"{not json"


def test_one_botocore_config_counts_the_first_attempt() -> None:
    config = client_config(retry_mode="standard", max_attempts=3, connect_timeout=2.0)
    # botocore-stubs declare Config's options only as __init__ parameters; botocore sets them as attributes.
    assert config.retries == {"total_max_attempts": 3, "mode": "standard"}  # type: ignore[attr-defined]
    assert (config.connect_timeout, config.read_timeout) == (2.0, 60.0)  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="retry_mode 'fast' is not one of"):
        client_config(retry_mode="fast")
