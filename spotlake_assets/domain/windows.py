"""Pure helpers for 10-minute collection windows and daily workload days (no Dagster, no I/O)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

WINDOW = timedelta(minutes=10)
WINDOW_KEY_FORMAT = "%Y-%m-%d-%H:%M"
DAY_KEY_FORMAT = "%Y-%m-%d"

# SpotLake's capacity cycle: one target capacity per 10-minute window.
CAPACITIES: tuple[int, ...] = (1, 5, 10, 15, 20, 25, 30, 35, 40, 45, 50)


class InvalidPartitionKey(ValueError):
    """A partition key that does not name a 10-minute window or a day."""


def window_start(partition_key: str) -> datetime:
    """The UTC start of the 10-minute window named by ``partition_key`` (``YYYY-MM-DD-HH:MM``)."""
    try:
        start = datetime.strptime(partition_key, WINDOW_KEY_FORMAT).replace(tzinfo=UTC)
    except ValueError as exc:
        raise InvalidPartitionKey(
            f"window partition key {partition_key!r} is not in the form YYYY-MM-DD-HH:MM"
        ) from exc
    if start.minute % 10:
        raise InvalidPartitionKey(
            f"window partition key {partition_key!r} does not start on a 10-minute mark"
        )
    return start


def window_key(start: datetime) -> str:
    return start.astimezone(UTC).strftime(WINDOW_KEY_FORMAT)


def previous_window_key(partition_key: str) -> str:
    return window_key(window_start(partition_key) - WINDOW)


def day_start(partition_key: str) -> date:
    try:
        return datetime.strptime(partition_key, DAY_KEY_FORMAT).date()
    except ValueError as exc:
        raise InvalidPartitionKey(
            f"day partition key {partition_key!r} is not in the form YYYY-MM-DD"
        ) from exc


def day_key_of_window(partition_key: str) -> str:
    return window_start(partition_key).strftime(DAY_KEY_FORMAT)


def capacity_for_window(partition_key: str) -> int:
    """The SPS target capacity of a window: a pure function of its start, cycling through CAPACITIES.

    Counting windows since the Unix epoch makes the cycle continuous across days, so every
    capacity is observed at a different time of day on consecutive days.
    """
    index = int(window_start(partition_key).timestamp()) // int(WINDOW.total_seconds())
    return CAPACITIES[index % len(CAPACITIES)]


def step_down(capacity: int) -> int:
    """The next rung below ``capacity`` on the 50→45→…→10→5→1→0 ladder."""
    lower = [c for c in CAPACITIES if c < capacity]
    return lower[-1] if lower else 0


# How late a collector may still observe its window: a run queued behind a Spot scale-up still counts.
OBSERVATION_GRACE = timedelta(minutes=10)


def observable_now(partition_key: str, now: datetime, grace: timedelta = OBSERVATION_GRACE) -> bool:
    """Whether a "now"-only API (SPS, the advisor) answering at ``now`` describes this window."""
    start = window_start(partition_key)
    return start <= now < start + WINDOW + grace
