"""SpotLake's object-key layout (docs/data-contracts.md#lake-layout). Pure: every key is a function of
provider and partition."""

from __future__ import annotations

from spotlake_assets.domain.windows import day_start, window_start


def _window_parts(partition_key: str) -> tuple[str, str]:
    start = window_start(partition_key)
    return start.strftime("%Y/%m/%d"), start.strftime("%H-%M")


def _day_path(day_key: str) -> str:
    return day_start(day_key).strftime("%Y/%m/%d")


def workload_key(provider: str, day_key: str) -> str:
    return f"rawdata/{provider}/workloads/{_day_path(day_key)}/workload.parquet"


def workload_universe_key(provider: str, day_key: str) -> str:
    """The (tier, size, region) universe the day's workload was planned from, with what was left out."""
    return f"rawdata/{provider}/workloads/{_day_path(day_key)}/universe.parquet"


def sps_locations_key(provider: str, day_key: str) -> str:
    """The locations the day's SPS requests may be sent from."""
    return f"rawdata/{provider}/workloads/{_day_path(day_key)}/sps_locations.parquet"


def sps_key(provider: str, partition_key: str, capacity: int) -> str:
    day, hm = _window_parts(partition_key)
    return f"rawdata/{provider}/sps/{day}/{hm}_sps_{capacity}.parquet"


def interruption_frequency_key(provider: str, partition_key: str) -> str:
    day, hm = _window_parts(partition_key)
    return f"rawdata/{provider}/spot_if/{day}/{hm}_spot_if.parquet"


def spot_price_key(provider: str, partition_key: str) -> str:
    day, hm = _window_parts(partition_key)
    return f"rawdata/{provider}/spot_price/{day}/{hm}_spot_price.parquet"


def ondemand_price_key(provider: str, day_key: str) -> str:
    return f"rawdata/{provider}/ondemand_price/{_day_path(day_key)}/ondemand_price.parquet"


def merged_key(provider: str, partition_key: str) -> str:
    day, hm = _window_parts(partition_key)
    return f"merged/{provider}/{day}/{hm}_merged.parquet"


def delta_key(provider: str, partition_key: str) -> str:
    day, hm = _window_parts(partition_key)
    return f"delta/{provider}/{day}/{hm}_delta.parquet"


def history_key(provider: str, partition_key: str) -> str:
    day, hm = _window_parts(partition_key)
    return f"history/{provider}/{day}/{hm}.parquet"


def latest_key(provider: str) -> str:
    return f"latest_data/latest_{provider}.json"


def sps_window_prefix(provider: str, partition_key: str) -> str:
    """Every raw SPS object of a window (one per capacity asked)."""
    day, hm = _window_parts(partition_key)
    return f"rawdata/{provider}/sps/{day}/{hm}_sps_"


def merge_inputs_key(provider: str, partition_key: str) -> str:
    """The fingerprint of the inputs a window's merge read (the lake sensor re-merges only on a change)."""
    day, hm = _window_parts(partition_key)
    return f"state/{provider}/merge_inputs/{day}/{hm}.json"


def sps_checkpoint_prefix(provider: str, partition_key: str) -> str:
    day, hm = _window_parts(partition_key)
    return f"state/{provider}/sps_checkpoints/{day}/{hm}/"


def sps_checkpoint_key(provider: str, partition_key: str, label: str, digest: str) -> str:
    """A finished unit of SPS work (an AWS credential group, an Azure batch), named by a digest of what it
    covers: a rebuilt plan that puts other work at the same position can never resume from it."""
    return f"{sps_checkpoint_prefix(provider, partition_key)}{label}_{digest}.parquet"


def sps_exclusions_key(provider: str, day_key: str) -> str:
    """What a day's SPS plan left out (learned invalid values), recorded once so a rebuild reuses it."""
    return f"rawdata/{provider}/workloads/{_day_path(day_key)}/sps_exclusions.json"


def credential_map_key(provider: str, day_key: str) -> str:
    return f"state/{provider}/credential_map/{_day_path(day_key)}.json"


def zones_key(provider: str, day_key: str) -> str:
    """The availability zones (name ↔ id) the day's workload was built from."""
    return f"rawdata/{provider}/workloads/{_day_path(day_key)}/zones.parquet"
