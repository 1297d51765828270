"""Paths and parsed Terraform shared by the infra tests."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
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


# --- Terraform itself, offline: the binary on PATH, the AWS provider from a local filesystem mirror ---------

TF_TESTS = INFRA / "tests"
PROVIDER_GLOB = "registry.terraform.io/hashicorp/aws/*/*/terraform-provider-aws_*"
MIRROR_CANDIDATES = ("/opt/tf-plugins", "/usr/share/terraform/plugins", "/usr/local/share/terraform/plugins")


def provider_mirror() -> Path | None:
    """A filesystem mirror holding hashicorp/aws: $SPOTLAKE_TF_PLUGIN_MIRROR, else the usual locations."""
    configured = os.environ.get("SPOTLAKE_TF_PLUGIN_MIRROR")
    for candidate in [configured] if configured else MIRROR_CANDIDATES:
        root = Path(candidate)
        if root.is_dir() and next(root.glob(PROVIDER_GLOB), None) is not None:
            return root
    return None


@dataclass(frozen=True)
class TerraformWorkdir:
    """A copy of infra/ initialised against the mirror, so no `.terraform` ever lands in the repository."""

    binary: str
    root: Path
    env: dict[str, str]

    def run(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.binary, *args],
            cwd=self.root,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )


@pytest.fixture(scope="session")
def terraform_workdir(tmp_path_factory: pytest.TempPathFactory) -> TerraformWorkdir:
    binary = shutil.which("terraform")
    if binary is None:
        pytest.skip("terraform is not on PATH: init/validate/test of infra/ not run")
    mirror = provider_mirror()
    if mirror is None:
        pytest.skip(
            "no filesystem mirror with hashicorp/aws (set SPOTLAKE_TF_PLUGIN_MIRROR): init/validate/test of "
            "infra/ not run"
        )
    base = tmp_path_factory.mktemp("terraform")
    root = base / "infra"
    shutil.copytree(
        INFRA, root, ignore=shutil.ignore_patterns(".terraform", ".terraform.lock.hcl", "*.tfstate*")
    )
    cli_config = base / "terraform.rc"
    # Only the mirror: a provider it lacks fails init here instead of reaching for the registry.
    cli_config.write_text(
        f'provider_installation {{\n  filesystem_mirror {{\n    path = "{mirror.as_posix()}"\n  }}\n}}\n'
    )
    env = {
        **os.environ,
        "TF_CLI_CONFIG_FILE": str(cli_config),
        "TF_IN_AUTOMATION": "1",
        "CHECKPOINT_DISABLE": "1",
        "TF_DATA_DIR": str(base / "data"),
    }
    env.pop("TF_PLUGIN_CACHE_DIR", None)
    workdir = TerraformWorkdir(binary, root, env)
    init = workdir.run("init", "-backend=false", "-input=false", "-no-color")
    assert init.returncode == 0, f"terraform init failed:\n{init.stdout}\n{init.stderr}"
    return workdir


@dataclass(frozen=True)
class TerraformTestResult:
    returncode: int
    runs: dict[str, str]  # run name -> pass / fail / error / skip
    diagnostics: list[str]
    plans: dict[str, dict[str, Any]]  # run name -> the plan JSON (with -verbose)
    summary: dict[str, Any]


def terraform_test(workdir: TerraformWorkdir, *filters: str, verbose: bool = False) -> TerraformTestResult:
    """`terraform test -json` over the given test files; parsed run statuses, diagnostics and plans."""
    args = ["test", "-json", "-no-color", *(f"-filter={f}" for f in filters)]
    result = workdir.run(*args, *(["-verbose"] if verbose else []), timeout=600)
    runs: dict[str, str] = {}
    diagnostics: list[str] = []
    plans: dict[str, dict[str, Any]] = {}
    summary: dict[str, Any] = {}
    for line in result.stdout.splitlines():
        message = json.loads(line)
        kind = message.get("type")
        if kind == "test_run" and "status" in message["test_run"]:
            runs[message["test_run"]["run"]] = message["test_run"]["status"]
        elif kind == "test_plan":
            plans[message["@testrun"]] = message["test_plan"]
        elif kind == "test_summary":
            summary = message["test_summary"]
        elif kind == "diagnostic":
            diagnostic = message["diagnostic"]
            diagnostics.append(
                f"{message.get('@testrun', '')}: {diagnostic['summary']}: {diagnostic.get('detail', '')}"
                + "".join(
                    f"\n    {v['traversal']} {v['statement']}"
                    for v in diagnostic.get("snippet", {}).get("values", [])
                )
            )
    if result.stderr.strip():
        diagnostics.append(result.stderr.strip())
    return TerraformTestResult(result.returncode, runs, diagnostics, plans, summary)


def planned_after(plan: dict[str, Any], address: str) -> dict[str, Any]:
    """The planned values of one resource in a `terraform test -verbose` plan."""
    for change in plan["resource_changes"]:
        if change["address"] == address:
            after: dict[str, Any] = change["change"]["after"]
            return after
    raise KeyError(address)
