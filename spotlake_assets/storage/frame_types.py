"""Typed frames: each lake frame's columns declared once, as dagster-pandas columns (docs/data-contracts.md).

A `FrameType` is the one declaration of a frame (raw SPS, IF, prices, workload, merged, delta, per provider;
the declarations live in each provider's ``frames.py``). From it come:

- validation of every frame read from or written to the lake (`storage.frames` takes a `FrameType` wherever
  it took a tuple of required columns): the dagster-pandas column constraints, which are whole-column pandas
  operations (dtype, nulls, ranges), so a 100k-row frame costs a few milliseconds;
- the Dagster type (``dagster_type``: `create_dagster_pandas_dataframe_type`), for anything that wants to
  type an input or output;
- the column schema published as ``dagster/column_schema`` in each frame asset's definition metadata, so the
  UI shows the same columns the code checks.

A violation raises `FrameSchemaError` naming the frame, where it was (a lake location), the column and what
was wrong, with a count and a few offending values — never the whole frame.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import TYPE_CHECKING, Any, Literal

import dagster as dg

# Run-time modules (pandas, numpy, cloud SDKs) are imported where used: loading the definitions skips them.
if TYPE_CHECKING:
    import pandas as pd
    from dagster_pandas import PandasColumn
    from dagster_pandas.constraints import ConstraintViolationException

COLUMN_SCHEMA = "dagster/column_schema"
# Offending values quoted in an error: enough to recognise the problem, never the whole frame.
SHOWN_VALUES = 5

ColumnKind = Literal["string", "int", "float", "number", "bool", "time", "list"]


def is_text(dtype: Any) -> bool:
    """Strings as pandas holds them: object, string, or categorical (the lake's key columns)."""
    import pandas as pd

    if isinstance(dtype, pd.CategoricalDtype):
        return is_text(dtype.categories.dtype)
    return bool(pd.api.types.is_object_dtype(dtype) or pd.api.types.is_string_dtype(dtype))


def is_integer(dtype: Any) -> bool:
    import pandas as pd

    return bool(pd.api.types.is_integer_dtype(dtype)) and not pd.api.types.is_bool_dtype(dtype)


def is_float(dtype: Any) -> bool:
    import pandas as pd

    return bool(pd.api.types.is_float_dtype(dtype))


def is_number(dtype: Any) -> bool:
    import pandas as pd

    return bool(pd.api.types.is_numeric_dtype(dtype)) and not pd.api.types.is_bool_dtype(dtype)


def is_boolean(dtype: Any) -> bool:
    import pandas as pd

    return bool(pd.api.types.is_bool_dtype(dtype))


def is_timestamp(dtype: Any) -> bool:
    import pandas as pd

    return bool(pd.api.types.is_datetime64_any_dtype(dtype))


def is_object(dtype: Any) -> bool:
    import pandas as pd

    return bool(pd.api.types.is_object_dtype(dtype))


_DTYPE_CHECKS: dict[ColumnKind, Callable[[Any], bool]] = {
    "string": is_text,
    "int": is_integer,
    "float": is_float,
    "number": is_number,
    "bool": is_boolean,
    "time": is_timestamp,
    "list": is_object,
}
# How the column schema names each kind (TableColumn.type is free text).
_SCHEMA_TYPES: dict[ColumnKind, str] = {
    "string": "string",
    "int": "int64",
    "float": "float64",
    "number": "number",
    "bool": "bool",
    "time": "timestamp[UTC]",
    "list": "list",
}


@contextmanager
def _beta_accepted() -> Iterator[None]:
    """dagster-pandas marks its column API beta; the pinned version (constraints.txt) is the one tested, so
    the warning would only repeat on every load."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.BetaWarning)
        yield


class FrameSchemaError(ValueError):
    """A frame that breaks its declared type: names the frame, where it was, the column and the problem."""

    def __init__(self, frame: str, column: str, problem: str, where: str = "") -> None:
        at = f" at {where}" if where else ""
        super().__init__(f"frame {frame}{at}: column {column!r} {problem}")
        self.frame, self.column, self.problem, self.where = frame, column, problem, where


@dataclass(frozen=True)
class Column:
    """One column of a lake frame: kind, nullability, inclusive range, and what it means."""

    name: str
    kind: ColumnKind
    description: str = ""
    low: float | None = None
    high: float | None = None
    nullable: bool = False

    def pandas_column(self) -> PandasColumn:
        # dagster-pandas ships no annotations for these constructors.
        from dagster_pandas import PandasColumn
        from dagster_pandas.constraints import (
            ColumnDTypeFnConstraint,
            InRangeColumnConstraint,
            NonNullableColumnConstraint,
        )

        constraints: list[Any] = [ColumnDTypeFnConstraint(_DTYPE_CHECKS[self.kind])]  # type: ignore[no-untyped-call]
        if not self.nullable:
            constraints.append(NonNullableColumnConstraint())  # type: ignore[no-untyped-call]
        if self.low is not None or self.high is not None:
            low = float("-inf") if self.low is None else self.low
            high = float("inf") if self.high is None else self.high
            constraints.append(
                InRangeColumnConstraint(low, high, ignore_missing_vals=self.nullable)  # type: ignore[no-untyped-call]
            )
        with _beta_accepted():
            return PandasColumn(self.name, constraints=constraints)  # type: ignore[no-untyped-call]

    def table_column(self) -> dg.TableColumn:
        bounds = []
        if self.low is not None:
            bounds.append(f">= {self.low:g}")
        if self.high is not None:
            bounds.append(f"<= {self.high:g}")
        return dg.TableColumn(
            self.name,
            _SCHEMA_TYPES[self.kind],
            description=self.description or None,
            constraints=dg.TableColumnConstraints(nullable=self.nullable, other=bounds),
        )


def text(name: str, description: str = "", *, nullable: bool = False) -> Column:
    return Column(name, "string", description, nullable=nullable)


def integer(
    name: str, description: str = "", *, low: float | None = None, high: float | None = None
) -> Column:
    return Column(name, "int", description, low, high)


def decimal(
    name: str, description: str = "", *, low: float | None = None, high: float | None = None
) -> Column:
    return Column(name, "float", description, low, high)


def number(
    name: str, description: str = "", *, low: float | None = None, high: float | None = None
) -> Column:
    """Any numeric dtype: raw inputs whose collectors may hand back ints or floats."""
    return Column(name, "number", description, low, high)


def boolean(name: str, description: str = "") -> Column:
    return Column(name, "bool", description)


def timestamp(name: str, description: str = "") -> Column:
    return Column(name, "time", description)


def items(name: str, description: str = "") -> Column:
    """A column of lists (object dtype; the values are not inspected)."""
    return Column(name, "list", description)


def _problem(exc: ConstraintViolationException, frame: pd.DataFrame, column: str) -> str:
    import pandas as pd
    from dagster_pandas.constraints import ColumnConstraintViolationException

    if not isinstance(exc, ColumnConstraintViolationException):
        return f"is missing (the frame has {list(map(str, frame.columns))})"
    described = str(exc.constraint_description).rstrip(".")
    offending = exc.offending_rows
    if isinstance(offending, pd.DataFrame) and column in offending.columns:
        values = offending[column].head(SHOWN_VALUES).tolist()
        return f"breaks {described!r}: {len(offending)} of {len(frame)} rows, e.g. {values}"
    return f"breaks {described!r}"


@dataclass(frozen=True)
class FrameType:
    """A lake frame's declared columns (extra columns are allowed and not checked).

    ``legacy``: how a frame written before a column existed is brought up to date on read (documented
    fills, e.g. `domain.scores.with_score_capacity`); applied before validation.
    """

    name: str
    columns: tuple[Column, ...]
    description: str = ""
    legacy: Callable[[pd.DataFrame], pd.DataFrame] | None = field(default=None, compare=False)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @cached_property
    def pandas_columns(self) -> tuple[PandasColumn, ...]:
        return tuple(c.pandas_column() for c in self.columns)

    @cached_property
    def dagster_type(self) -> dg.DagsterType:
        """The dagster-pandas DataFrame type of this frame (its type check runs the same constraints)."""
        from dagster_pandas import create_dagster_pandas_dataframe_type

        with _beta_accepted():
            dagster_type: dg.DagsterType = create_dagster_pandas_dataframe_type(  # type: ignore[no-untyped-call]
                name=self.name.replace("/", "_"),
                description=self.description,
                columns=list(self.pandas_columns),
            )
        return dagster_type

    @cached_property
    def table_schema(self) -> dg.TableSchema:
        return dg.TableSchema(columns=[c.table_column() for c in self.columns])

    def metadata(self) -> dict[str, Any]:
        """Definition metadata publishing the columns (``dagster/column_schema``)."""
        return {COLUMN_SCHEMA: dg.MetadataValue.table_schema(self.table_schema)}

    def validate(self, frame: pd.DataFrame, where: str = "") -> pd.DataFrame:
        """``frame`` when it satisfies every declared column, else `FrameSchemaError` for the first
        column that does not."""
        from dagster_pandas.constraints import ConstraintViolationException

        for declared, column in zip(self.columns, self.pandas_columns, strict=True):
            try:
                column.validate(frame)  # type: ignore[no-untyped-call]
            except ConstraintViolationException as exc:
                raise FrameSchemaError(
                    self.name, declared.name, _problem(exc, frame, declared.name), where
                ) from None
        return frame

    def conform(self, frame: pd.DataFrame, where: str = "") -> pd.DataFrame:
        """A frame read from the lake: legacy columns filled, then validated."""
        if self.legacy is not None:
            frame = self.legacy(frame)
        return self.validate(frame, where)

    def with_columns(self, name: str, extra: Sequence[Column], description: str = "") -> FrameType:
        """This type plus ``extra`` columns, under another name (a delta is a merged frame plus Ceased)."""
        return replace(
            self, name=name, columns=(*self.columns, *extra), description=description or self.description
        )


def with_column_schemas(
    assets: Iterable[dg.AssetsDefinition], types: Mapping[dg.AssetKey, FrameType]
) -> list[dg.AssetsDefinition]:
    """``assets`` with ``dagster/column_schema`` in the definition metadata of each asset ``types`` names."""

    def attach(spec: dg.AssetSpec) -> dg.AssetSpec:
        frame_type = types.get(spec.key)
        return spec if frame_type is None else spec.merge_attributes(metadata=frame_type.metadata())

    return [a.map_asset_specs(attach) if any(k in types for k in a.keys) else a for a in assets]
