"""The `spotlake query` command on a lake built by six simulated windows: local directory and S3 (a moto
server, read through pyarrow's S3 filesystem), table/CSV/JSON output, and the errors a person meets."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pandas as pd
import pytest
from moto.server import ThreadedMotoServer

from spotlake_assets.domain.windows import window_start
from spotlake_assets.query.cli import main
from spotlake_assets.query.engine import render
from spotlake_assets.query.lake import LakeLocationError, default_location
from spotlake_assets.storage import keys
from spotlake_assets.storage.frames import read_frame
from spotlake_assets.storage.lake import LocalLake
from spotlake_assets_tests.sinks.support import DAY, WINDOW_ASSETS, WINDOWS, build_day, run

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> LocalLake:
    built = LocalLake(root=str(tmp_path_factory.mktemp("query") / "lake"))
    build_day(built)
    for window in WINDOWS:
        run(built, WINDOW_ASSETS, window)
    run(built, ["aws/history_daily"], DAY)
    return built


@pytest.fixture(scope="module")
def pool(lake: LocalLake) -> dict[str, Any]:
    """A pool whose values changed during the six windows, as the latest state shows it."""
    frames = [read_frame(lake, keys.merged_key("aws", w)).astype({"AZ": str}) for w in WINDOWS]
    joined = pd.concat(frames)
    varying = joined.groupby(["InstanceType", "Region", "AZ"], observed=True)["SPS"].nunique()
    instance_type, region, az = varying[varying > 1].index[0]
    return {"InstanceType": str(instance_type), "Region": str(region), "AZ": str(az)}


def query(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["query", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def as_json(out: str) -> list[dict[str, Any]]:
    return list(json.loads(out))


# --- latest -------------------------------------------------------------------------------------------------


def test_latest_for_one_type_in_every_format(lake: LocalLake, pool: dict[str, Any], capsys: Any) -> None:
    kind = pool["InstanceType"]
    code, out, err = query(capsys, "latest", "--lake", lake.root, "--instance-type", kind, "--format", "json")
    rows = as_json(out)
    latest = json.loads(lake.read_bytes(keys.latest_key("aws")))
    assert code == 0 and rows == sorted(
        (r for r in latest if r["InstanceType"] == kind), key=lambda r: (r["Region"], r["AZ"])
    )
    assert "latest aws state: " in err and f"{len(rows)} rows" in err
    code, out, _ = query(
        capsys, "latest", "--lake", lake.root, "--instance-type", kind, "--format", "csv", "-q"
    )
    parsed = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and len(parsed) == len(rows) and parsed[0]["Time"] == "2026-03-01 00:50:00"
    code, out, _ = query(
        capsys, "latest", "--lake", lake.root, "--instance-type", kind, "--columns", "AZ,SPS"
    )
    assert code == 0 and out.split()[:2] == ["AZ", "SPS"] and pool["AZ"] in out


def test_latest_filters_combine(lake: LocalLake, pool: dict[str, Any], capsys: Any) -> None:
    family, size = pool["InstanceType"].split(".")
    code, out, _ = query(
        capsys,
        "latest",
        "--lake",
        lake.root,
        "--family",
        family,
        "--size",
        size,
        "--region",
        pool["Region"],
        "--min-sps",
        "2",
        "--order-by",
        "SpotPrice",
        "--desc",
        "--format",
        "json",
    )
    rows = as_json(out)
    assert code == 0 and rows
    assert all(r["InstanceType"] == pool["InstanceType"] and r["Region"] == pool["Region"] for r in rows)
    assert all(r["SPS"] >= 2 for r in rows)
    prices = [r["SpotPrice"] for r in rows]
    assert prices == sorted(prices, reverse=True)
    code, out, _ = query(capsys, "latest", "--lake", lake.root, "--az", pool["AZ"], "--format", "json", "-q")
    assert code == 0 and {r["AZ"] for r in as_json(out)} == {pool["AZ"]}


def test_the_table_is_limited_with_a_hint(lake: LocalLake, capsys: Any) -> None:
    code, out, err = query(capsys, "latest", "--lake", lake.root)
    assert code == 0 and len(out.strip().splitlines()) == 51
    assert "50 of " in err and "--limit 0 prints all" in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--instance-type", "m5.larg"], "unknown aws instance type 'm5.larg'"),
        (["--family", "zz9"], "unknown aws instance family 'zz9'"),
        (["--region", "mars-north-1"], "unknown aws region 'mars-north-1'"),
        (["--az", "use1-az99"], "unknown aws availability zone 'use1-az99'"),
        (["--order-by", "Price"], "cannot order by 'Price'"),
        (["--provider", "gcp"], "no latest gcp state at"),
    ],
)
def test_latest_lookup_errors_are_readable(
    lake: LocalLake, capsys: Any, argv: list[str], message: str
) -> None:
    code, out, err = query(capsys, "latest", "--lake", lake.root, *argv)
    assert code == 2 and out == "" and message in err


def test_suggestions_for_a_near_miss(lake: LocalLake, pool: dict[str, Any], capsys: Any) -> None:
    near = pool["InstanceType"].upper()
    code, _, err = query(capsys, "latest", "--lake", lake.root, "--instance-type", near)
    assert code == 2 and f"did you mean {pool['InstanceType']}" in err


def test_nothing_matching_is_exit_1(lake: LocalLake, pool: dict[str, Any], capsys: Any) -> None:
    code, out, err = query(
        capsys, "latest", "--lake", lake.root, "--instance-type", pool["InstanceType"], "--min-sps", "11"
    )
    assert code == 1 and out == "" and "no aws pool matches these filters" in err


# --- series -------------------------------------------------------------------------------------------------


def series_args(lake_location: str, pool: dict[str, Any], *extra: str) -> list[str]:
    return [
        "series",
        "--lake",
        lake_location,
        "--instance-type",
        pool["InstanceType"],
        "--region",
        pool["Region"],
        "--az",
        pool["AZ"],
        "--format",
        "json",
        *extra,
    ]


def test_a_pools_series_matches_every_merged_snapshot(
    lake: LocalLake, pool: dict[str, Any], capsys: Any
) -> None:
    code, out, err = query(
        capsys, *series_args(lake.root, pool, "--start", "2026-03-01", "--end", "2026-03-01T01:00")
    )
    rows = as_json(out)
    assert code == 0 and rows and "1 compacted days + 0 window files" in err
    for window in WINDOWS:
        merged = read_frame(lake, keys.merged_key("aws", window)).astype({"AZ": str, "InstanceType": str})
        expected = merged[(merged["InstanceType"] == pool["InstanceType"]) & (merged["AZ"] == pool["AZ"])]
        stamp = window_start(window).strftime("%Y-%m-%d %H:%M:%S")
        state = [r for r in rows if r["Time"] <= stamp][-1]
        assert (
            state["SPS"] == int(expected["SPS"].iloc[0])
            and state["SpotPrice"] == expected["SpotPrice"].iloc[0]
        )


def test_the_series_starts_with_the_state_in_effect(
    lake: LocalLake, pool: dict[str, Any], capsys: Any
) -> None:
    code, out, _ = query(
        capsys,
        *series_args(lake.root, pool, "--start", "2026-03-01T00:15", "--end", "2026-03-01T00:45", "-q"),
    )
    rows = as_json(out)
    assert code == 0 and rows[0]["Time"] <= "2026-03-01 00:10:00"
    assert all("2026-03-01 00:15:00" < r["Time"] <= "2026-03-01 00:45:00" for r in rows[1:])


def test_series_defaults_to_the_day_before_the_latest_window(
    lake: LocalLake, pool: dict[str, Any], capsys: Any
) -> None:
    code, out, _ = query(capsys, *series_args(lake.root, pool, "-q"))
    assert code == 0 and as_json(out)[-1]["Time"] <= "2026-03-01 00:50:00"


def test_series_errors_are_readable(lake: LocalLake, pool: dict[str, Any], capsys: Any) -> None:
    code, out, err = query(
        capsys, *series_args(lake.root, pool, "--start", "2026-04-01", "--end", "2026-04-02")
    )
    assert code == 1 and out == ""
    assert "no aws history between 2026-04-01 00:00:00 and 2026-04-02 00:00:00" in err
    assert "(history holds 2026-03-01 … 2026-03-01)" in err
    code, _, err = query(
        capsys, *series_args(lake.root, pool, "--start", "2026-03-02", "--end", "2026-03-01")
    )
    assert code == 2 and "empty range: --end 2026-03-01 00:00:00 is before --start 2026-03-02 00:00:00" in err
    code, _, err = query(capsys, "series", "--lake", lake.root, "--instance-type", pool["InstanceType"])
    assert code == 2 and "pools match" in err and "narrow it with --region and --az" in err
    code, _, err = query(capsys, "series", "--lake", lake.root, "--instance-type", "x9.huge")
    assert code == 2 and "unknown aws instance type 'x9.huge'" in err
    with pytest.raises(SystemExit):
        main(["query", "series", "--lake", lake.root, "--instance-type", "m5.large", "--start", "yesterday"])
    assert "is not a date or time" in capsys.readouterr().err


# --- snapshot -----------------------------------------------------------------------------------------------


def published(lake: LocalLake, window: str) -> list[dict[str, Any]]:
    """A window's merged snapshot as the command prints it in JSON, without SPSCapacity (`rebuilt`)."""
    merged = read_frame(lake, keys.merged_key("aws", window))
    return rebuilt(render(merged, "json"))


def rebuilt(out: str) -> list[dict[str, Any]]:
    """Rows without SPSCapacity: not a feature, so the history holds the capacity of a row's last
    publication and a snapshot rebuilt from it may show an earlier one (docs/data-contracts.md#delta)."""
    rows = as_json(out)
    assert all(isinstance(r["SPSCapacity"], int) and r["SPSCapacity"] >= -1 for r in rows)
    return [{k: v for k, v in r.items() if k != "SPSCapacity"} for r in rows]


@pytest.mark.parametrize(
    ("at", "window"), [("2026-03-01T00:00", WINDOWS[0]), ("2026-03-01T00:25", WINDOWS[2])]
)
def test_a_snapshot_rebuilds_the_merged_snapshot_of_its_window(
    lake: LocalLake, at: str, window: str, capsys: Any
) -> None:
    code, out, err = query(
        capsys, "snapshot", "--lake", lake.root, "--at", at, "--format", "json", "--limit", "0"
    )
    assert code == 0 and "aws history 2026-03-01 00:00:00 … " in err
    assert rebuilt(out) == published(lake, window)


def test_every_window_and_the_uncompacted_history_rebuild_the_same(
    lake: LocalLake, tmp_path: Path, capsys: Any
) -> None:
    copy = LocalLake(root=str(tmp_path / "lake"))
    for key in lake.list_keys(""):
        if not key.startswith("history_daily/"):
            copy.write_bytes(key, lake.read_bytes(key))
    for window in WINDOWS:
        at = window_start(window).isoformat()
        for source in (lake, copy):
            code, out, _ = query(
                capsys,
                "snapshot",
                "--lake",
                source.root,
                "--at",
                at,
                "--format",
                "json",
                "--limit",
                "0",
                "-q",
            )
            assert code == 0 and rebuilt(out) == published(lake, window), (window, source.root)


def test_a_snapshot_before_the_history_is_exit_1(lake: LocalLake, capsys: Any) -> None:
    code, out, err = query(capsys, "snapshot", "--lake", lake.root, "--at", "2026-02-28T23:55")
    assert code == 1 and out == ""
    assert "no aws history at or before 2026-02-28 23:50:00 (history holds 2026-03-01 … 2026-03-01)" in err
    with pytest.raises(SystemExit):
        main(["query", "snapshot", "--lake", lake.root])
    assert "--at" in capsys.readouterr().err


def test_uncompacted_windows_answer_the_same(
    lake: LocalLake, pool: dict[str, Any], tmp_path: Path, capsys: Any
) -> None:
    copy = LocalLake(root=str(tmp_path / "lake"))
    for key in lake.list_keys(""):
        if not key.startswith("history_daily/"):
            copy.write_bytes(key, lake.read_bytes(key))
    argv = ("--start", "2026-03-01", "--end", "2026-03-01T01:00")
    _, compacted, _ = query(capsys, *series_args(lake.root, pool, *argv))
    code, windows, err = query(capsys, *series_args(copy.root, pool, *argv))
    assert code == 0 and windows == compacted and "0 compacted days + 6 window files" in err


# --- S3 -----------------------------------------------------------------------------------------------------


@pytest.fixture
def s3_server(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[str]:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-west-2",
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": str(tmp_path / "absent-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "absent-credentials"),
    }.items():
        monkeypatch.setenv(name, value)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def test_the_same_answers_from_s3(lake: LocalLake, pool: dict[str, Any], s3_server: str, capsys: Any) -> None:
    s3 = boto3.client("s3", region_name="us-west-2", endpoint_url=s3_server)
    s3.create_bucket(Bucket="spotlake-query", CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
    for key in lake.list_keys(""):
        if key.startswith(("latest_data/", "history/", "history_daily/")):
            s3.put_object(Bucket="spotlake-query", Key=f"lake/{key}", Body=lake.read_bytes(key))
    s3_lake = ["--lake", "s3://spotlake-query/lake", "--endpoint-url", s3_server]
    latest = ["latest", "--instance-type", pool["InstanceType"], "--format", "json"]
    _, local_out, _ = query(capsys, *latest, "--lake", lake.root)
    code, s3_out, err = query(capsys, *latest, *s3_lake)
    assert code == 0 and s3_out == local_out and "s3://spotlake-query/lake/latest_data/latest_aws.json" in err
    argv = ("--start", "2026-03-01", "--end", "2026-03-01T01:00")
    _, local_series, _ = query(capsys, *series_args(lake.root, pool, *argv))
    code, s3_series, err = query(
        capsys, *series_args("s3://spotlake-query/lake", pool, *argv, "--endpoint-url", s3_server)
    )
    assert code == 0 and s3_series == local_series and "1 compacted days" in err
    code, _, err = query(capsys, "latest", "--lake", "s3://no-such-bucket", "--endpoint-url", s3_server)
    assert code == 2 and "no latest aws state at s3://no-such-bucket/latest_data/latest_aws.json" in err


# --- locations and the entry point --------------------------------------------------------------------------


def test_the_default_lake_follows_the_environment(tmp_path: Path) -> None:
    assert default_location({"SPOTLAKE_HOME": str(tmp_path)}) == str(tmp_path / "lake")
    assert default_location({"SPOTLAKE_ENV": "prod", "SPOTLAKE_BUCKET": "spotlake"}) == "s3://spotlake"
    assert (
        default_location({"SPOTLAKE_ENV": "test", "SPOTLAKE_WRITE_BUCKET": "spotlake-w"}) == "s3://spotlake-w"
    )
    with pytest.raises(LakeLocationError, match="keeps its lake in SPOTLAKE_BUCKET, which is not set"):
        default_location({"SPOTLAKE_ENV": "prod"})


def test_an_unknown_environment_is_refused_not_read_as_local(
    lake: LocalLake, capsys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Before, the tool resolved SPOTLAKE_ENV on its own and quietly read the local lake.
    monkeypatch.setenv("SPOTLAKE_HOME", str(Path(lake.root).parent))
    monkeypatch.setenv("SPOTLAKE_ENV", "staging")
    for argv in (["latest"], ["latest", "--lake", lake.root]):
        code, out, err = query(capsys, *argv)
        assert (code, out) == (2, "")
        assert (
            err == "spotlake: SPOTLAKE_ENV='staging' is not one of local, test, prod (unknown environment)\n"
        )


def test_a_bad_setting_is_named_on_standard_error(
    lake: LocalLake, capsys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SPOTLAKE_ENV", raising=False)
    monkeypatch.setenv("SPOTLAKE_HOME", str(Path(lake.root).parent))
    monkeypatch.setenv("SPOTLAKE_SCALE", "abc")
    code, out, err = query(capsys, "latest")
    assert (code, out) == (2, "")
    assert err.startswith("spotlake: SPOTLAKE_SCALE='abc' is not a number in (0, 1]")


def test_a_missing_default_lake_names_the_variable_behind_it(
    tmp_path: Path, capsys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SPOTLAKE_ENV", raising=False)
    monkeypatch.setenv("SPOTLAKE_HOME", str(tmp_path / "nowhere"))
    code, _, err = query(capsys, "latest")
    assert code == 2
    assert err == (
        f"spotlake: no lake directory at {tmp_path / 'nowhere' / 'lake'} (the SPOTLAKE_ENV=local lake, from "
        "SPOTLAKE_HOME; --lake reads another)\n"
    )


def test_a_latest_file_with_a_byte_order_mark_is_read(
    lake: LocalLake, pool: dict[str, Any], capsys: Any, tmp_path: Path
) -> None:
    # Guard: a latest JSON re-saved by an editor that adds a UTF-8 BOM still reads (json.loads on bytes).
    copy = LocalLake(root=str(tmp_path / "lake"))
    key = keys.latest_key("aws")
    copy.write_bytes(key, b"\xef\xbb\xbf" + lake.read_bytes(key))
    latest = ["latest", "--instance-type", pool["InstanceType"], "--format", "json"]
    _, expected, _ = query(capsys, *latest, "--lake", lake.root)
    code, out, _ = query(capsys, *latest, "--lake", copy.root)
    assert code == 0 and out == expected


def test_the_module_runs_as_a_command(lake: LocalLake, pool: dict[str, Any]) -> None:
    env = {**os.environ, "SPOTLAKE_HOME": str(Path(lake.root).parent)}
    env.pop("SPOTLAKE_ENV", None)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "spotlake_assets.query.cli",
            "query",
            "latest",
            "--instance-type",
            pool["InstanceType"],
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert pool["AZ"] in done.stdout and "latest aws state" in done.stderr
