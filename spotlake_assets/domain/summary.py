"""Reading materialization metadata back for printed summaries (`make demo`): pure, no printing here."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

Metadata = Mapping[str, Any]


def metadata_value(metadata: Metadata, name: str, default: Any = "-") -> Any:
    """The plain value of ``metadata[name]`` (a Dagster ``MetadataValue`` or a raw value), else ``default``
    so a summary line still prints when an asset reported less than usual (e.g. a skipped collector)."""
    entry = metadata.get(name, default)
    return getattr(entry, "value", entry)
