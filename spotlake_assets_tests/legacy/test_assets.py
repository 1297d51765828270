"""`materialize()` of `legacy/aws_history` for a reduced-scale month: from a zip into a local lake, and from
an S3 prefix (SpotLake's bucket layout) into an S3 lake, both on moto."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import dagster as dg

from spotlake_assets.batch_launcher.launcher import JOB_CLASS_TAG
from spotlake_assets.legacy.assets import LARGE_JOB_CLASS, legacy_assets, legacy_jobs
from spotlake_assets.legacy.importer import checkpoint_key, month_record_key
from spotlake_assets.legacy.sources import SYNTHETIC_MARKER, LegacyArchive
from spotlake_assets.legacy.synthetic import write_synthetic_month
from spotlake_assets.sinks.history import load_manifest
from spotlake_assets.storage.lake import LakeResource, LocalLake, S3Lake
from spotlake_assets_tests.conftest import REGION
from spotlake_assets_tests.legacy.support import MONTH, small_month

AWS_ASSET = next(a for a in legacy_assets if a.key == dg.AssetKey(["legacy", "aws_history"]))
PARTITION = MONTH.isoformat()


def _materialize(lake: LakeResource, source: str) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [AWS_ASSET],
        partition_key=PARTITION,
        resources={"lake": lake, "legacy_archive": LegacyArchive(region_name=REGION)},
        run_config={"ops": {"legacy__aws_history": {"config": {"source": source}}}},
    )


def _metadata(result: dg.ExecuteInProcessResult) -> dict[str, Any]:
    (event,) = result.asset_materializations_for_node("legacy__aws_history")
    return {k: getattr(v, "value", v) for k, v in event.metadata.items()}


def _check_month(lake: LakeResource, meta: dict[str, Any], result: dg.ExecuteInProcessResult) -> None:
    assert meta["days_imported"] == 2 and meta["windows"] > 250 and meta["skipped_files"] == 1
    assert meta["gap_windows"] > 0 and meta["rows_per_second"] > 0 and meta["peak_rss_mib"] > 0
    assert set(load_manifest(lake, "aws").days) == {"2024-03-01", "2024-03-02"}
    assert lake.exists(checkpoint_key("aws", MONTH)) and lake.exists(month_record_key("aws", MONTH))
    checks = {c.check_name: c.passed for c in result.get_asset_check_evaluations()}
    assert checks == {"no_gaps": False, "no_conflicts": True}


def test_materialize_a_month_from_a_zip(tmp_path: Path) -> None:
    month = small_month(tmp_path / "archive")
    lake = LocalLake(root=str(tmp_path / "lake"))
    # The location template SpotLake's zips follow, filled in per partition.
    template = str(tmp_path / "archive" / "{provider}" / "{year}" / "{provider}-{year}-{month}.zip")
    result = _materialize(lake, template)
    assert result.success
    meta = _metadata(result)
    _check_month(lake, meta, result)
    assert meta["rows"] == month.rows
    # The generator's month says it is synthetic: its import is labelled simulated, in metadata and record.
    assert meta["simulated"] is True
    assert json.loads(lake.read_bytes(month_record_key("aws", MONTH)))["synthetic"] is True
    # A rerun finds every day checkpointed.
    again = _metadata(_materialize(lake, template))
    assert (again["days_imported"], again["days_already_imported"], again["rows"]) == (0, 2, 0)


def test_materialize_a_month_from_an_s3_prefix(tmp_path: Path, s3_lake: S3Lake) -> None:
    month = small_month(tmp_path / "bucket", layout="rawdata")
    s3 = boto3.client("s3", region_name=REGION)
    # Uploaded as SpotLake's bucket holds a month: without the synthetic generator's marker.
    for path in sorted(month.location.rglob("*")):
        if path.is_file() and path.name != SYNTHETIC_MARKER:
            key = path.relative_to(tmp_path / "bucket").as_posix()
            s3.put_object(Bucket="spotlake-read", Key=key, Body=path.read_bytes())
    result = _materialize(s3_lake, "s3://spotlake-read/rawdata/{provider}/{year}/{month}/")
    assert result.success
    meta = _metadata(result)
    _check_month(s3_lake, meta, result)
    assert meta["simulated"] is False
    record = json.loads(s3_lake.read_bytes(month_record_key("aws", MONTH)))
    assert record["synthetic"] is False
    assert record["skipped_files"][0]["file"].startswith("rawdata/aws/2024/03/")


def test_the_import_jobs_run_on_the_large_job_class() -> None:
    assert {job.name for job in legacy_jobs} == {"legacy_aws_import_job", "legacy_azure_import_job"}
    for job in legacy_jobs:
        assert job.tags is not None and job.tags[JOB_CLASS_TAG] == LARGE_JOB_CLASS
        assert job.description


def test_materialize_an_azure_month_from_an_unzipped_tree(tmp_path: Path) -> None:
    month = write_synthetic_month(tmp_path / "archive", "azure", MONTH, pools=200, days=1, layout="tree")
    lake = LocalLake(root=str(tmp_path / "lake"))
    asset = next(a for a in legacy_assets if a.key == dg.AssetKey(["legacy", "azure_history"]))
    result = dg.materialize(
        [asset],
        partition_key=PARTITION,
        resources={"lake": lake, "legacy_archive": LegacyArchive()},
        run_config={"ops": {"legacy__azure_history": {"config": {"source": str(month.location)}}}},
    )
    assert result.success
    (event,) = result.asset_materializations_for_node("legacy__azure_history")
    assert event.metadata["rows"].value == month.rows
    assert event.metadata["simulated"].value is True
    assert set(load_manifest(lake, "azure").days) == {"2024-03-01"}
    assert lake.list_keys("history/azure/2024/03/01/")


def test_too_many_bad_files_fail_the_run_naming_them(tmp_path: Path) -> None:
    month = small_month(tmp_path / "archive")
    result = dg.materialize(
        [AWS_ASSET],
        partition_key=PARTITION,
        resources={"lake": LocalLake(root=str(tmp_path / "lake")), "legacy_archive": LegacyArchive()},
        run_config={
            "ops": {
                "legacy__aws_history": {"config": {"source": str(month.location), "max_skipped_files": 0}}
            }
        },
        raise_on_error=False,
    )
    assert not result.success
    (failure,) = [e for e in result.all_events if e.is_step_failure]
    assert failure.step_failure_data is not None
    assert month.malformed is not None and month.malformed in failure.step_failure_data.error.message  # type: ignore[union-attr]


def test_a_zip_on_s3_is_fetched_to_scratch_and_removed_after(tmp_path: Path, moto_s3: None) -> None:
    month = small_month(tmp_path / "archive", days=1)
    s3 = boto3.client("s3", region_name=REGION)
    s3.put_object(Bucket="spotlake-read", Key="aws/2024/aws-2024-03.zip", Body=month.location.read_bytes())
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    archive = LegacyArchive(region_name=REGION, scratch_dir=str(scratch))
    with archive.open("s3://spotlake-read/aws/2024/aws-2024-03.zip") as source:
        names = [f.name for f in source.files()]
        assert list(scratch.iterdir()), "the zip is read from the scratch directory"
    assert len(names) == month.files + 1 and not list(scratch.iterdir())  # the snapshots and the marker
