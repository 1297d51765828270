"""The deployment scripts, run in --dry-run mode: valid bash, the flags the issue names, and Terraform
variables that exist (every required one supplied)."""

from __future__ import annotations

import re
import shlex
import subprocess
from typing import Any

import pytest

from spotlake_assets_tests.infra.conftest import REPO

SCRIPTS = REPO / "scripts"
DEPLOY_ARGS = [
    "--region", "us-west-2",
    "--profile", "ops",
    "--state-bucket", "tf-state",
    "--image-uri", "123456789012.dkr.ecr.us-west-2.amazonaws.com/spotlake-assets@sha256:" + "0" * 64,
    "--vpc-id", "vpc-0abc",
    "--subnets", "subnet-1,subnet-2",
    "--security-groups", "sg-1,sg-2",
    "--bucket", "spotlake-lake",
    "--sps-secret", "spotlake/sps-credentials",
    "--auto-approve",
    "--dry-run",
]  # fmt: skip


def run_script(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SCRIPTS / name), *args], capture_output=True, text=True, timeout=60, check=False
    )


def terraform_vars(output: str, command: str) -> dict[str, str]:
    """-var NAME=VALUE pairs of the first printed `terraform <command>` line."""
    for line in output.splitlines():
        words = shlex.split(line)
        if words[:1] == ["terraform"] and command in words:
            return dict(words[i + 1].split("=", 1) for i, w in enumerate(words) if w == "-var")
    raise AssertionError(f"no terraform {command} in:\n{output}")


def variables(terraform: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    return {name: body for block in terraform["variable"] for name, body in block.items()}


@pytest.mark.parametrize("name", ["build_and_push.sh", "deploy_infra.sh", "destroy_infra.sh"])
def test_scripts_are_valid_bash_with_help(name: str) -> None:
    assert subprocess.run(["bash", "-n", str(SCRIPTS / name)], check=False).returncode == 0
    result = run_script(name, "--help")
    assert result.returncode == 0
    assert "Usage" in result.stdout


def test_deploy_flags_cover_what_exists() -> None:
    help_text = run_script("deploy_infra.sh", "--help").stdout
    for flag in (
        "--region",
        "--profile",
        "--image-uri",
        "--vpc-id",
        "--subnets",
        "--security-groups",
        "--bucket",
    ):
        assert flag in help_text


def test_deploy_sets_existing_and_all_required_variables(terraform: dict[str, list[dict[str, Any]]]) -> None:
    result = run_script("deploy_infra.sh", *DEPLOY_ARGS)
    assert result.returncode == 0, result.stderr
    assert "-backend-config=bucket=tf-state" in result.stdout
    passed = terraform_vars(result.stdout, "plan")
    declared = variables(terraform)
    assert set(passed) <= set(declared)
    required = {name for name, body in declared.items() if "default" not in body}
    assert required <= set(passed)
    assert passed["private_subnet_ids"] == '["subnet-1","subnet-2"]'
    assert passed["batch_security_group_ids"] == '["sg-1","sg-2"]'
    assert re.search(r"terraform -chdir=\S+ apply -input=false \S+", result.stdout)


def test_destroy_lifts_deletion_protection_first() -> None:
    result = run_script("destroy_infra.sh", *DEPLOY_ARGS)
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if line.startswith("terraform")]
    assert "-target=aws_db_instance.dagster" in lines[1] and "db_deletion_protection=false" in lines[1]
    # The lake bucket (prevent_destroy) leaves the state before the destroy, so its data survives.
    assert " state rm " in lines[2] and "lake" in lines[2]
    assert " destroy " in lines[3]


def test_unknown_flags_and_missing_region_are_refused() -> None:
    assert run_script("deploy_infra.sh", "--bogus").returncode == 2
    missing = run_script("deploy_infra.sh", "--state-bucket", "x", "--dry-run")
    assert missing.returncode == 2 and "--region" in missing.stderr


def test_build_pushes_an_immutable_multi_arch_image() -> None:
    result = run_script("build_and_push.sh", "--region", "us-west-2", "--tag", "abc123", "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "--image-tag-mutability IMMUTABLE" in result.stdout
    image = "123456789012.dkr.ecr.us-west-2.amazonaws.com/spotlake-assets:abc123"
    lines = [shlex.split(line) for line in result.stdout.splitlines() if line.strip()]
    builds = [words for words in lines if words[:3] == ["docker", "buildx", "build"]]
    assert len(builds) == 1, result.stdout
    build = builds[0]
    # One manifest list for x86 and Graviton hosts, pushed by buildx itself.
    assert build[build.index("--platform") + 1].split(",") == ["linux/amd64", "linux/arm64"]
    assert build[build.index("--tag") + 1] == image
    assert "--push" in build and build[-1] == "."
    login = next(i for i, words in enumerate(lines) if "docker" in words and "login" in words)
    assert login < lines.index(build), "log in to ECR before buildx pushes"
    assert not any(words[:2] in (["docker", "build"], ["docker", "push"]) for words in lines)


def test_deploy_generates_the_database_password_outside_the_command_line() -> None:
    result = run_script("deploy_infra.sh", *DEPLOY_ARGS)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    generate = next(i for i, line in enumerate(lines) if "get-random-password" in line)
    plan = next(i for i, line in enumerate(lines) if line.startswith("terraform") and " plan " in line)
    assert generate < plan
    assert lines[generate].startswith("export TF_VAR_db_password=")
    assert "--exclude-punctuation" in lines[generate]
    assert not any("db_password=" in line for line in lines if line.startswith("terraform"))
