"""Names of the single-account mode: its lake prefix, keys, tags and public SSM parameters."""

from __future__ import annotations

from spotlake_assets.domain.windows import day_start

# The lake "provider" of the single account's own collection: rawdata/aws_single/…, merged/aws_single/…,
# history/aws_single/… (the same layout and key helpers as the main pipeline).
PREFIX = "aws_single"
# The main pipeline's provider, whose history (ours, or SpotLake's imported dataset) seeds the scores.
MAIN_PROVIDER = "aws"
ARCHITECTURES = ("x86_64", "arm64")
# Amazon Linux 2023's public parameter per architecture (AWS-maintained, every commercial region).
AL2023_PARAMETER = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-{architecture}"
# Every resource the launch-time collector creates carries this tag (value: the measurement id), so the
# sweep finds leftovers of a run that was killed before its `finally` could clean up.
LAUNCH_TAG = "spotlake:launch-time"
SELECTION_COLUMNS = ("InstanceType", "Role", "Score", "Configurations", "Seed")
ARCHITECTURE_COLUMNS = ("InstanceType", "Family", "Architectures")
AMI_COLUMNS = ("Region", "Architecture", "ImageId")
CURVE_COLUMNS = ("InstanceType", "Region", "RequestIds", "ElapsedS", "Ready", "Requested")
LAUNCH_COLUMNS = ("InstanceType", "Region", "Requested", "Ready", "LaunchTimeS", "TimedOut", "ImageId")
SCORE_COLUMNS = ("InstanceType", "Score", "Changes", "Observed")


def _day_path(day_key: str) -> str:
    return day_start(day_key).strftime("%Y/%m/%d")


def selection_key(day_key: str) -> str:
    return f"rawdata/{PREFIX}/selection/{_day_path(day_key)}/selection.parquet"


def scores_key(day_key: str) -> str:
    return f"rawdata/{PREFIX}/daily_score/{_day_path(day_key)}/scores.parquet"


def ledger_key(day_key: str) -> str:
    return f"state/{PREFIX}/sps_ledger/{_day_path(day_key)}.json"


def launch_hours_key(day_key: str) -> str:
    return f"state/{PREFIX}/launch_hours/{_day_path(day_key)}.json"


def architectures_key(day_key: str) -> str:
    return f"rawdata/{MAIN_PROVIDER}/instance_architectures/{_day_path(day_key)}/architectures.parquet"


def amis_key(day_key: str) -> str:
    return f"rawdata/{MAIN_PROVIDER}/amis/{_day_path(day_key)}/amis.parquet"


def launch_curve_key(window: str) -> str:
    day, hm = window[:10].replace("-", "/"), window[11:].replace(":", "-")
    return f"rawdata/{PREFIX}/launch_time/{day}/{hm}_curve.parquet"


def launch_time_key(window: str) -> str:
    day, hm = window[:10].replace("-", "/"), window[11:].replace(":", "-")
    return f"rawdata/{PREFIX}/launch_time/{day}/{hm}_launch_time.parquet"
