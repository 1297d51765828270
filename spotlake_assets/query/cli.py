"""`spotlake query`: latest scores and prices, one pool's time series, and the snapshot at a past moment,
from the lake (DuckDB).

    spotlake query latest --instance-type m5.large --min-sps 3
    spotlake query latest --family c7g --region us-east-1 --format csv
    spotlake query series --instance-type m5.large --az use1-az1 --start 2026-03-01 --end 2026-03-02
    spotlake query snapshot --at 2026-03-01T00:25 --format csv
    spotlake query latest --lake s3://spotlake --format json

The lake is ``--lake`` (a directory or ``s3://bucket[/prefix]``), else the current environment's
(`SPOTLAKE_ENV`: local ``$SPOTLAKE_HOME/lake``, test ``s3://$SPOTLAKE_WRITE_BUCKET``, prod
``s3://$SPOTLAKE_BUCKET``), resolved by `spotlake_assets.settings` like every other entry point: an
unknown `SPOTLAKE_ENV` or a bad `SPOTLAKE_*` value fails, with ``--lake`` too. Results go to standard
output; progress and errors to standard error.
Exit codes: 0 rows printed, 1 nothing matched (an empty range, no pool), 2 a usage or lookup error.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

from spotlake_assets.query.engine import LatestFilter, PoolFilter, QueryError, SpotQuery, columns_of, render
from spotlake_assets.query.lake import ArrowLake, LakeLocationError, default_location
from spotlake_assets.settings import InvalidSetting, load_settings
from spotlake_assets.storage.errors import LakeError

FORMATS = ("table", "csv", "json")
TABLE_ROWS = 50


def _moment(text: str) -> datetime:
    """An ISO date or date-time; without a zone it is UTC."""
    try:
        moment = datetime.fromisoformat(text.strip().replace(" ", "T", 1))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a date or time (use YYYY-MM-DD or YYYY-MM-DDTHH:MM)"
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--provider", default="aws", help="aws (default) or azure")
    common.add_argument("--lake", help="lake directory or s3://bucket[/prefix] (default: the environment's)")
    common.add_argument(
        "--endpoint-url", help="S3 endpoint (e.g. a MinIO or moto server); default AWS_ENDPOINT_URL_S3"
    )
    common.add_argument("--s3-region", help="the bucket's region (default AWS_DEFAULT_REGION or us-west-2)")
    common.add_argument("--format", choices=FORMATS, default="table")
    common.add_argument("--columns", help="comma-separated columns to print (default: all)")
    common.add_argument(
        "--limit", type=int, help=f"at most this many rows (table default {TABLE_ROWS}; 0: all)"
    )
    common.add_argument("-q", "--quiet", action="store_true", help="no progress on standard error")

    parser = argparse.ArgumentParser(prog="spotlake", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    query = commands.add_parser("query", help="query the latest state and the history")
    kinds = query.add_subparsers(dest="kind", required=True)

    latest = kinds.add_parser("latest", parents=[common], help="latest scores and prices, filtered")
    latest.add_argument("--instance-type", help="exact instance type, e.g. m5.large")
    latest.add_argument("--family", help="instance family (the part before the dot), e.g. m5")
    latest.add_argument("--size", help="instance size (the part after the dot), e.g. 2xlarge")
    latest.add_argument("--region")
    latest.add_argument("--az", help="availability zone (AWS: its id, e.g. use1-az6)")
    latest.add_argument("--min-sps", type=float, help="only pools scoring at least this")
    latest.add_argument("--order-by", help="column to sort by first (default: instance type, region, AZ)")
    latest.add_argument("--desc", action="store_true", help="sort --order-by descending")

    series = kinds.add_parser("series", parents=[common], help="one pool's history over a time range")
    series.add_argument("--instance-type", required=True)
    series.add_argument("--region")
    series.add_argument("--az")
    series.add_argument("--start", type=_moment, help="range start (default: 24 h before --end)")
    series.add_argument("--end", type=_moment, help="range end (default: the latest window)")
    series.add_argument(
        "--lookback-days", type=float, default=7.0, help="how far before --start to look for its state"
    )
    snapshot = kinds.add_parser(
        "snapshot", parents=[common], help="every pool as published for the window holding --at"
    )
    snapshot.add_argument(
        "--at", type=_moment, required=True, help="a moment (UTC unless it says otherwise); its window counts"
    )
    return parser


def _progress(quiet: bool, started: float) -> Callable[[str], None]:
    def say(message: str) -> None:
        if not quiet:
            sys.stderr.write(f"spotlake: {message} [{time.perf_counter() - started:.2f}s]\n")

    return say


def _run(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    say = _progress(args.quiet, started)
    # Resolved even with --lake: a mistyped SPOTLAKE_ENV must fail here as it fails everywhere else.
    settings = load_settings()
    location = args.lake or default_location()
    endpoint = args.endpoint_url or settings.s3_endpoint_url
    region = args.s3_region or settings.region_from_environment
    try:
        lake = ArrowLake.open(location, endpoint_url=endpoint, region=region)
    except LakeLocationError as exc:
        if args.lake:
            raise
        raise LakeLocationError(
            f"{exc} (the SPOTLAKE_ENV={settings.environment} lake, from {settings.lake_variable}; "
            "--lake reads another)"
        ) from None
    engine = SpotQuery(lake, args.provider, progress=say)
    if args.kind == "latest":
        frame = engine.latest(
            LatestFilter(
                instance_type=args.instance_type,
                family=args.family,
                size=args.size,
                region=args.region,
                az=args.az,
                min_sps=args.min_sps,
                order_by=args.order_by,
                descending=args.desc,
            )
        )
    elif args.kind == "snapshot":
        frame = engine.snapshot(args.at)
    else:
        end = args.end
        if end is None:
            table = engine.latest_table()
            times = table["Time"] if "Time" in table.column_names and table.num_rows else None
            end = times[0].as_py() if times is not None else datetime.now(UTC)
        start = args.start or end - timedelta(days=1)
        frame = engine.series(
            PoolFilter(args.instance_type, args.region, args.az),
            start,
            end,
            timedelta(days=args.lookback_days),
        )
    total = len(frame)
    limit = args.limit if args.limit is not None else (TABLE_ROWS if args.format == "table" else 0)
    if limit and total > limit:
        frame = frame.head(limit)
    columns = [c.strip() for c in args.columns.split(",")] if args.columns else None
    sys.stdout.write(render(columns_of(frame, columns), args.format))
    shown = f"{len(frame):,} of {total:,} rows" if len(frame) < total else f"{total:,} rows"
    hint = " (--limit 0 prints all)" if len(frame) < total else ""
    say(f"{shown}{hint}")
    return 0


def _error(message: str) -> None:
    # The command's own output channel (not logging): a person reads it, uncluttered.
    sys.stderr.write(f"spotlake: {message}\n")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return _run(args)
    except QueryError as exc:
        _error(str(exc))
        return exc.exit_code
    except InvalidSetting as exc:
        _error(str(exc))
        return 2
    except (LakeLocationError, LakeError) as exc:
        _error(str(exc))
        return 2
    except OSError as exc:
        # pyarrow reports S3 failures (no bucket, no credentials, unreachable endpoint) as OSError.
        _error(f"cannot read the lake: {exc}")
        return 2


if __name__ == "__main__":
    sys.exit(main())
