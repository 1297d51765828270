"""The Terraform in infra/: formatted, clean under checkov (every skip justified inline), and shaped as the
design needs it (Spot compute, the queue on it, one attempt per run worker, no "*" on "*")."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from spotlake_assets_tests.infra.conftest import INFRA, REPO

TF_FILES = sorted(INFRA.glob("*.tf"))
SKIP_COMMENT = re.compile(r"#\s*checkov:skip=(?P<id>[A-Z0-9_]+)(?::(?P<reason>.*))?")


def resources(terraform: dict[str, list[dict[str, Any]]], kind: str) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for block in terraform.get("resource", []):
        for name, body in block.get(kind, {}).items():
            found[name] = body
    return found


def data_sources(terraform: dict[str, list[dict[str, Any]]], kind: str) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for block in terraform.get("data", []):
        for name, body in block.get(kind, {}).items():
            found[name] = body
    return found


def variable_default(terraform: dict[str, list[dict[str, Any]]], name: str) -> Any:
    for block in terraform["variable"]:
        if name in block:
            return block[name].get("default")
    raise KeyError(name)


def resolve(terraform: dict[str, list[dict[str, Any]]], expression: Any) -> Any:
    """A literal, or the default of a bare `${var.NAME}` reference."""
    match = re.fullmatch(r"\$\{var\.(\w+)\}", str(expression))
    return variable_default(terraform, match.group(1)) if match else expression


def test_infra_holds_the_expected_files() -> None:
    names = {p.name for p in TF_FILES}
    assert {"versions.tf", "variables.tf", "batch.tf", "iam.tf", "control_plane.tf", "database.tf"} <= names
    assert (INFRA / "dagster.yaml").is_file()


def test_terraform_fmt() -> None:
    terraform_bin = shutil.which("terraform")
    if terraform_bin is None:
        pytest.skip("terraform is not on PATH: `terraform fmt -check` not run")
    env = {**os.environ, "TF_IN_AUTOMATION": "1", "CHECKPOINT_DISABLE": "1"}
    result = subprocess.run(
        [terraform_bin, "fmt", "-check", "-recursive", "-diff", str(INFRA)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, f"terraform fmt would change:\n{result.stdout}"


def checkov_binary() -> str | None:
    candidates = [
        os.environ.get("SPOTLAKE_CHECKOV"),
        str(REPO / ".venv" / "tools" / "checkov" / "bin" / "checkov"),
    ]
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return candidate
    return shutil.which("checkov")


@pytest.fixture(scope="module")
def checkov_report() -> Iterator[dict[str, Any]]:
    binary = checkov_binary()
    if binary is None:
        pytest.skip("checkov is not installed (.venv/tools/checkov, $SPOTLAKE_CHECKOV or PATH): scan not run")
    result = subprocess.run(
        # --skip-download: no network here, and the scan must not depend on it.
        [binary, "-d", str(INFRA), "--framework", "terraform", "--skip-download", "-o", "json"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.stdout, f"checkov printed no report: {result.stderr[-2000:]}"
    yield json.loads(result.stdout)


def test_checkov_finds_no_failed_check(checkov_report: dict[str, Any]) -> None:
    summary = checkov_report["summary"]
    failed = [
        f"{c['check_id']} {c['resource']} ({c['check_name']})"
        for c in checkov_report["results"]["failed_checks"]
    ]
    assert failed == []
    assert summary["parsing_errors"] == 0
    # A scan that silently read nothing would also have no failures.
    assert summary["resource_count"] >= 40
    assert summary["passed"] >= 150


def test_every_checkov_skip_is_justified(checkov_report: dict[str, Any]) -> None:
    for skipped in checkov_report["results"]["skipped_checks"]:
        reason = skipped["check_result"].get("suppress_comment") or ""
        assert len(reason) >= 30, (
            f"{skipped['check_id']} on {skipped['resource']} has no real reason: {reason!r}"
        )


def test_skip_comments_in_the_source_carry_a_reason() -> None:
    comments = [m for path in TF_FILES for m in SKIP_COMMENT.finditer(path.read_text())]
    assert comments, "expected the justified skips documented in infra/"
    for match in comments:
        assert len((match.group("reason") or "").strip()) >= 30, match.group(0)


def test_the_compute_environment_is_managed_spot(terraform: dict[str, list[dict[str, Any]]]) -> None:
    environments = resources(terraform, "aws_batch_compute_environment")
    # The run workers' and the large job class's (batch_large.tf), both on Spot.
    assert sorted(environments) == ["spot", "spot_large"]
    for name, environment in environments.items():
        assert environment["type"] == "MANAGED"
        compute = environment["compute_resources"][0]
        assert resolve(terraform, compute["type"]) == "SPOT"
        assert resolve(terraform, compute["allocation_strategy"]) == "SPOT_PRICE_CAPACITY_OPTIMIZED"
        assert resolve(terraform, compute["min_vcpus"]) == 0  # scales to zero between runs
        assert str(compute["max_vcpus"]).startswith("${var."), f"{name}: max_vcpus must be a variable"
        # Instance families follow the architecture variable unless given (resolved in the plan tests).
        assert compute["instance_type"] == "${local.run_worker_instance_types}"
    assert str(environments["spot"]["compute_resources"][0]["desired_vcpus"]).startswith("${var.")


def test_the_compute_environment_can_be_replaced_and_updated(
    terraform: dict[str, list[dict[str, Any]]],
) -> None:
    environment = resources(terraform, "aws_batch_compute_environment")["spot"]
    # Batch's service-linked role is the one that allows in-place infrastructure updates.
    assert "service_role" not in environment
    assert resources(terraform, "aws_iam_role").get("batch_service") is None
    # A replacement is created first (a prefix, not a fixed name), then the queue moves, then the old goes.
    assert "compute_environment_name" not in environment
    assert environment["compute_environment_name_prefix"] == "${local.name}-runs-"
    assert environment["lifecycle"][0]["create_before_destroy"] is True
    assert environment["depends_on"] == ["${aws_iam_role_policy_attachment.batch_instance}"]


def test_the_queue_uses_the_spot_environment(terraform: dict[str, list[dict[str, Any]]]) -> None:
    queues = resources(terraform, "aws_batch_job_queue")
    assert sorted(queues) == ["large", "runs"]
    order = queues["runs"]["compute_environment_order"]
    assert [o["compute_environment"] for o in order] == ["${aws_batch_compute_environment.spot.arn}"]
    large = queues["large"]["compute_environment_order"]
    assert [o["compute_environment"] for o in large] == ["${aws_batch_compute_environment.spot_large.arn}"]


def test_large_hosts_get_a_scratch_volume_deleted_with_the_instance(
    terraform: dict[str, list[dict[str, Any]]],
) -> None:
    template = resources(terraform, "aws_launch_template")["batch_large"]
    disks = {d["device_name"]: d["ebs"][0] for d in template["block_device_mappings"]}
    scratch = disks["/dev/xvdb"]
    assert scratch["volume_size"] == "${var.large_job_scratch_gib}"
    assert str(scratch["delete_on_termination"]).lower() == "true" and scratch["encrypted"] is True
    environment = resources(terraform, "aws_batch_compute_environment")["spot_large"]
    launch = environment["compute_resources"][0]["launch_template"][0]
    assert launch["launch_template_id"] == "${aws_launch_template.batch_large.id}"


def test_run_workers_get_one_attempt_and_no_privileges(terraform: dict[str, list[dict[str, Any]]]) -> None:
    definitions = resources(terraform, "aws_batch_job_definition")
    assert sorted(definitions) == ["large_worker", "run_worker"]
    for definition in definitions.values():
        assert definition["retry_strategy"][0]["attempts"] == 1
        assert str(definition["timeout"][0]["attempt_duration_seconds"]).startswith("${var.")
        # Both job classes run the one container (batch.tf's local), the large one with more of everything.
        assert "local.run_worker_container" in definition["container_properties"]
    container = next(
        block["run_worker_container"] for block in terraform["locals"] if "run_worker_container" in block
    )
    assert container["jobRoleArn"] == "${aws_iam_role.run_worker.arn}"
    assert container["privileged"] is False and container["readonlyRootFilesystem"] is True


def _statements(document: dict[str, Any]) -> list[dict[str, Any]]:
    """Static statements plus the content of `dynamic "statement"` blocks (conditional statements)."""
    statements = list(document.get("statement", []))
    for dynamic in document.get("dynamic", []):
        if "statement" in dynamic:
            statements.extend(dynamic["statement"]["content"])
    return statements


def test_no_iam_statement_allows_every_action_on_every_resource(
    terraform: dict[str, list[dict[str, Any]]],
) -> None:
    documents = data_sources(terraform, "aws_iam_policy_document")
    assert {"run_worker", "control_plane", "task_execution", "kms"} <= set(documents)
    checked = 0
    for name, document in documents.items():
        for statement in _statements(document):
            actions = statement.get("actions", [])
            resources_ = statement.get("resources", [])
            if statement.get("effect", "Allow") != "Allow":
                continue
            checked += 1
            assert not ({"*", "*:*"} & set(actions) and "*" in resources_), f"{name}: {statement}"
            if "*" in resources_:
                # Only named actions, never a service wildcard, may go unscoped (except the key's own policy).
                assert name == "kms" or all("*" not in a for a in actions), f"{name}: {statement}"
    assert checked >= 15
    # No policy may bypass the documents above with inline JSON.
    for path in TF_FILES:
        text = path.read_text()
        assert not re.search(r'Action\s*=\s*\[?\s*"\*"', text), path.name
        assert "jsonencode({\n    Version" not in text, (
            f"{path.name}: write policies as aws_iam_policy_document"
        )


def test_the_run_worker_role_is_scoped(terraform: dict[str, list[dict[str, Any]]]) -> None:
    statements = {
        s.get("sid"): s for s in _statements(data_sources(terraform, "aws_iam_policy_document")["run_worker"])
    }
    assert statements["WriteLake"]["actions"] == ["s3:PutObject"]
    assert statements["DeleteDamagedState"]["resources"] == "${local.lake_delete_objects}"
    assert statements["WriteLake"]["resources"] == "${local.lake_write_objects}"
    assert statements["TimestreamWriteNamedTables"]["resources"] == "${local.timestream_tables}"
    assert statements["AzureAuthItem"]["actions"] == ["dynamodb:GetItem"]
    assert "SpsCredentialsSecret" in statements
    # The launch-time collector's EC2 writes are the one computed (dynamic) unscoped statement: off unless
    # var.launch_time_measurement, tag-bound (test_iam_from_code.py plans both ways and checks the actions).
    computed = [
        s for s in statements.values() if s.get("resources") == ["*"] and isinstance(s["actions"], str)
    ]
    assert [s["sid"] for s in computed] == ["${statement.key}"]
    assert [c["test"] for c in computed[0]["condition"]] == ["Null"]
    assert "spotlake:launch-time" in computed[0]["condition"][0]["variable"]
    gate = next(
        d["statement"]["for_each"]
        for d in data_sources(terraform, "aws_iam_policy_document")["run_worker"]["dynamic"]
        if d["statement"]["content"][0] is computed[0]
    )
    assert gate.startswith("${var.launch_time_measurement ?") and gate.endswith(": {}}")
    assert variable_default(terraform, "launch_time_measurement") is False
    unscoped = [
        a
        for s in statements.values()
        if s.get("resources") == ["*"] and s not in computed
        for a in s["actions"]
    ]
    assert all(a.split(":")[1].startswith(("Describe", "Get")) for a in unscoped), unscoped


def test_nothing_faces_the_internet(terraform: dict[str, list[dict[str, Any]]]) -> None:
    database = resources(terraform, "aws_db_instance")["dagster"]
    assert database["publicly_accessible"] is False
    assert database["storage_encrypted"] is True
    for service in resources(terraform, "aws_ecs_service").values():
        assert service["network_configuration"][0]["assign_public_ip"] is False
    assert resources(terraform, "aws_lb") == {}
    for rule in resources(terraform, "aws_vpc_security_group_ingress_rule").values():
        assert "cidr_ipv4" not in rule, "ingress only from the stack's own security groups"


def test_the_database_password_never_reaches_the_state(terraform: dict[str, list[dict[str, Any]]]) -> None:
    database = resources(terraform, "aws_db_instance")["dagster"]
    assert "password" not in database
    assert database["password_wo"] == "${var.db_password}"
    version = resources(terraform, "aws_secretsmanager_secret_version")["db_password"]
    assert "secret_string" not in version
    assert version["secret_string_wo"] == "${var.db_password}"
    # Ephemeral: Terraform refuses to write the value to the state or a plan file.
    variable = next(block["db_password"] for block in terraform["variable"] if "db_password" in block)
    assert variable["ephemeral"] is True and variable["sensitive"] is True
