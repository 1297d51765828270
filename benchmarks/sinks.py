"""Benchmark of the sinks: Timestream records built and written per second, one day of history written and
compacted, and DuckDB query latency through `spotlake query`'s engine.

Data (labelled synthetic): the pools are the real full-scale catalogue's (every instance type offered in
every AZ id, ~64k pools, from the packaged moto snapshot); values are random. The day is 144 synthesised
window deltas with the real delta schema (categorical keys, int64 scores, float prices, UTC times,
Ceased): the first window holds every pool, later ones ~7% of pools (~24% in the capacity-1 windows, one
in 11), and a few ceased pools, the rates the simulation shows. Running 144 full simulated windows instead
would take about an hour and measure the collectors, not the sinks.

Timestream writes go through the real boto3 client (serialisation, signing, endpoint discovery, parallel
writers); its HTTP layer answers WriteRecords with a canned success, so the figure is the client side's
ceiling, not the service's.

    .venv/bin/python benchmarks/sinks.py [--windows 144] [--writers 8] [--repeat 5] [--latency-ms 30]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from botocore.awsrequest import AWSResponse, HTTPHeaders

from spotlake_assets.aws.catalogue import load_catalogue
from spotlake_assets.aws.constants import KEY_COLUMNS
from spotlake_assets.domain.windows import window_key
from spotlake_assets.orchestration.metrics import peak_rss_mib
from spotlake_assets.query.engine import LatestFilter, PoolFilter, SpotQuery
from spotlake_assets.query.lake import ArrowLake
from spotlake_assets.sinks.history import compact_day, write_window_history
from spotlake_assets.sinks.latest import latest_records_json
from spotlake_assets.sinks.records import AWS_MAPPING, build_records, window_version
from spotlake_assets.sinks.timestream import Boto3Timestream, LocalTimestream
from spotlake_assets.storage.keys import latest_key
from spotlake_assets.storage.lake import LocalLake

DAY = datetime(2026, 3, 2, tzinfo=UTC)


def pools() -> pd.DataFrame:
    catalogue = load_catalogue(1.0)
    rows = [
        (o.instance_type, region, o.zone_id)
        for region, offerings in catalogue.offerings_by_region.items()
        for o in offerings
    ]
    return pd.DataFrame(rows, columns=list(KEY_COLUMNS)).sort_values(list(KEY_COLUMNS), ignore_index=True)


def snapshot(keys: pd.DataFrame, rng: np.random.Generator, when: datetime) -> pd.DataFrame:
    n = len(keys)
    sps = rng.integers(1, 10, n)
    ondemand = np.round(rng.uniform(0.005, 30.0, n), 5)
    spot = np.round(ondemand * rng.uniform(0.1, 0.9, n), 5)
    return pd.DataFrame(
        {
            "InstanceType": pd.Categorical(keys["InstanceType"]),
            "Region": pd.Categorical(keys["Region"]),
            "AZ": pd.Categorical(keys["AZ"]),
            "SPS": sps,
            "T3": np.where(sps >= 3, 50, 0),
            "T2": np.where(sps >= 2, 50, 0),
            "IF": rng.choice([3.0, 2.5, 2.0, 1.5, 1.0], n),
            "OndemandPrice": ondemand,
            "SpotPrice": spot,
            "Savings": (100 - 100 * spot / ondemand).astype(np.int64),
            "Time": pd.Series([pd.Timestamp(when)] * n, dtype="datetime64[ns, UTC]"),
        }
    )


def day_of_deltas(windows: int, seed: int = 7) -> Iterator[tuple[str, pd.DataFrame]]:
    """(partition key, delta) for each window of the day: all pools first, then the changed ones."""
    rng = np.random.default_rng(seed)
    keys = pools()
    state = snapshot(keys, rng, DAY)
    yield window_key(DAY), state.assign(Ceased=False)
    for i in range(1, windows):
        when = DAY + i * timedelta(minutes=10)
        rate = 0.24 if i % 11 == 0 else 0.07
        changed = np.flatnonzero(rng.random(len(state)) < rate)
        fresh = snapshot(keys.iloc[changed].reset_index(drop=True), rng, when)
        ceased = state.iloc[rng.choice(len(state), 30, replace=False)].copy()
        ceased[["SPS", "T3", "T2"]] = 0
        ceased[["IF", "OndemandPrice", "SpotPrice"]] = 0.0
        ceased["Time"] = pd.Timestamp(when)
        delta = pd.concat([fresh.assign(Ceased=False), ceased.assign(Ceased=True)], ignore_index=True)
        delta = delta.drop_duplicates(list(KEY_COLUMNS), keep="last")
        for column in KEY_COLUMNS:
            delta[column] = pd.Categorical(delta[column].astype(str))
        yield window_key(when), delta.sort_values(list(KEY_COLUMNS), ignore_index=True)


class _Body:
    def __init__(self, data: bytes) -> None:
        self._data = data

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._data


def canned_timestream(client: Any, latency_s: float = 0.0) -> None:
    """Answer DescribeEndpoints and WriteRecords at the HTTP layer (after serialisation and signing),
    after ``latency_s`` (a stand-in for the network round trip, during which other writers proceed)."""

    def answer(request: Any, **_: Any) -> AWSResponse:
        time.sleep(latency_s)
        target = request.headers.get("X-Amz-Target", b"")
        target = target.decode() if isinstance(target, bytes) else str(target)
        if target.endswith("DescribeEndpoints"):
            document: dict[str, Any] = {
                "Endpoints": [
                    {
                        "Address": "ingest-cell1.timestream.us-west-2.amazonaws.com",
                        "CachePeriodInMinutes": 1440,
                    }
                ]
            }
        else:
            total = len(json.loads(request.body)["Records"])
            document = {"RecordsIngested": {"Total": total, "MemoryStore": total, "MagneticStore": 0}}
        headers = HTTPHeaders()
        headers["Content-Type"] = "application/x-amz-json-1.0"
        return AWSResponse(request.url, 200, headers, _Body(json.dumps(document).encode()))

    client.meta.events.register("before-send.timestream-write", answer)


def timed(action: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    """Median wall seconds of ``repeat`` runs, and the last result."""
    times, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = action()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--windows", type=int, default=144)
    parser.add_argument("--writers", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--latency-ms", type=int, default=30, help="simulated round trip per WriteRecords")
    args = parser.parse_args()
    for name, value in {"AWS_ACCESS_KEY_ID": "benchmark", "AWS_SECRET_ACCESS_KEY": "benchmark"}.items():
        os.environ.setdefault(name, value)
    os.environ["AWS_EC2_METADATA_DISABLED"] = "true"

    started = time.perf_counter()
    deltas = list(day_of_deltas(args.windows))
    rows = sum(len(d) for _, d in deltas)
    print(
        f"synthetic day: {args.windows} windows, {len(deltas[0][1]):,} pools, {rows:,} delta rows "
        f"(built in {time.perf_counter() - started:.1f} s)"
    )

    # --- Timestream -------------------------------------------------------------------------------------
    first_key, first = deltas[0]
    build_s, records = timed(
        lambda: build_records(first, AWS_MAPPING, DAY, window_version(first_key)), args.repeat
    )
    print(f"records built: {len(records):,} in {build_s:.2f} s = {len(records) / build_s:,.0f} records/s")
    sink = Boto3Timestream(writers=args.writers, retry_mode="standard")
    canned_timestream(sink.client())
    write_s, report = timed(lambda: sink.write(records), max(1, args.repeat // 2))
    print(
        f"records written (boto3 client, {args.writers} writers, canned answers): {report.ingested:,} in "
        f"{report.calls} calls, {write_s:.2f} s = {report.ingested / write_s:,.0f} records/s"
    )
    one_writer = Boto3Timestream(writers=1, retry_mode="standard")
    canned_timestream(one_writer.client())
    single_s, _ = timed(lambda: one_writer.write(records), 1)
    print(f"  same with 1 writer: {single_s:.2f} s = {len(records) / single_s:,.0f} records/s")
    typical = deltas[1][1]
    typical_records = build_records(typical, AWS_MAPPING, DAY, window_version(deltas[1][0]))
    for writers in (1, args.writers):
        remote = Boto3Timestream(writers=writers, retry_mode="standard")
        canned_timestream(remote.client(), args.latency_ms / 1000)
        remote_s, _ = timed(partial(remote.write, typical_records), 1)
        print(
            f"  a typical window ({len(typical_records):,} records) with {args.latency_ms} ms per call, "
            f"{writers} writer(s): {remote_s:.2f} s = {len(typical_records) / remote_s:,.0f} records/s"
        )
    with tempfile.TemporaryDirectory() as tmp:
        local = LocalTimestream(root=tmp, writers=args.writers)
        local_s, _ = timed(lambda: local.write(typical_records), args.repeat)
        print(f"local sink, a typical window ({len(typical_records):,} records): {local_s:.2f} s")

    # --- history ---------------------------------------------------------------------------------------
    with tempfile.TemporaryDirectory() as tmp:
        lake = LocalLake(root=str(Path(tmp) / "lake"))
        started = time.perf_counter()
        for key, delta in deltas:
            write_window_history(lake, "aws", key, delta, KEY_COLUMNS)
        history_s = time.perf_counter() - started
        window_bytes = sum(len(lake.read_bytes(k)) for k in lake.list_keys("history/aws/"))
        print(
            f"history: {len(deltas)} windows written in {history_s:.2f} s "
            f"({history_s / len(deltas) * 1000:.0f} ms/window, first window {len(first):,} rows), "
            f"{window_bytes / 2**20:.1f} MiB"
        )
        started = time.perf_counter()
        done = compact_day(lake, "aws", DAY.strftime("%Y-%m-%d"), KEY_COLUMNS)
        compact_s = time.perf_counter() - started
        print(
            f"compaction: {done.entry.rows:,} rows from {len(done.entry.windows)} files in "
            f"{compact_s:.2f} s, {done.input_bytes / 2**20:.1f} MiB -> {done.output_bytes / 2**20:.1f} MiB"
        )

        # --- DuckDB --------------------------------------------------------------------------------------
        final = pd.concat([d for _, d in deltas]).drop_duplicates(list(KEY_COLUMNS), keep="last")
        final = final[~final["Ceased"]].drop(columns=["Ceased"]).assign(Time=deltas[-1][1]["Time"].iloc[0])
        lake.write_bytes(latest_key("aws"), latest_records_json(final))
        reader = ArrowLake.open(lake.root)
        kind = "m5.large"
        pool = final[final["InstanceType"].astype(str) == kind].iloc[0]
        cold_s, result = timed(
            lambda: SpotQuery(reader, "aws").latest(LatestFilter(instance_type=kind)), args.repeat
        )
        warm = SpotQuery(reader, "aws")
        warm.latest_table()
        warm_s, _ = timed(lambda: warm.latest(LatestFilter(instance_type=kind)), args.repeat)
        print(
            f"query latest for one type ({kind}, {len(result)} pools of {len(final):,}): "
            f"{cold_s * 1000:.0f} ms with the JSON load, {warm_s * 1000:.0f} ms warm"
        )
        target = PoolFilter(kind, str(pool["Region"]), str(pool["AZ"]))
        end = DAY + timedelta(days=1) - timedelta(minutes=10)
        compacted_s, series = timed(
            lambda: SpotQuery(reader, "aws").series(target, DAY, end, timedelta(0)), args.repeat
        )
        manifest = "history_daily/aws/manifest.json"
        kept = lake.read_bytes(manifest)
        (Path(lake.root) / manifest).unlink()
        windows_s, _ = timed(
            lambda: SpotQuery(reader, "aws").series(target, DAY, end, timedelta(0)), args.repeat
        )
        lake.write_bytes(manifest, kept)
        print(
            f"query one pool over a day ({len(series)} rows): {compacted_s * 1000:.0f} ms from the compacted "
            f"day, {windows_s * 1000:.0f} ms from {len(deltas)} window files"
        )
    print(f"peak RSS {peak_rss_mib():.0f} MiB")


if __name__ == "__main__":
    main()
