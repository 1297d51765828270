"""Queries over the latest state and the Parquet history, on DuckDB.

The latest state (``latest_data/latest_<provider>.json``) and the history files the manifest points to are
handed to DuckDB as Arrow data; every user value reaches SQL as a bound parameter, never as SQL text. A
snapshot at a past moment is rebuilt from the history (`spotlake_assets.domain.reconstruct`).
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from spotlake_assets.domain.reconstruct import snapshot_at
from spotlake_assets.domain.scores import with_score_capacity
from spotlake_assets.domain.windows import WINDOW
from spotlake_assets.query.lake import ArrowLake
from spotlake_assets.sinks.history import history_sources, load_manifest, read_history
from spotlake_assets.sinks.latest import LATEST_TIME_FORMAT
from spotlake_assets.storage.errors import LakeKeyNotFound
from spotlake_assets.storage.keys import latest_key

# The role of a column and the names providers give it (AWS first, then Azure's).
ROLE_COLUMNS: dict[str, tuple[str, ...]] = {
    "type": ("InstanceType",),
    "region": ("Region",),
    "az": ("AZ", "AvailabilityZone"),
    "sps": ("SPS", "Score"),
    "tier": ("InstanceTier",),
}
TIME = "Time"


class QueryError(Exception):
    """A query that cannot be answered; the message is for a person. ``exit_code`` 2: bad input."""

    exit_code = 2


class EmptyResult(QueryError):
    exit_code = 1


Progress = Callable[[str], None]


def _quiet(_: str) -> None:
    return None


@dataclass(frozen=True)
class LatestFilter:
    instance_type: str | None = None
    family: str | None = None
    size: str | None = None
    region: str | None = None
    az: str | None = None
    min_sps: float | None = None
    order_by: str | None = None
    descending: bool = False


@dataclass(frozen=True)
class PoolFilter:
    instance_type: str
    region: str | None = None
    az: str | None = None


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _ts(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime(LATEST_TIME_FORMAT)


class SpotQuery:
    def __init__(self, lake: ArrowLake, provider: str, progress: Progress = _quiet) -> None:
        self.lake = lake
        self.provider = provider
        self.progress = progress
        self.connection = duckdb.connect(
            ":memory:", config={"autoinstall_known_extensions": False, "autoload_known_extensions": False}
        )
        self.connection.execute("SET TimeZone = 'UTC'")
        self._latest: pa.Table | None = None

    # --- data ---------------------------------------------------------------------------------------------

    def latest_table(self) -> pa.Table:
        if self._latest is None:
            key = latest_key(self.provider)
            try:
                data = self.lake.read_bytes(key)
            except LakeKeyNotFound:
                found = sorted(
                    k.removeprefix("latest_data/latest_").removesuffix(".json")
                    for k in self.lake.list_keys("latest_data/latest_")
                )
                raise QueryError(
                    f"no latest {self.provider} state at {self.lake.location(key)} "
                    f"(providers with one: {', '.join(found) or 'none: has a window run yet?'})"
                ) from None
            try:
                records = json.loads(data)
                table = pa.Table.from_pylist(records) if records else pa.table({})
            except (ValueError, pa.ArrowException) as exc:
                raise QueryError(f"{self.lake.location(key)} is not a JSON array of records: {exc}") from exc
            if TIME in table.column_names:
                times = pc.strptime(table[TIME], format="%Y-%m-%d %H:%M:%S", unit="ms")
                table = table.set_column(
                    table.column_names.index(TIME), TIME, times.cast(pa.timestamp("ms", tz="UTC"))
                )
            self._latest = table
            when = table[TIME][0].as_py() if table.num_rows and TIME in table.column_names else None
            self.progress(
                f"latest {self.provider} state: {table.num_rows:,} pools"
                + (f" at {_ts(when)}" if when else "")
                + f" ({self.lake.location(key)})"
            )
        return self._latest

    def column(self, role: str, table: pa.Table) -> str:
        for name in ROLE_COLUMNS[role]:
            if name in table.column_names:
                return name
        raise QueryError(
            f"{self.provider} data has no {role} column (columns: {', '.join(table.column_names)})"
        )

    def _check_known(self, table: pa.Table, column: str, value: str, what: str) -> None:
        self._check_value(
            {str(v) for v in pc.unique(table[column]).to_pylist() if v is not None}, value, what
        )

    def _check_value(self, known: set[str], value: str, what: str) -> None:
        if value in known:
            return
        close = difflib.get_close_matches(value, sorted(known), n=5, cutoff=0.6)
        folded = [k for k in known if k.lower() == value.lower()]
        hint = f"; did you mean {', '.join(folded or close)}?" if folded or close else ""
        raise QueryError(f"unknown {self.provider} {what} {value!r}{hint}")

    # --- latest -------------------------------------------------------------------------------------------

    def latest(self, wanted: LatestFilter) -> pd.DataFrame:
        table = self.latest_table()
        if table.num_rows == 0:
            raise EmptyResult(f"the latest {self.provider} state is empty")
        type_col, region_col, az_col = (self.column(r, table) for r in ("type", "region", "az"))
        where: list[str] = []
        params: list[Any] = []
        if wanted.instance_type:
            self._check_known(table, type_col, wanted.instance_type, "instance type")
            where.append(f"{_ident(type_col)} = ?")
            params.append(wanted.instance_type)
        names = {str(n) for n in pc.unique(table[type_col]).to_pylist() if n is not None}
        for part, value, what in ((1, wanted.family, "instance family"), (2, wanted.size, "instance size")):
            if value:
                self._check_value({n.split(".")[part - 1] for n in names if "." in n}, value, what)
                where.append(f"split_part({_ident(type_col)}, '.', {part}) = ?")
                params.append(value)
        if wanted.region:
            self._check_known(table, region_col, wanted.region, "region")
            where.append(f"{_ident(region_col)} = ?")
            params.append(wanted.region)
        if wanted.az:
            self._check_known(table, az_col, wanted.az, "availability zone")
            where.append(f"{_ident(az_col)} = ?")
            params.append(wanted.az)
        if wanted.min_sps is not None:
            where.append(f"{_ident(self.column('sps', table))} >= ?")
            params.append(wanted.min_sps)
        order = [type_col, region_col, az_col]
        if wanted.order_by:
            if wanted.order_by not in table.column_names:
                raise QueryError(
                    f"cannot order by {wanted.order_by!r}: columns are {', '.join(table.column_names)}"
                )
            order = [wanted.order_by, *order]
        direction = " DESC" if wanted.descending else ""
        sql = (
            "SELECT * FROM latest"
            + (f" WHERE {' AND '.join(where)}" if where else "")
            + " ORDER BY "
            + ", ".join(f"{_ident(c)}{direction if i == 0 else ''}" for i, c in enumerate(order))
        )
        self.connection.register("latest", table)
        try:
            result = self.connection.execute(sql, params).df()
        finally:
            self.connection.unregister("latest")
        if result.empty:
            raise EmptyResult(f"no {self.provider} pool matches these filters in the latest state")
        # A latest object published before the capacity columns existed: their documented fill.
        return with_score_capacity(result)

    # --- series -------------------------------------------------------------------------------------------

    def series(self, pool: PoolFilter, start: datetime, end: datetime, lookback: timedelta) -> pd.DataFrame:
        """One pool's history rows in ``start``..``end``, led by the state in effect at ``start`` (its last
        row at or before ``start``, looked for up to ``lookback`` earlier)."""
        if end < start:
            raise QueryError(f"empty range: --end {_ts(end)} is before --start {_ts(start)}")
        earliest = start - lookback
        sources = history_sources(self.lake, self.provider, earliest.date(), end.date())
        self.progress(f"{self.provider} history {_ts(earliest)} … {_ts(end)}: {sources.describe()}")
        if not sources.keys:
            raise EmptyResult(
                f"no {self.provider} history between {_ts(start)} and {_ts(end)} at "
                f"{self.lake.location(f'history/{self.provider}/')}{self._coverage()}"
            )
        dataset = self.lake.dataset(sources.keys)
        schema = dataset.schema
        names = set(schema.names)
        type_col, region_col, az_col = (
            next((n for n in ROLE_COLUMNS[r] if n in names), ROLE_COLUMNS[r][0])
            for r in ("type", "region", "az")
        )
        where = [f"{_ident(type_col)} = ?", f"{_ident(TIME)} >= ?", f"{_ident(TIME)} <= ?"]
        params: list[Any] = [pool.instance_type, earliest, end]
        for column, value in ((region_col, pool.region), (az_col, pool.az)):
            if value:
                where.append(f"{_ident(column)} = ?")
                params.append(value)
        keys = [type_col, region_col, az_col]
        sql = (
            f"SELECT * FROM history WHERE {' AND '.join(where)} "
            f"ORDER BY {', '.join(_ident(k) for k in keys)}, {_ident(TIME)}"
        )
        self.connection.register("history", dataset)
        try:
            rows = self.connection.execute(sql, params).df()
        finally:
            self.connection.unregister("history")
        label = "/".join(v for v in (pool.instance_type, pool.region, pool.az) if v)
        if rows.empty:
            self._unknown_pool(pool)
            raise EmptyResult(
                f"no history for {self.provider} {label} between {_ts(start)} and {_ts(end)}"
                f"{self._coverage()}"
            )
        pools = rows[keys].drop_duplicates()
        if len(pools) > 1:
            shown = ", ".join("/".join(map(str, p)) for p in pools.head(10).itertuples(index=False))
            raise QueryError(
                f"{len(pools)} {self.provider} pools match {label}: {shown}"
                + (" …" if len(pools) > 10 else "")
                + "; narrow it with --region and --az"
            )
        stamp = pd.Timestamp(start)
        before = rows[rows[TIME] <= stamp]
        inside = rows[rows[TIME] > stamp]
        out = pd.concat([before.tail(1), inside]) if len(before) else inside
        if out.empty:
            raise EmptyResult(f"no history for {self.provider} {label} between {_ts(start)} and {_ts(end)}")
        # Rows from history files written before the capacity columns existed: their documented fill.
        return with_score_capacity(out.reset_index(drop=True))

    # --- snapshot -----------------------------------------------------------------------------------------

    def snapshot(self, at: datetime) -> pd.DataFrame:
        """The snapshot published for the window containing ``at``, rebuilt from the history: each live pool's
        last history row at or before the window's start (a `Ceased` row ends a pool), every row stamped with
        that start, sorted by key. The whole history up to then is read: a pool that has not changed for
        months still has its state in its last row."""
        window = _window_of(at)
        days = self._history_days()
        if not days or days[0] > window.date():
            raise EmptyResult(
                f"no {self.provider} history at or before {_ts(window)}"
                f"{self._coverage() if days else ' (the history is empty)'}"
            )
        first = datetime.combine(days[0], datetime.min.time(), tzinfo=UTC)
        table = read_history(self.lake, self.provider, first, window)
        if table is None or table.num_rows == 0:
            raise EmptyResult(f"no {self.provider} history at or before {_ts(window)}{self._coverage()}")
        self.progress(f"{self.provider} history {_ts(first)} … {_ts(window)}: {table.num_rows:,} rows")
        names = set(table.column_names)
        # Provider keys by role, in the providers' key order (Azure: tier, type, region, zone; AWS: type,
        # region, AZ): the history files do not record their key.
        keys = [n for role in ("tier", "type", "region", "az") for n in ROLE_COLUMNS[role] if n in names]
        # Rows from history files written before the capacity columns existed: their documented fill.
        frame = snapshot_at(with_score_capacity(table.to_pandas()), window, keys, TIME)
        if frame.empty:
            raise EmptyResult(f"no live {self.provider} pool at {_ts(window)}")
        return frame

    def _history_days(self) -> list[date]:
        """Every day the history holds (window files and compacted days), sorted."""
        listed = {
            date(int(y), int(m), int(d))
            for y, m, d in (k.split("/")[2:5] for k in self.lake.list_keys(f"history/{self.provider}/"))
        }
        listed |= {date.fromisoformat(day) for day in load_manifest(self.lake, self.provider).days}
        return sorted(listed)

    def _unknown_pool(self, pool: PoolFilter) -> None:
        """Raise `QueryError` when the latest state does not know the pool's instance type (or region/AZ)."""
        try:
            table = self.latest_table()
        except QueryError:
            return
        if table.num_rows == 0:
            return
        self._check_known(table, self.column("type", table), pool.instance_type, "instance type")
        if pool.region:
            self._check_known(table, self.column("region", table), pool.region, "region")
        if pool.az:
            self._check_known(table, self.column("az", table), pool.az, "availability zone")

    def _coverage(self) -> str:
        """Which days the history holds, for an error message (lists the provider's history keys)."""
        days = sorted({"-".join(k.split("/")[2:5]) for k in self.lake.list_keys(f"history/{self.provider}/")})
        return f" (history holds {days[0]} … {days[-1]})" if days else " (the history is empty)"


def _window_of(moment: datetime) -> datetime:
    """The start of the 10-minute window holding ``moment`` (UTC)."""
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    return moment - (moment.astimezone(UTC) - epoch) % WINDOW


def to_records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as JSON-ready records, times in SpotLake's ``YYYY-MM-DD HH:MM:SS``."""
    out = frame.copy()
    for column in out.columns:
        if pd.api.types.is_datetime64_any_dtype(out[column]):
            out[column] = out[column].dt.strftime(LATEST_TIME_FORMAT)
    return [
        {str(k): (None if pd.isna(v) else v) for k, v in row.items()} for row in out.to_dict(orient="records")
    ]


def render(frame: pd.DataFrame, fmt: str) -> str:
    records = to_records(frame)
    if fmt == "json":
        return json.dumps(records, indent=1, default=str) + "\n"
    shown = pd.DataFrame.from_records(records, columns=list(frame.columns))
    if fmt == "csv":
        return str(shown.to_csv(index=False))
    if fmt == "table":
        return str(shown.to_string(index=False)) + "\n"
    raise ValueError(f"unknown format {fmt!r}")


def columns_of(frame: pd.DataFrame, wanted: Sequence[str] | None) -> pd.DataFrame:
    if not wanted:
        return frame
    missing = [c for c in wanted if c not in frame.columns]
    if missing:
        raise QueryError(f"unknown columns {missing}: available are {', '.join(frame.columns)}")
    return frame[list(wanted)]
