"""Shared helpers of the legacy import tests: a synthetic month, a lake's content, a crash at a step."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from pathlib import Path

from spotlake_assets.legacy.importer import MonthReport, StepHook, import_month
from spotlake_assets.legacy.layouts import AWS_LAYOUT
from spotlake_assets.legacy.sources import LegacyArchive
from spotlake_assets.legacy.synthetic import SyntheticMonth, write_synthetic_month
from spotlake_assets.storage.lake import LocalLake

MONTH = date(2024, 3, 1)
POOLS = 300
DAYS = 2


def small_month(target: Path, layout: str = "zip", **options: object) -> SyntheticMonth:
    settings: dict[str, object] = {"pools": POOLS, "days": DAYS, "seed": 15, "layout": layout}
    settings.update(options)
    return write_synthetic_month(target, "aws", MONTH, **settings)  # type: ignore[arg-type]


def run_import(
    lake: LocalLake, location: Path | str, *, on_step: StepHook | None = None, max_skipped_files: int = 50
) -> MonthReport:
    with LegacyArchive().open(str(location)) as source:
        if on_step is None:
            return import_month(lake, source, AWS_LAYOUT, MONTH, max_skipped_files=max_skipped_files)
        return import_month(
            lake, source, AWS_LAYOUT, MONTH, on_step=on_step, max_skipped_files=max_skipped_files
        )


def lake_content(root: Path) -> Mapping[str, bytes]:
    """Every object of a local lake (its lock and temporary files left out)."""
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.name.startswith(".")
    }


class Crash(Exception):
    """Stands for a kill: raised from the step hook, so nothing after that step runs."""


class CrashAt:
    """A step hook that raises `Crash` at the ``at``-th step (0-based) it sees, and counts steps."""

    def __init__(self, at: int | None) -> None:
        self.at = at
        self.steps = 0

    def __call__(self, step: str) -> None:
        if self.at is not None and self.steps == self.at:
            self.steps += 1
            raise Crash(step)
        self.steps += 1
