"""AWS interruption frequency: the Spot Instance Advisor JSON, read directly (SpotLake ran the `spotinfo`
binary for this), → one IF score per (region, Linux instance type).

Document shape (published at `SPOT_ADVISOR_URL`)::

    {"global_rate": "<10%",
     "instance_types": {"m5.large": {"emr": true, "cores": 2, "ram_gb": 8.0}, ...},
     "ranges": [{"index": 0, "label": "<5%", "dots": 0, "max": 5}, ...],
     "spot_advisor": {"us-east-1": {"Linux": {"m5.large": {"s": 70, "r": 0}, ...}, "Windows": {...}}, ...}}

``r`` is an index into ``ranges``; the range's label is the interruption bucket (`IF_BUCKETS`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import pandas as pd

from spotlake_assets.aws.collectors.result import RegionalCollection
from spotlake_assets.aws.constants import IF_BUCKETS, IF_COLUMNS
from spotlake_assets.aws.resources import AwsApi
from spotlake_assets.domain.validation import normalise_name

log = logging.getLogger(__name__)

# The advisor's name for Linux/UNIX; Windows rows are not collected (docs/data-contracts.md#aws-columns).
_LINUX = "Linux"
_CALL = "spot advisor document"


class MalformedAdvisorDocument(ValueError):
    """The Spot Instance Advisor document does not have the documented shape; the message says where."""


def _range_scores(ranges: Any) -> dict[int, float]:
    """Range index → IF score, from the document's own ``ranges`` (so a reordering upstream is harmless)."""
    if not isinstance(ranges, list) or not ranges:
        raise MalformedAdvisorDocument("'ranges' must be a non-empty list")
    scores: dict[int, float] = {}
    for position, entry in enumerate(ranges):
        if not isinstance(entry, dict) or "index" not in entry or "label" not in entry:
            raise MalformedAdvisorDocument(f"ranges[{position}] must be an object with 'index' and 'label'")
        index, label = entry["index"], entry["label"]
        if not isinstance(index, int) or isinstance(index, bool):
            raise MalformedAdvisorDocument(f"ranges[{position}].index {index!r} is not an integer")
        if index in scores:
            raise MalformedAdvisorDocument(f"ranges has index {index} more than once")
        if label not in IF_BUCKETS:
            raise MalformedAdvisorDocument(
                f"ranges[{position}] has unknown bucket label {label!r} (known: {', '.join(IF_BUCKETS)})"
            )
        scores[index] = IF_BUCKETS[label]
    return scores


def _object(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise MalformedAdvisorDocument(f"{where} must be an object, not {type(value).__name__}")
    return value


def parse_spot_advisor(document: bytes) -> pd.DataFrame:
    """The advisor document → ``IF_COLUMNS`` (Region, InstanceType, IF float64), Linux only, sorted.

    Raises `MalformedAdvisorDocument` naming the problem: invalid or truncated JSON, a missing key, an
    unknown bucket label, a range index used but not defined, a range index defined twice, a (region,
    instance type) listed twice once names are normalised. Region and instance-type names are normalised
    (surrounding and zero-width spaces removed) so that they join with the other collectors; a name that
    cannot be raises `validation.MalformedResponse`.
    """
    try:
        root = json.loads(document)
    except UnicodeDecodeError as exc:
        raise MalformedAdvisorDocument(f"the advisor document is not UTF-8: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise MalformedAdvisorDocument(
            f"the advisor document is not valid JSON ({len(document)} bytes; truncated?): {exc}"
        ) from exc
    root = _object(root, "the advisor document")
    for key in ("ranges", "spot_advisor"):
        if key not in root:
            raise MalformedAdvisorDocument(f"the advisor document has no {key!r} key")
    scores = _range_scores(root["ranges"])

    regions: list[str] = []
    instance_types: list[str] = []
    values: list[float] = []
    seen: dict[tuple[str, str], str] = {}
    for raw_region, systems in _object(root["spot_advisor"], "'spot_advisor'").items():
        region = normalise_name(raw_region, call=_CALL, field="spot_advisor region", row=raw_region)
        linux = _object(systems, f"spot_advisor[{raw_region!r}]").get(_LINUX)
        if linux is None:
            # A region the advisor covers for Windows only: nothing to collect there.
            log.debug("spot advisor: %s has no Linux entries", region)
            continue
        for raw_type, entry in _object(linux, f"spot_advisor[{raw_region!r}][{_LINUX!r}]").items():
            where = f"spot_advisor[{raw_region!r}][{_LINUX!r}][{raw_type!r}]"
            instance_type = normalise_name(raw_type, call=_CALL, field="instance type", row=where)
            rate = _object(entry, where).get("r")
            if rate is None:
                raise MalformedAdvisorDocument(f"{where} has no 'r' (range index)")
            if not isinstance(rate, int) or isinstance(rate, bool) or rate not in scores:
                raise MalformedAdvisorDocument(
                    f"{where} has range index {rate!r}, not one of the ranges {sorted(scores)}"
                )
            first = seen.get((region, instance_type))
            if first is not None:
                raise MalformedAdvisorDocument(f"{where} and {first} name the same region and instance type")
            seen[(region, instance_type)] = where
            regions.append(region)
            instance_types.append(instance_type)
            values.append(scores[rate])

    frame = pd.DataFrame(
        {
            "Region": pd.Series(regions, dtype=object),
            "InstanceType": pd.Series(instance_types, dtype=object),
            "IF": pd.Series(values, dtype="float64"),
        },
        columns=list(IF_COLUMNS),
    )
    return frame.sort_values(["Region", "InstanceType"], ignore_index=True)


def uncovered_regions(frame: pd.DataFrame, expected: Iterable[str]) -> list[str]:
    """Regions of ``expected`` (the day's workload regions) without a single Linux row in the advisor
    frame, sorted: their IF would be -1 everywhere."""
    return sorted(set(expected) - set(frame["Region"].unique()))


def collect_interruption_frequency(api: AwsApi, window_start: datetime) -> RegionalCollection:
    """One download of the advisor document → IF frame. The advisor only publishes its current view, so
    ``window_start`` must be the current window (callers skip past windows)."""
    frame = parse_spot_advisor(api.spot_advisor_document(window_start))
    log.info("interruption frequency: %s rows in %s regions", len(frame), frame["Region"].nunique())
    return RegionalCollection(frame=frame, api_calls=1)
