"""`legacy/aws_history` and `legacy/azure_history`: a month of SpotLake's published history per partition,
imported into our history (`importer`). Their jobs carry the large job class tag, so in production they run
on the large Batch queue (more memory and vCPU, a scratch volume for a downloaded zip, Spot)."""

# No `from __future__ import annotations`: Dagster inspects the runtime annotations of asset functions.

from datetime import date
from typing import TYPE_CHECKING, Any

import dagster as dg

from spotlake_assets.batch_launcher.launcher import JOB_CLASS_TAG
from spotlake_assets.domain.legacy import LegacyLayout
from spotlake_assets.legacy.layouts import AWS_LAYOUT, AZURE_LAYOUT
from spotlake_assets.legacy.sources import DEFAULT_SOURCE, LegacyArchive, resolve_location
from spotlake_assets.orchestration.metrics import Stopwatch
from spotlake_assets.orchestration.reporting import run_metadata
from spotlake_assets.storage.lake import LakeResource

# Run-time modules (pandas, numpy, cloud SDKs) are imported where used: loading the definitions skips them.
if TYPE_CHECKING:
    from spotlake_assets.legacy.importer import MonthReport

# SpotLake publishes a month once it is over; its AWS dataset starts in 2022.
legacy_month_partitions = dg.MonthlyPartitionsDefinition(start_date="2022-01-01", timezone="UTC")
LARGE_JOB_CLASS = "large"
# A Spot reclaim fails the run; a retry resumes from the last finished day (run retries are FROM_FAILURE).
JOB_TAGS = {JOB_CLASS_TAG: LARGE_JOB_CLASS, "dagster/max_retries": "5"}
MAX_LISTED = 50


class LegacyImportConfig(dg.Config):
    # A .zip path, a directory, s3://bucket/prefix/ or s3://bucket/key.zip; {provider} {year} {month} filled.
    source: str = DEFAULT_SOURCE
    # Files the import may skip (unreadable, outside the month, duplicated) before it fails the run.
    max_skipped_files: int = 50
    # AWS zone name -> zone id for files that wrote names (names are per account: only SpotLake's own map is
    # right, so none is guessed); names without an entry are kept and counted (unmapped_zone_names).
    zone_ids: dict[str, str] = {}


def _metadata(report: "MonthReport", watch: Stopwatch, location: str) -> dict[str, Any]:
    rows = report.total("rows_in", imported_only=True)
    seconds = max(watch.seconds(), 1e-3)
    skipped = report.all_skipped()
    return run_metadata(
        watch,
        rows=rows,
        api_calls=0,
        simulated=report.synthetic,
        location=location,
        rows_per_second=round(rows / seconds),
        days_imported=len(report.imported_days),
        days_already_imported=len(report.days) - len(report.imported_days),
        missing_days=dg.MetadataValue.json([d.isoformat() for d in report.missing_days]),
        windows=report.total("windows_count", imported_only=True),
        history_rows=report.total("history_rows", imported_only=True),
        gap_windows=sum(int(g["windows"]) for g in report.gaps()),
        gaps=dg.MetadataValue.json(report.gaps()[:MAX_LISTED]),
        skipped_files=len(skipped),
        skipped=dg.MetadataValue.json([s.as_json() for s in skipped[:MAX_LISTED]]),
        dropped_rows=dg.MetadataValue.json(report.dropped()),
        conflicts=dg.MetadataValue.json([c for d in report.days for c in d.conflicts][:MAX_LISTED]),
        unmapped_zone_names=report.total("unmapped_zone_names"),
    )


def build_legacy_asset(layout: LegacyLayout) -> dg.AssetsDefinition:
    provider = layout.provider
    key = dg.AssetKey(["legacy", f"{provider}_history"])

    @dg.asset(
        key=key,
        group_name="legacy",
        partitions_def=legacy_month_partitions,
        kinds={"parquet"},
        required_resource_keys={"lake", "legacy_archive"},
        description=(
            f"A month of SpotLake's published {provider} snapshots (a zip, a directory or an S3 prefix, read "
            "one file at a time) normalised to our merged schema, delta'd with our delta code and written "
            f"as history/{provider} windows and a history_daily/{provider} day, as the live pipeline would. "
            "Idempotent and resumable: each day is checkpointed in state/legacy/ after its create-only "
            "writes, a checkpointed day is skipped, and a collected window wins over an imported one. Gaps "
            "are recorded, never filled."
        ),
        check_specs=[
            dg.AssetCheckSpec("no_gaps", asset=key, description="Every window of the month had a snapshot."),
            dg.AssetCheckSpec(
                "no_conflicts", asset=key, description="No imported window differed from a collected one."
            ),
        ],
    )
    def legacy_history(context: dg.AssetExecutionContext, config: LegacyImportConfig) -> dg.MaterializeResult:
        from spotlake_assets.legacy.importer import LegacyImportError, import_month, month_record_key

        watch = Stopwatch()
        lake: LakeResource = context.resources.lake
        archive: LegacyArchive = context.resources.legacy_archive
        month = date.fromisoformat(context.partition_key)
        with archive.open(resolve_location(config.source, provider, month)) as source:
            try:
                report = import_month(
                    lake,
                    source,
                    layout,
                    month,
                    zone_ids=config.zone_ids or None,
                    max_skipped_files=config.max_skipped_files,
                )
            except LegacyImportError as exc:
                # Bad input fails the same way on every retry: fail without one (the finished days stay).
                raise dg.Failure(str(exc), allow_retries=False) from exc
            described = source.describe()
        gaps = report.gaps()
        conflicts = [c for d in report.days for c in d.conflicts]
        metadata = _metadata(report, watch, described)
        metadata["record"] = dg.MetadataValue.path(lake.location(month_record_key(provider, month)))
        return dg.MaterializeResult(
            metadata=metadata,
            check_results=[
                dg.AssetCheckResult(
                    check_name="no_gaps",
                    passed=not gaps,
                    severity=dg.AssetCheckSeverity.WARN,
                    metadata={"gap_windows": sum(int(g["windows"]) for g in gaps)},
                ),
                dg.AssetCheckResult(
                    check_name="no_conflicts",
                    passed=not conflicts,
                    severity=dg.AssetCheckSeverity.WARN,
                    metadata={"conflicts": len(conflicts)},
                ),
            ],
        )

    return legacy_history


legacy_assets = [build_legacy_asset(AWS_LAYOUT), build_legacy_asset(AZURE_LAYOUT)]
legacy_jobs = [
    dg.define_asset_job(
        f"legacy_{layout.provider}_import_job",
        selection=dg.AssetSelection.assets(dg.AssetKey(["legacy", f"{layout.provider}_history"])),
        partitions_def=legacy_month_partitions,
        tags=JOB_TAGS,
        description=(
            f"Imports one month of SpotLake's {layout.provider} history (partition = month) on the large "
            "Batch job class; a retry after a Spot reclaim resumes from the last finished day."
        ),
    )
    for layout in (AWS_LAYOUT, AZURE_LAYOUT)
]
