"""Timestream records for a window's delta (docs/data-contracts.md#timestream-records). Pure: no client,
no I/O.

A window becomes one `RecordSet`: the attributes every record shares (measure name, MULTI type, time, unit,
version) go once into ``CommonAttributes``; each record carries its dimensions and measure values. Values are
strings, as the API wants them, formatted like SpotLake's ``str(value)`` (``3``, ``0.0645``, ``-1.0``,
``True``) so the existing tables keep one spelling per value.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from spotlake_assets.domain.columns import CEASED_COLUMN, SCORE_CAPACITY_COLUMNS
from spotlake_assets.domain.windows import window_start

# Run-time modules (pandas, numpy, cloud SDKs) are imported where used: loading the definitions skips them.
if TYPE_CHECKING:
    import pandas as pd

# WriteRecords accepts at most this many records per call.
MAX_RECORDS_PER_WRITE = 100
# Version = window start in ms * this + revision: unique per window and revision, and a rerun of the same
# revision sends the same Version, which Timestream treats as the same write (an upsert, not a duplicate).
VERSION_REVISIONS = 100

MeasureType = Literal["BIGINT", "DOUBLE", "BOOLEAN", "VARCHAR", "TIMESTAMP"]
Record = dict[str, Any]
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class MeasureSpec:
    """One attribute of the MULTI measure. ``type`` None: inferred from the column's dtype."""

    name: str
    type: MeasureType | None = None


@dataclass(frozen=True)
class TimestreamMapping:
    """How a provider's delta columns map onto its Timestream table."""

    table: str
    measure_name: str
    dimensions: tuple[str, ...]
    measures: tuple[MeasureSpec, ...]


AWS_MAPPING = TimestreamMapping(
    table="aws",
    measure_name="aws_values",
    dimensions=("InstanceType", "Region", "AZ", "OndemandPrice", CEASED_COLUMN),
    measures=(
        MeasureSpec("SPS", "BIGINT"),
        # Not in SpotLake's table: the TargetCapacity the SPS was measured at (domain/scores.py).
        MeasureSpec("SPSCapacity", "BIGINT"),
        MeasureSpec("T3", "BIGINT"),
        MeasureSpec("T2", "BIGINT"),
        MeasureSpec("IF", "DOUBLE"),
        MeasureSpec("SpotPrice", "DOUBLE"),
    ),
)


def default_mapping(
    provider: str, key_columns: Sequence[str], feature_columns: Sequence[str]
) -> TimestreamMapping:
    """SpotLake's mapping for AWS; for any other provider (Azure included) the key columns are the
    dimensions and the features plus ``Ceased`` are the measures, typed from the delta's dtypes, each
    score followed by the capacity it was measured at (Azure ``ScoreCount``, `domain.scores`)."""
    if provider == "aws":
        return AWS_MAPPING
    measures: list[MeasureSpec] = []
    for column in feature_columns:
        measures.append(MeasureSpec(column))
        if column in SCORE_CAPACITY_COLUMNS:
            measures.append(MeasureSpec(SCORE_CAPACITY_COLUMNS[column], "BIGINT"))
    return TimestreamMapping(
        table=provider,
        measure_name=f"{provider}_values",
        dimensions=tuple(key_columns),
        measures=(*measures, MeasureSpec(CEASED_COLUMN, "BOOLEAN")),
    )


@dataclass(frozen=True)
class RecordSet:
    """The records of one window for one table, with the attributes they share."""

    table: str
    common: Mapping[str, Any]
    records: Sequence[Record]
    # Each record's dimensions as a readable "name=value, ..." string, for rejection reports.
    labels: Sequence[str] = field(default_factory=tuple)

    def __len__(self) -> int:
        return len(self.records)

    def batches(self, size: int = MAX_RECORDS_PER_WRITE) -> Iterator[tuple[int, Sequence[Record]]]:
        """(offset of the first record, records) per WriteRecords call, in record order."""
        if not 0 < size <= MAX_RECORDS_PER_WRITE:
            raise ValueError(f"batch size {size} is outside 1..{MAX_RECORDS_PER_WRITE}")
        for start in range(0, len(self.records), size):
            yield start, self.records[start : start + size]

    def effective(self) -> list[Record]:
        """Each record with the common attributes applied, as Timestream stores it."""
        return [effective_record(self.common, record) for record in self.records]


def effective_record(common: Mapping[str, Any], record: Mapping[str, Any]) -> Record:
    """``record`` with ``common`` applied underneath (a record's own attribute wins, as in the API)."""
    return {**common, **record}


def window_version(partition_key: str, revision: int = 0) -> int:
    """The Version of every record of a window: deterministic, so a rerun upserts instead of duplicating.

    Bump ``revision`` (0..99) to overwrite a window on purpose with corrected values: Timestream only
    replaces a record by one with a higher Version.
    """
    if not 0 <= revision < VERSION_REVISIONS:
        raise ValueError(f"revision {revision} is outside 0..{VERSION_REVISIONS - 1}")
    return window_ms(window_start(partition_key)) * VERSION_REVISIONS + revision


def window_ms(moment: datetime) -> int:
    """Milliseconds since the epoch (a naive datetime is read as UTC)."""
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    # Integer arithmetic: a float timestamp can be off by one millisecond.
    return (aware - _EPOCH) // timedelta(milliseconds=1)


def infer_measure_type(dtype: Any) -> MeasureType:
    import pandas as pd

    if pd.api.types.is_bool_dtype(dtype):
        return "BOOLEAN"
    if pd.api.types.is_integer_dtype(dtype):
        return "BIGINT"
    if pd.api.types.is_float_dtype(dtype):
        return "DOUBLE"
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return "TIMESTAMP"
    return "VARCHAR"


def _format(value: Any, kind: MeasureType | Literal["DIMENSION"]) -> str:
    if kind == "BIGINT":
        return str(int(value))
    if kind == "DOUBLE":
        return repr(float(value))
    if kind == "BOOLEAN":
        return "true" if value else "false"
    if isinstance(value, bool):
        # SpotLake wrote dimensions with str(): its tables hold "True"/"False" for Ceased.
        return str(value)
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _strings(values: pd.Series, kind: MeasureType | Literal["DIMENSION"]) -> list[str | None]:
    """Each value as the API's string, or None where it is missing (the attribute is then left out)."""
    import numpy as np
    import pandas as pd

    present = ~values.isna().to_numpy()
    out: list[str | None] = [None] * len(values)
    if kind == "TIMESTAMP":
        stamps = pd.to_datetime(values[present], utc=True)
        texts = [str(window_ms(t.to_pydatetime())) for t in stamps]
    else:
        # tolist() hands back Python scalars (int, float, bool, str), which format fast and exactly.
        texts = [_format(v, kind) for v in values[present].tolist()]
    for row, text in zip(np.flatnonzero(present).tolist(), texts, strict=True):
        out[row] = text or None
    return out


def build_records(frame: pd.DataFrame, mapping: TimestreamMapping, time: datetime, version: int) -> RecordSet:
    """One MULTI-measure record per row of ``frame`` (a delta), all stamped ``time`` (the window start).

    A missing dimension or measure value (NaN, None, empty string) is left out of its record rather than
    sent as "nan", which Timestream would reject. A delta written before the score-capacity columns
    existed gets their documented fill (`domain.scores.with_score_capacity`). Raises ``ValueError``
    naming mapped columns ``frame`` lacks, and for a row left with no measure at all.
    """
    from spotlake_assets.domain.scores import with_score_capacity

    frame = with_score_capacity(frame)
    missing = [c for c in (*mapping.dimensions, *(m.name for m in mapping.measures)) if c not in frame]
    if missing:
        raise ValueError(f"the delta lacks columns {missing} mapped to Timestream table {mapping.table!r}")
    if version < 1:
        raise ValueError(f"Timestream versions start at 1, got {version}")
    dimensions = [(name, _strings(frame[name], "DIMENSION")) for name in mapping.dimensions]
    measures = []
    for spec in mapping.measures:
        kind = spec.type or infer_measure_type(frame[spec.name].dtype)
        measures.append((spec.name, kind, _strings(frame[spec.name], kind)))
    records: list[Record] = []
    labels: list[str] = []
    for row in range(len(frame)):
        dims = [{"Name": name, "Value": texts[row]} for name, texts in dimensions if texts[row] is not None]
        values = [
            {"Name": name, "Value": strings[row], "Type": kind}
            for name, kind, strings in measures
            if strings[row] is not None
        ]
        label = ", ".join(f"{d['Name']}={d['Value']}" for d in dims)
        if not values:
            raise ValueError(f"row {row} ({label}) has no measure value to send")
        records.append({"Dimensions": dims, "MeasureValues": values})
        labels.append(label)
    common = {
        "MeasureName": mapping.measure_name,
        "MeasureValueType": "MULTI",
        "Time": str(window_ms(time)),
        "TimeUnit": "MILLISECONDS",
        "Version": version,
    }
    return RecordSet(table=mapping.table, common=common, records=records, labels=labels)
