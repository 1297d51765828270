"""IAM derived from the code, tested both ways, and one region for code and Terraform.

From the code: every lake prefix it reads or writes (the key functions of the lake layout, called with sample
arguments, and the literal prefixes of the sinks, state and quarantine) and every AWS operation it calls
(boto3 client method calls and paginators, mapped to IAM actions through botocore's service models). From
Terraform: the planned policy documents (a generated `terraform test` run against the mock provider, in a
copy of infra/). The run-worker policy must grant exactly those actions on exactly those resources, and the
control plane exactly the launcher's Batch and Logs calls.

The same generated run plans with a region the code never defaults to (eu-central-1): the run worker's
environment must name it for every service, and the code, given that environment, must use it for every
client whose resource ARN the policy scopes by region.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import botocore.session
import pytest
import yaml
from botocore import xform_name
from botocore.model import ServiceModel

from spotlake_assets_tests.infra.conftest import (
    INFRA,
    REPO,
    TF_TESTS,
    TerraformTestResult,
    TerraformWorkdir,
    planned_after,
    terraform_test,
)

PACKAGE = REPO / "spotlake_assets"
# Code that never runs in a run worker: the control plane's launcher and sensors, operator tools.
NOT_RUN_WORKER = ("batch_launcher/", "demo.py", "chaos.py", "query/")
LAUNCHER = "batch_launcher/"

# Lake prefixes the code names that need no grant, and why.
LOCAL_ONLY_PREFIXES = {"timestream/": "LocalTimestream's record files; prod writes Timestream itself"}
# Operator-maintained configuration: read, never written (the `test` environment refuses such writes).
READ_ONLY_PREFIXES = {"config/"}
# Only damaged state is ever deleted (moved aside to quarantine/: copy, then delete).
DELETE_PREFIXES = {"state/"}
# Written (moved aside into), never read back by the platform.
WRITE_ONLY_PREFIXES = {"quarantine/"}

# Operations whose IAM action is not "<service>:<OperationName>".
S3_ACTIONS = {
    "HeadObject": {"s3:GetObject"},
    "CopyObject": {"s3:GetObject", "s3:PutObject"},
    "ListObjectsV2": {"s3:ListBucket"},
}
# Actions a call needs besides its own: SubmitJob with tags is authorised as batch:TagResource too.
IMPLIED_ACTIONS = {"batch:SubmitJob": {"batch:TagResource"}}
# Signed with the SPS credential pool (other accounts), never with the run worker's role.
POOL_SIGNED = {"ec2:GetSpotPlacementScores"}
# Actions without resource-level permissions: they can only be granted on "*".
UNSCOPED_PREFIXES = ("ec2:Describe", "pricing:", "timestream:DescribeEndpoints")

# The generated plan: production-like, in a region none of the code's fallbacks uses.
REGION = "eu-central-1"
ACCOUNT = "123456789012"
BUCKET = "spotlake-lake"
SPS_SECRET = "spotlake/sps-credentials"
GENERATED = "tests/generated_iam_from_code.tftest.hcl"
RUN = "iam_and_region_from_code"
# The same plan with var.launch_time_measurement on: the launch-time collector's grants appear, tag-bound.
RUN_LAUNCH = "iam_with_launch_time_measurement"
# What the launch-time collector (aws_single) calls, granted only with var.launch_time_measurement, each
# bound by its tag key: the request must carry the tag, the cleanup acts on tagged resources only.
LAUNCH_CONDITIONS = {
    "ec2:RequestSpotInstances": "Null aws:RequestTag/spotlake:launch-time false",
    "ec2:CreateTags": "Null aws:RequestTag/spotlake:launch-time false",
    "ec2:CancelSpotInstanceRequests": "Null aws:ResourceTag/spotlake:launch-time false",
    "ec2:TerminateInstances": "Null aws:ResourceTag/spotlake:launch-time false",
}

SAMPLE_ARGUMENTS: dict[str, Any] = {
    "provider": "aws",
    "day_key": "2026-11-20",
    "partition_key": "2026-11-20-01:10",
    "capacity": 5,
    "label": "g0",
    "digest": "0123abcd",
}
KEY_LITERAL = re.compile(r"^(?P<prefix>[a-z_]+/)(?P<rest>.*)$")


def _package_files(*, run_worker: bool) -> Iterator[tuple[str, str]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE).as_posix()
        if relative.startswith(NOT_RUN_WORKER) == run_worker:
            continue
        yield relative, path.read_text()


def _keys_module() -> Any:
    # The lake's key layout (spotlake_assets/storage/keys.py; lake/keys.py before the layering).
    for name in ("spotlake_assets.storage.keys", "spotlake_assets.lake.keys"):
        try:
            return importlib.import_module(name)
        except ModuleNotFoundError:
            continue
    raise AssertionError("no lake key module (spotlake_assets.storage.keys) found")


def key_function_prefixes() -> set[str]:
    module = _keys_module()
    prefixes: set[str] = set()
    functions = [
        f
        for name, f in inspect.getmembers(module, inspect.isfunction)
        if not name.startswith("_") and f.__module__ == module.__name__
    ]
    assert len(functions) >= 10, "the key layout has fewer functions than expected"
    for function in functions:
        parameters = inspect.signature(function).parameters
        missing = set(parameters) - set(SAMPLE_ARGUMENTS)
        assert not missing, f"{function.__name__}: no sample value for {sorted(missing)}"
        key = function(**{name: SAMPLE_ARGUMENTS[name] for name in parameters})
        prefixes.add(key.split("/", 1)[0] + "/")
    return prefixes


def literal_prefixes() -> set[str]:
    """Prefixes of the lake-key literals in run-worker code (the sinks, state, stats and quarantine):

    - per-provider keys: ``f"history_daily/{provider}/manifest.json"``, ``"config/aws/credentials.csv"``;
    - templated object keys: ``f"ops/collector_stats/{start:%Y/%m/%d}.parquet"``;
    - prefix constants: ``QUARANTINE_PREFIX = "quarantine/"``.

    Asset keys (``"aws/sps"``), run tags (``"dagster/partition"``) and package data (``"data/x.json"``) are
    none of these."""
    found: set[str] = set()
    for _, source in _package_files(run_worker=True):
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant):
                names = [t.id for t in node.targets if isinstance(t, ast.Name)]
                if any(n.endswith("_PREFIX") for n in names) and isinstance(node.value.value, str):
                    match = KEY_LITERAL.match(node.value.value)
                    if match:
                        found.add(match.group("prefix"))
                continue
            if isinstance(node, ast.JoinedStr):
                parts = [
                    ast.unparse(v) if not isinstance(v, ast.Constant) else str(v.value) for v in node.values
                ]
                text, templated = "".join(parts), len(node.values) > 1
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                text, templated = node.value, False
            else:
                continue
            match = KEY_LITERAL.match(text)
            if match is None:
                continue
            rest = match.group("rest")
            per_provider = re.match(r"(\{[^}]*provider[^}]*\}|\{PROVIDER\}|aws|azure)/", rest, re.IGNORECASE)
            templated_object = templated and re.search(r"\.(parquet|json|csv)$", rest)
            if per_provider or templated_object:
                found.add(match.group("prefix"))
    return found


def compute_log_prefix() -> str:
    config = yaml.safe_load((INFRA / "dagster.yaml").read_text())
    return str(config["compute_logs"]["config"]["prefix"]).strip("/") + "/"


@dataclass(frozen=True)
class LakeAccess:
    read: frozenset[str]
    write: frozenset[str]
    delete: frozenset[str]


def lake_access_from_code() -> LakeAccess:
    named = (key_function_prefixes() | literal_prefixes()) - set(LOCAL_ONLY_PREFIXES)
    written = named - READ_ONLY_PREFIXES | {compute_log_prefix()}
    # Writers read back what they write: idempotent rewrites compare, checkpoints resume, sinks rebuild.
    read = (written - WRITE_ONLY_PREFIXES) | READ_ONLY_PREFIXES
    return LakeAccess(frozenset(read), frozenset(written), frozenset(DELETE_PREFIXES))


# --- AWS operations ----------------------------------------------------------------------------------------

SERVICE_CALL = re.compile(r"""\b(?:client|resource|_client)\(\s*["']([a-z0-9-]+)["']""")
METHOD_CALL = re.compile(r"\.([a-z_][a-z0-9_]*)\(")
PAGINATOR = re.compile(r"""get_paginator\(\s*["']([a-z0-9_]+)["']""")


def _service_models(names: set[str]) -> dict[str, ServiceModel]:
    """botocore's service model of each named boto3 service (names that are not AWS services are dropped)."""
    session = botocore.session.Session()
    available = set(session.get_available_services())
    return {name: session.get_service_model(name) for name in names & available}


def iam_actions(service_model: ServiceModel, operation: str) -> set[str]:
    if service_model.service_name == "s3" and operation in S3_ACTIONS:
        return set(S3_ACTIONS[operation])
    action = f"{service_model.signing_name}:{operation}"
    return {action, *IMPLIED_ACTIONS.get(action, set())}


def actions_called(*, run_worker: bool) -> dict[str, set[str]]:
    """IAM action -> the files calling it, for the run worker's code or the control plane's launcher."""
    files = list(_package_files(run_worker=run_worker))
    models = _service_models({s for _, source in files for s in SERVICE_CALL.findall(source)})
    services = set(models)
    operations: dict[str, tuple[ServiceModel, str]] = {}
    for service in services:
        model = models[service]
        for operation in model.operation_names:
            operations[xform_name(operation)] = (model, operation)
    called: dict[str, set[str]] = {}
    for relative, source in files:
        for name in {*METHOD_CALL.findall(source), *PAGINATOR.findall(source)}:
            if name not in operations:
                continue
            model, operation = operations[name]
            actions = iam_actions(model, operation)
            # botocore discovers endpoints (Timestream's) with the service's own operation first where the
            # model requires it (DynamoDB's discovery is optional, off by default).
            # The trait is a dict or None (botocore-stubs wrongly type it as an OperationModel).
            trait: object = model.operation_model(operation).endpoint_discovery
            if isinstance(trait, dict) and trait.get("required"):
                discovery = model.endpoint_discovery_operation
                actions |= iam_actions(model, discovery.name)
            for action in actions:
                called.setdefault(action, set()).add(relative)
    return called


# --- the expected policies ----------------------------------------------------------------------------------


def legacy_source_bucket() -> str:
    """The bucket of the history import's default source (`legacy/sources.DEFAULT_SOURCE`)."""
    from urllib.parse import urlparse

    from spotlake_assets.legacy.sources import DEFAULT_SOURCE

    return urlparse(DEFAULT_SOURCE).netloc


def expected_run_worker_policy() -> dict[str, list[str]]:
    access = lake_access_from_code()
    bucket = f"arn:aws:s3:::{BUCKET}"
    # The history import reads SpotLake's published bucket (read only), the one its default source names.
    source = f"arn:aws:s3:::{legacy_source_bucket()}"
    scoped: dict[str, list[str]] = {
        "s3:ListBucket": sorted([bucket, source]),
        "s3:GetObject": sorted([*(f"{bucket}/{p}*" for p in sorted(access.read)), f"{source}/*"]),
        "s3:PutObject": [f"{bucket}/{p}*" for p in sorted(access.write)],
        "s3:DeleteObject": [f"{bucket}/{p}*" for p in sorted(access.delete)],
        "timestream:WriteRecords": [
            f"arn:aws:timestream:{REGION}:{ACCOUNT}:database/spotlake/table/{t}" for t in ("aws", "azure")
        ],
        "dynamodb:GetItem": [f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/AzureAuth"],
        "secretsmanager:GetSecretValue": [
            f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:{SPS_SECRET}-??????"
        ],
        # Single-account mode: "*" bounded by tag conditions (infra/iam.tf), public AMI parameters, SES.
        "ec2:RequestSpotInstances": ["*"],
        "ec2:CreateTags": ["*"],
        "ec2:CancelSpotInstanceRequests": ["*"],
        "ec2:TerminateInstances": ["*"],
        "ssm:GetParameter": ["arn:aws:ssm:*::parameter/aws/service/ami-amazon-linux-latest/*"],
        "ses:SendRawEmail": [f"arn:aws:ses:*:{ACCOUNT}:identity/*"],
    }
    expected: dict[str, list[str]] = {}
    for action in sorted(set(actions_called(run_worker=True)) - POOL_SIGNED):
        if action.startswith(UNSCOPED_PREFIXES):
            expected[action] = ["*"]
        else:
            assert action in scoped, f"the code calls {action}: say on which resources it is granted"
            expected[action] = scoped[action]
    return expected


def _hcl(value: Any) -> str:
    return json.dumps(value)


def _action_map(document: str, actions: list[str]) -> str:
    statements = f"data.aws_iam_policy_document.{document}.statement"
    return (
        "{ for a in "
        + _hcl(actions)
        + f" : a => sort(distinct(flatten([for s in {statements} : s.resources if contains(s.actions, a)])))"
        + " }"
    )


def _condition_map(document: str, actions: list[str]) -> str:
    statements = f"data.aws_iam_policy_document.{document}.statement"
    conditions = '[for c in s.condition : "${c.test} ${c.variable} ${join(",", c.values)}"]'
    return (
        "{ for a in "
        + _hcl(actions)
        + f" : a => sort(distinct(flatten([for s in {statements} : {conditions} if contains(s.actions, a)])))"
        + " }"
    )


def generated_suite(run_worker: dict[str, list[str]], launcher_actions: list[str]) -> str:
    """A test file: the checked-in suite's mock provider and variables, then two generated runs: the
    default (no launch-time grants) and with var.launch_time_measurement (those grants, tag-conditioned)."""
    checked_in = (TF_TESTS / "plan.tftest.hcl").read_text()
    header = checked_in[: checked_in.index('\nrun "')]
    statements = "data.aws_iam_policy_document.run_worker.statement"
    granted_actions = f"sort(distinct(flatten([for s in {statements} : s.actions])))"
    control = "data.aws_iam_policy_document.control_plane.statement"
    control_actions = (
        f"sort(distinct([for a in flatten([for s in {control} : s.actions]) : a "
        'if startswith(a, "batch:") || a == "logs:GetLogEvents"]))'
    )
    default = {a: r for a, r in run_worker.items() if a not in LAUNCH_CONDITIONS}
    expected_map = "{ " + ", ".join(f"{_hcl(a)} = {_hcl(sorted(r))}" for a, r in default.items()) + " }"
    launch_map = "{ " + ", ".join(f"{_hcl(a)} = {_hcl(sorted(r))}" for a, r in run_worker.items()) + " }"
    launch = sorted(a for a in run_worker if a in LAUNCH_CONDITIONS)
    conditions_map = "{ " + ", ".join(f"{_hcl(a)} = {_hcl([LAUNCH_CONDITIONS[a]])}" for a in launch) + " }"
    # Both sides of every comparison go through jsonencode: Terraform never equates a tuple literal with a
    # list (or an object with a map), even with the same elements.
    return f"""{header}

run "{RUN}" {{
  command = plan

  variables {{
    region = "{REGION}"
  }}

  assert {{
    condition     = jsonencode({granted_actions}) == jsonencode({_hcl(sorted(default))})
    error_message = "run-worker actions differ from what the code calls (launch-time grants off)"
  }}
  assert {{
    condition     = jsonencode({_action_map("run_worker", sorted(default))}) == jsonencode({expected_map})
    error_message = "run-worker resources differ from what the code touches"
  }}
  assert {{
    condition     = jsonencode({control_actions}) == jsonencode({_hcl(launcher_actions)})
    error_message = "control-plane Batch/Logs actions differ from the launcher's calls"
  }}
}}

run "{RUN_LAUNCH}" {{
  command = plan

  variables {{
    region                  = "{REGION}"
    launch_time_measurement = true
  }}

  assert {{
    condition     = jsonencode({granted_actions}) == jsonencode({_hcl(sorted(run_worker))})
    error_message = "launch-time: run-worker actions differ from what the code calls"
  }}
  assert {{
    condition     = jsonencode({_action_map("run_worker", sorted(run_worker))}) == jsonencode({launch_map})
    error_message = "launch-time: run-worker resources differ from what the code touches"
  }}
  assert {{
    condition     = jsonencode({_condition_map("run_worker", launch)}) == jsonencode({conditions_map})
    error_message = "launch-time: grants are not bound by the spotlake:launch-time tag"
  }}
}}
"""


@dataclass(frozen=True)
class GeneratedPlan:
    result: TerraformTestResult
    expected_run_worker: dict[str, list[str]]
    launcher_actions: list[str]


@pytest.fixture(scope="module")
def generated_plan(terraform_workdir: TerraformWorkdir) -> GeneratedPlan:
    expected = expected_run_worker_policy()
    launcher = sorted(
        a for a in actions_called(run_worker=False) if a.startswith("batch:") or a == "logs:GetLogEvents"
    )
    path = terraform_workdir.root / GENERATED
    path.write_text(generated_suite(expected, launcher))
    try:
        result = terraform_test(terraform_workdir, GENERATED, verbose=True)
    finally:
        path.unlink()
    assert result.runs.get(RUN) in {"pass", "fail"}, "\n".join(result.diagnostics)
    return GeneratedPlan(result, expected, launcher)


# --- the tests ----------------------------------------------------------------------------------------------


def test_the_code_names_the_lake_prefixes_the_layout_defines() -> None:
    access = lake_access_from_code()
    # The prefixes issue 12 found missing from the grants are among what the code touches.
    assert {"merged/", "delta/", "history_daily/", "ops/", "quarantine/"} <= access.write
    assert {"rawdata/", "state/", "latest_data/", "history/", "config/"} <= access.read
    assert "config/" not in access.write and "timestream/" not in access.write | access.read


def test_deleting_is_only_moving_damaged_state_aside() -> None:
    from spotlake_assets.storage.lake import S3Lake

    for relative, source in _package_files(run_worker=True):
        if "delete_object(" in source:
            assert relative == "storage/lake.py", relative
    assert "delete_object(" in inspect.getsource(S3Lake.move_aside)


def test_the_code_calls_aws_operations_the_scan_can_see() -> None:
    called = actions_called(run_worker=True)
    assert {"s3:GetObject", "s3:PutObject", "timestream:WriteRecords", "dynamodb:GetItem"} <= set(called)
    assert "timestream:DescribeEndpoints" in called, "endpoint discovery of WriteRecords"
    assert set(called) >= POOL_SIGNED, "SPS calls are found (and left to the pool credentials)"
    launcher = actions_called(run_worker=False)
    assert {"batch:SubmitJob", "batch:DescribeJobs", "batch:TerminateJob"} <= set(launcher)


def test_the_run_worker_policy_grants_exactly_what_the_code_uses(generated_plan: GeneratedPlan) -> None:
    result = generated_plan.result
    assert result.runs[RUN] == "pass", "\n".join(
        ["expected run-worker grants:", json.dumps(generated_plan.expected_run_worker, indent=1)]
        + [d for d in result.diagnostics if "run-worker" in d]
    )


def test_launch_time_grants_only_with_the_variable_and_only_on_tagged_resources(
    generated_plan: GeneratedPlan,
) -> None:
    # The code does call them (aws_single/resources.py): the default plan must still leave them out.
    assert set(LAUNCH_CONDITIONS) <= set(generated_plan.expected_run_worker)
    result = generated_plan.result
    assert result.runs.get(RUN_LAUNCH) == "pass", "\n".join(
        ["expected run-worker grants:", json.dumps(generated_plan.expected_run_worker, indent=1)]
        + [d for d in result.diagnostics if "launch-time" in d]
    )


def test_the_control_plane_grants_exactly_the_launchers_calls(generated_plan: GeneratedPlan) -> None:
    result = generated_plan.result
    assert not [d for d in result.diagnostics if "control-plane" in d], (
        f"launcher calls: {generated_plan.launcher_actions}\n" + "\n".join(result.diagnostics)
    )


def _job_environment(plan: GeneratedPlan) -> dict[str, str]:
    after = planned_after(plan.result.plans[RUN], "aws_batch_job_definition.run_worker")
    properties = json.loads(after["container_properties"])
    return {e["name"]: e["value"] for e in properties["environment"]}


def test_terraform_gives_every_service_the_one_region(generated_plan: GeneratedPlan) -> None:
    env = _job_environment(generated_plan)
    for name in (
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "SPOTLAKE_TIMESTREAM_REGION",
        "SPOTLAKE_AZURE_AUTH_REGION",
    ):
        assert env.get(name) == REGION, name


RegionOf = Callable[[dict[str, Any]], str]
# Resource -> (its region as the code resolves it, the variable Terraform scopes that service's ARNs by).
CODE_REGIONS: dict[str, tuple[RegionOf, str]] = {
    "S3 lake": (lambda r: str(r["lake"].region_name), "AWS_REGION"),
    "SPS credentials (Secrets Manager)": (lambda r: str(r["aws_credentials"].region_name), "AWS_REGION"),
    "Timestream": (lambda r: str(r["timestream"].region_name), "SPOTLAKE_TIMESTREAM_REGION"),
    "AzureAuth (DynamoDB)": (lambda r: str(r["azure_credentials"].region_name), "SPOTLAKE_AZURE_AUTH_REGION"),
}


def test_the_code_uses_the_regions_terraform_grants(generated_plan: GeneratedPlan, tmp_path: Path) -> None:
    """Fails until the code's defaults follow AWS_REGION (issue 12, point 3: environment.py and the Azure
    credentials resource read AWS_REGION / SPOTLAKE_AZURE_AUTH_REGION, not fixed us-east-1 / us-west-2)."""
    from spotlake_assets.environment import resources_for

    env = {**_job_environment(generated_plan), "SPOTLAKE_HOME": str(tmp_path)}
    resources = resources_for(env)
    disagreements = {
        service: f"code uses {region_of(resources)}, Terraform scopes by {variable}={env[variable]}"
        for service, (region_of, variable) in CODE_REGIONS.items()
        if region_of(resources) != env[variable]
    }
    assert disagreements == {}
