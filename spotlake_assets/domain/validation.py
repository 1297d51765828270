"""Validation where data enters: the parsers of API responses and files call these before anything is
stored or checkpointed. Pure: no Dagster, no I/O."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from typing import Any

# Invisible format characters (zero-width space/joiners, word joiner, BOM) that copy-pasted or hand-edited
# catalogues carry; an identifier never contains any of them.
_ZERO_WIDTH = re.compile("[\u200b\u200c\u200d\u2060\ufeff]")


class MalformedResponse(ValueError):
    """An answer from an API or a file that breaks its contract. Names the call, the field, the offending
    value and the row, so the first line of a failed run says exactly what was wrong. Never retried:
    asking again gets the same answer."""

    def __init__(self, call: str, field: str, value: Any, row: Any = None, reason: str = "") -> None:
        where = f" in row {row!r}" if row is not None else ""
        why = f": {reason}" if reason else ""
        super().__init__(f"malformed response from {call}: field {field!r} = {value!r}{where}{why}")
        self.call, self.field, self.value, self.row, self.reason = call, field, value, row, reason


def normalise_name(value: Any, *, call: str, field: str, row: Any = None) -> str:
    """An identifier (instance type, region, AZ id) in NFC form with surrounding whitespace and invisible
    characters (zero-width spaces, BOM) removed; a non-string, an empty result or an inner space is
    malformed, so `m5.large ` and `m5.large\u200b` never become types of their own."""
    if not isinstance(value, str):
        raise MalformedResponse(call, field, value, row, "not a string")
    cleaned = _ZERO_WIDTH.sub("", unicodedata.normalize("NFC", value)).strip()
    if not cleaned:
        raise MalformedResponse(call, field, value, row, "empty")
    if any(ch.isspace() for ch in cleaned):
        raise MalformedResponse(call, field, value, row, "contains whitespace")
    return cleaned


def parse_int_in_range(value: Any, low: int, high: int, *, call: str, field: str, row: Any = None) -> int:
    """An integer field (given as int or numeric string) within [low, high]."""
    if isinstance(value, bool):
        raise MalformedResponse(call, field, value, row, "not an integer")
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and value.strip().lstrip("+-").isdigit():
        number = int(value.strip())
    else:
        raise MalformedResponse(call, field, value, row, "not an integer")
    if not low <= number <= high:
        raise MalformedResponse(call, field, value, row, f"outside {low}..{high}")
    return number


def parse_label(value: Any, allowed: Mapping[str, Any], *, call: str, field: str, row: Any = None) -> Any:
    """A label from a closed vocabulary (matched exactly, then case-insensitively); anything else is
    malformed rather than dropped or stored verbatim."""
    if isinstance(value, str):
        if value in allowed:
            return allowed[value]
        folded = {k.casefold(): v for k, v in allowed.items()}
        if value.strip().casefold() in folded:
            return folded[value.strip().casefold()]
    raise MalformedResponse(call, field, value, row, f"expected one of {sorted(allowed)}")
