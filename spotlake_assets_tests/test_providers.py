"""Every provider package has the same file set (docs/adding-a-provider.md), and every package listed in
`providers.PROVIDERS` is one of them: a new provider copies the shape, not an old provider's code."""

from __future__ import annotations

from pathlib import Path

import spotlake_assets
from spotlake_assets.providers import PROVIDERS

PACKAGE = Path(spotlake_assets.__file__).parent
REQUIRED = {
    "__init__.py",
    "assets.py",
    "budget.py",
    "catalogue.py",
    "constants.py",
    "credentials.py",
    "definitions.py",
    "demo.py",
    "environment.py",
    "frames.py",
    "merge.py",
    "models.py",
    "resources.py",
    "simulation.py",
    "workload.py",
}


def _modules(provider: str) -> set[str]:
    return {p.name for p in (PACKAGE / provider).glob("*.py")}


def test_every_provider_package_has_the_same_file_set() -> None:
    names = [spec.name for spec in PROVIDERS]
    assert names == ["aws", "azure"]
    for name in names:
        assert _modules(name) == REQUIRED, name
        assert (PACKAGE / name / "collectors" / "__init__.py").is_file()
