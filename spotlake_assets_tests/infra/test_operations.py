"""Operations outside Dagster, tied to the code and the documentation (issue 12).

The mock-provider suite (infra/tests/plan.tftest.hcl) asserts the planned alerts, alarm, endpoints and lake
bucket. Here: the lake lifecycle expires exactly the SPS checkpoints the code writes and nothing else the key
layout names; the lake resources refuse destruction and do not feed the run workers' grants; the alerts post
to the webhook secret the control plane already injects; and the import instructions in infra/README.md
name the resources the configuration has (`terraform validate` rejects an import into a missing address).
"""

from __future__ import annotations

import importlib
import inspect
import re
from pathlib import Path
from typing import Any

import pytest

from spotlake_assets_tests.infra.conftest import INFRA, REPO, TerraformWorkdir, clean
from spotlake_assets_tests.infra.test_iam_from_code import SAMPLE_ARGUMENTS, _keys_module
from spotlake_assets_tests.infra.test_terraform import resources, variable_default

PACKAGE = REPO / "spotlake_assets"
README = INFRA / "README.md"
LAKE_TF = INFRA / "lake_bucket.tf"
CHECKPOINT_PREFIX = re.compile(r"^(state/[^/]+/sps_checkpoints/)")
IMPORT_BLOCK = re.compile(r"import\s*\{\s*to\s*=\s*(?P<to>\S+)\s*id\s*=\s*\"(?P<id>[^\"]+)\"\s*\}")
HCL_FENCE = re.compile(r"```hcl\n(?P<body>.*?)```", re.DOTALL)
BASH_FENCE = re.compile(r"```bash\n(?P<body>.*?)```", re.DOTALL)


def checkpoint_providers() -> set[str]:
    """The PROVIDER of every module that writes SPS checkpoints (`sps_checkpoint_key(PROVIDER, ...)`)."""
    providers: set[str] = set()
    for path in sorted(PACKAGE.rglob("*.py")):
        if "sps_checkpoint_key(PROVIDER" not in path.read_text():
            continue
        module = importlib.import_module(".".join(path.relative_to(REPO).with_suffix("").parts))
        providers.add(str(module.PROVIDER))
    return providers


def lake_keys_for(provider: str) -> dict[str, str]:
    """Every public key function of the layout, called with sample arguments for one provider."""
    module = _keys_module()
    keys: dict[str, str] = {}
    for name, function in inspect.getmembers(module, inspect.isfunction):
        if name.startswith("_") or function.__module__ != module.__name__:
            continue
        parameters = inspect.signature(function).parameters
        arguments = {p: SAMPLE_ARGUMENTS[p] for p in parameters} | (
            {"provider": provider} if "provider" in parameters else {}
        )
        keys[name] = str(function(**arguments))
    return keys


def lake_resources() -> dict[str, dict[str, Any]]:
    hcl2 = pytest.importorskip("hcl2", reason="python-hcl2 is not installed: lake_bucket.tf not parsed")
    with LAKE_TF.open() as handle:
        parsed: dict[str, list[dict[str, Any]]] = clean(hcl2.load(handle))
    found: dict[str, dict[str, Any]] = {}
    for block in parsed.get("resource", []):
        for kind, named in block.items():
            for name, body in named.items():
                found[f"{kind}.{name}"] = body
    return found


def documented_imports() -> dict[str, str]:
    """`to` address -> import id of the import blocks in infra/README.md."""
    text = README.read_text()
    return {
        m.group("to"): m.group("id")
        for fence in HCL_FENCE.finditer(text)
        for m in IMPORT_BLOCK.finditer(fence.group("body"))
    }


# --- the lake lifecycle against the key layout --------------------------------------------------------------


def test_the_checkpoint_prefixes_are_the_codes(terraform: dict[str, list[dict[str, Any]]]) -> None:
    providers = checkpoint_providers()
    assert providers >= {"aws", "azure"}, providers
    from_code = set()
    for provider in providers:
        match = CHECKPOINT_PREFIX.match(lake_keys_for(provider)["sps_checkpoint_key"])
        assert match, f"{provider}: checkpoints are no longer under state/<provider>/sps_checkpoints/"
        from_code.add(match.group(1))
    assert set(variable_default(terraform, "lake_checkpoint_prefixes")) == from_code


def test_nothing_but_checkpoints_expires(terraform: dict[str, list[dict[str, Any]]]) -> None:
    prefixes = tuple(variable_default(terraform, "lake_checkpoint_prefixes"))
    for provider in checkpoint_providers():
        expiring = {name for name, key in lake_keys_for(provider).items() if key.startswith(prefixes)}
        assert expiring == {"sps_checkpoint_key", "sps_checkpoint_prefix"}, (provider, expiring)


def test_the_lifecycle_expires_by_those_prefixes_only() -> None:
    lifecycle = lake_resources()["aws_s3_bucket_lifecycle_configuration.lake"]
    (dynamic,) = lifecycle["dynamic"]
    assert dynamic["rule"]["for_each"] == "${var.lake_checkpoint_prefixes}"
    content = dynamic["rule"]["content"][0]
    assert content["filter"][0]["prefix"] == "${rule.value}"
    assert content["expiration"][0]["days"] == "${var.lake_checkpoint_expiration_days}"
    # The static rule covers the whole bucket, and expires no current object.
    (whole,) = lifecycle["rule"]
    assert whole["filter"] == [{}]
    assert whole["expiration"] == [{"expired_object_delete_marker": True}]


# --- the lake resources -----------------------------------------------------------------------------------


def test_every_lake_resource_refuses_destruction_and_follows_the_switch() -> None:
    found = lake_resources()
    assert {address.split(".")[0] for address in found} == {
        "aws_s3_bucket",
        "aws_s3_bucket_versioning",
        "aws_s3_bucket_server_side_encryption_configuration",
        "aws_s3_bucket_public_access_block",
        "aws_s3_bucket_ownership_controls",
        "aws_s3_bucket_lifecycle_configuration",
    }
    for address, body in found.items():
        assert body["lifecycle"][0]["prevent_destroy"] is True, address
        expected_count = (
            "${var.manage_lake_bucket ? 1 : 0}"
            if address == "aws_s3_bucket.lake"
            else "${length(aws_s3_bucket.lake)}"
        )
        assert body["count"] == expected_count, address


def test_the_lake_bucket_does_not_feed_the_grants(terraform: dict[str, list[dict[str, Any]]]) -> None:
    # Policies name the bucket by variable: managing it (or not) cannot change what any role may do.
    for path in sorted(INFRA.glob("*.tf")):
        if path != LAKE_TF:
            assert "aws_s3_bucket.lake" not in path.read_text(), path.name
    assert "data" not in lake_resources()
    assert variable_default(terraform, "manage_lake_bucket") is True


# --- the alerts ---------------------------------------------------------------------------------------------


def test_alerts_post_to_the_webhook_the_code_uses(terraform: dict[str, list[dict[str, Any]]]) -> None:
    secret = next(
        block["aws_secretsmanager_secret_version"]["slack_webhook"]
        for block in terraform["data"]
        if "aws_secretsmanager_secret_version" in block
    )
    assert secret["secret_id"] == "${var.slack_webhook_secret_arn}"
    # The same secret reaches the containers as SPOTLAKE_SLACK_WEBHOOK_URL (the code's alert sink).
    versions = (INFRA / "versions.tf").read_text()
    assert 'name = "SPOTLAKE_SLACK_WEBHOOK_URL", valueFrom = var.slack_webhook_secret_arn' in versions
    assert "SPOTLAKE_SLACK_WEBHOOK_URL" in (PACKAGE / "settings.py").read_text()
    targets = resources(terraform, "aws_cloudwatch_event_target")
    assert targets["alerts"]["arn"] == "${aws_cloudwatch_event_api_destination.slack[0].arn}"


# --- the README's import instructions -----------------------------------------------------------------------


def test_the_readme_documents_an_import_for_every_lake_resource() -> None:
    imports = documented_imports()
    assert set(imports) == {f"{address}[0]" for address in lake_resources()}
    assert set(imports.values()) == {"spotlake-lake"}
    # The CLI form names the same resource types.
    cli = next(
        f.group("body")
        for f in BASH_FENCE.finditer(README.read_text())
        if "terraform" in f.group("body") and " import " in f.group("body")
    )
    assert {address.split(".")[0] for address in lake_resources()} <= set(
        re.findall(r"\baws_s3_bucket\w*", cli)
    )


def test_the_documented_imports_validate(terraform_workdir: TerraformWorkdir) -> None:
    blocks = "\n".join(
        f'import {{\n  to = {to}\n  id = "{id_}"\n}}\n' for to, id_ in documented_imports().items()
    )
    path: Path = terraform_workdir.root / "imports_from_readme.tf"
    path.write_text(blocks)
    try:
        result = terraform_workdir.run("validate", "-no-color")
    finally:
        path.unlink()
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
