"""Paths and parsed Terraform shared by the infra tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
INFRA = REPO / "infra"


def unquote(value: Any) -> Any:
    """python-hcl2 keeps string literals quoted ('"SPOT"'); expressions stay as '${...}'."""
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


def clean(node: Any) -> Any:
    """Unquote every key and literal of a python-hcl2 tree and drop its block markers."""
    if isinstance(node, dict):
        return {unquote(k): clean(v) for k, v in node.items() if k != "__is_block__"}
    if isinstance(node, list):
        return [clean(v) for v in node]
    return unquote(node)


@pytest.fixture(scope="module")
def terraform() -> dict[str, list[dict[str, Any]]]:
    """Every top-level block of infra/*.tf, cleaned, grouped by block type ("resource", "variable", ...)."""
    hcl2 = pytest.importorskip(
        "hcl2", reason="python-hcl2 is not installed: structural Terraform tests not run"
    )
    blocks: dict[str, list[dict[str, Any]]] = {}
    for path in sorted(INFRA.glob("*.tf")):
        with path.open() as handle:
            parsed = clean(hcl2.load(handle))
        for block_type, entries in parsed.items():
            blocks.setdefault(block_type, []).extend(entries)
    return blocks
