"""Terraform itself, offline: `validate` and the mock-provider plan suite in infra/tests/ (`terraform test`).

The AWS provider comes from a local filesystem mirror (conftest.terraform_workdir); without terraform or the
mirror these tests skip with the reason shown. The suite plans the whole stack with production-like
variables and asserts Spot capacity, the job definition, the database, least-privilege policies, and the
operations around the stack (Slack alerts from EventBridge, the silent-tick alarm, VPC endpoints, the lake
bucket).
"""

from __future__ import annotations

import re

from spotlake_assets_tests.infra.conftest import (
    INFRA,
    TF_TESTS,
    TerraformWorkdir,
    terraform_test,
)


def test_the_provider_constraint_admits_the_mirrored_provider(terraform_workdir: TerraformWorkdir) -> None:
    lock = (terraform_workdir.root / ".terraform.lock.hcl").read_text()
    assert 'provider "registry.terraform.io/hashicorp/aws"' in lock
    # Only providers the mirror holds: anything else (hashicorp/random) would need the registry.
    assert re.findall(r'provider "([^"]+)"', lock) == ["registry.terraform.io/hashicorp/aws"]


def test_terraform_validate(terraform_workdir: TerraformWorkdir) -> None:
    result = terraform_workdir.run("validate", "-no-color")
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"


def test_the_mock_provider_plan_suite_passes(terraform_workdir: TerraformWorkdir) -> None:
    suites = sorted(p.relative_to(INFRA).as_posix() for p in TF_TESTS.glob("*.tftest.hcl"))
    assert suites == ["tests/plan.tftest.hcl"]
    result = terraform_test(terraform_workdir, *suites)
    failed = {name: status for name, status in result.runs.items() if status != "pass"}
    assert result.returncode == 0 and not failed, "\n".join([str(failed), *result.diagnostics])
    # Every run block ran: a suite that silently ran nothing would also "pass".
    assert set(result.runs) >= {
        "production_plan",
        "x86_run_workers_and_arm64_control_plane",
        "mixed_architectures_are_refused",
        "fractional_default_vcpu_is_refused",
        "on_demand_fallback",
        # Operations outside Dagster, VPC endpoints and the lake bucket (alerts.tf, endpoints.tf,
        # lake_bucket.tf).
        "alerts_post_to_slack",
        "alerts_without_a_webhook",
        "silent_tick_window_must_be_whole_periods",
        "vpc_endpoints",
        "vpc_endpoints_off",
        "vpc_endpoints_chosen",
        "unknown_interface_endpoint_is_refused",
        "lake_bucket_managed",
        "lake_bucket_aws_managed_kms",
        "lake_bucket_not_managed",
        "lake_checkpoint_prefixes_only_under_state",
        # The large job class (batch_large.tf).
        "large_job_class",
        "large_job_scratch_too_small_is_refused",
        "no_legacy_source_grant",
    }
    assert result.summary.get("status") == "pass"
