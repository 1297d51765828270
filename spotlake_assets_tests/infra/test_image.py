"""The image cannot be built here (no Docker engine), so check what a build would rely on: the Dockerfile's
shape, and that its entry command, the control plane's commands and the launcher's command name CLI commands
and modules that exist."""

from __future__ import annotations

import importlib
import json
import re
import shlex
import subprocess
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import click
import dagster as dg
import pytest
from dagster._core.launcher import LaunchRunContext
from dagster._core.test_utils import instance_for_test
from dagster._core.workspace.autodiscovery import loadable_targets_from_python_module

from spotlake_assets.batch_launcher import BatchRunLauncher
from spotlake_assets_tests.batch_launcher.conftest import create_run, launcher_overrides
from spotlake_assets_tests.infra.conftest import INFRA, REPO

DOCKERFILE = REPO / "Dockerfile"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    pairs = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            keyword, _, rest = stripped.partition(" ")
            pairs.append((keyword.upper(), rest.strip()))
    return pairs


def entry_command() -> list[str]:
    cmds = [args for keyword, args in instructions() if keyword == "CMD"]
    assert len(cmds) == 1, "one CMD, in exec form"
    command = json.loads(cmds[0])
    assert isinstance(command, list)
    return [str(part) for part in command]


def parse_cli(argv: list[str]) -> click.Context:
    """Resolve argv's console script and parse its arguments down to the leaf command, without running it."""
    (script,) = entry_points(group="console_scripts", name=argv[0])
    # The console script's `main` wraps the module's click command, by convention named `cli`.
    command = importlib.import_module(script.module).cli
    assert isinstance(command, click.Command), f"{script.value} has no click `cli`"
    args = argv[1:]
    while True:
        context = command.make_context(argv[0], list(args), resilient_parsing=False)
        if not isinstance(command, click.Group):
            return context
        name, sub, rest = command.resolve_command(context, context.protected_args + context.args)
        assert sub is not None, f"{name} is not a subcommand"
        command, args = sub, rest


def test_base_image_is_pinned() -> None:
    (base,) = [args for keyword, args in instructions() if keyword == "FROM"]
    assert re.fullmatch(r"python:3\.11\.\d+-slim(-\w+)?(@sha256:[0-9a-f]{64})?", base), base


def test_dependencies_install_before_the_source_with_the_constraints() -> None:
    steps = instructions()
    deps = next(
        i for i, (k, a) in enumerate(steps) if k == "RUN" and "pip install" in a and "-c constraints.txt" in a
    )
    source = next(i for i, (k, a) in enumerate(steps) if k == "COPY" and a.startswith("spotlake_assets"))
    assert deps < source
    copies_before = [a for k, a in steps[:deps] if k == "COPY"]
    assert not any("spotlake_assets" in a.split()[0] for a in copies_before)


def test_the_image_runs_as_a_non_root_user() -> None:
    steps = instructions()
    users = [(i, a) for i, (k, a) in enumerate(steps) if k == "USER"]
    assert users, "USER missing"
    last_index, user = users[-1]
    assert user not in {"root", "0"}
    cmd_index = next(i for i, (k, _) in enumerate(steps) if k == "CMD")
    assert last_index < cmd_index


def copy_paths(args: str) -> tuple[list[str], str]:
    """(sources, destination) of a COPY, its --flags dropped."""
    *sources, destination = [a for a in shlex.split(args) if not a.startswith("--")]
    return sources, destination


def test_every_copied_path_exists() -> None:
    for keyword, args in instructions():
        if keyword == "COPY" and not args.startswith("--from"):
            sources, _ = copy_paths(args)
            for source in sources:
                assert (REPO / source).exists(), source


def test_the_dependency_layer_is_keyed_on_dependency_declarations_only() -> None:
    # Anything copied before `pip install` invalidates the dependency layer when it changes: a README edit
    # must not reinstall the stack.
    steps = instructions()
    deps = next(i for i, (k, a) in enumerate(steps) if k == "RUN" and "-c constraints.txt" in a)
    copied = {s for k, a in steps[:deps] if k == "COPY" for s in copy_paths(a)[0]}
    assert copied == {"pyproject.toml", "constraints.txt", "infra/image-requirements.txt"}


def test_the_launchers_command_is_what_the_container_runs(aws_env: None) -> None:
    # Batch replaces the image's CMD with the launcher's command; an ENTRYPOINT would be put in front of it.
    entrypoints = [json.loads(a) for k, a in instructions() if k == "ENTRYPOINT"]
    assert entrypoints in ([], [[]]), "an ENTRYPOINT would wrap the launcher's command"
    with instance_for_test(overrides=launcher_overrides()) as instance:
        launcher = instance.run_launcher
        assert isinstance(launcher, BatchRunLauncher)
        command = launcher.command_for_run(LaunchRunContext(dagster_run=create_run(instance), workspace=None))
    argv = [*(entrypoints[0] if entrypoints else []), *command]
    assert argv[:3] == ["dagster", "api", "execute_run"]
    assert parse_cli(argv).command.name == "execute_run"


HEALTHCHECK_SCRIPT = REPO / "scripts" / "healthcheck.sh"


def healthcheck_probe(cmdline: list[str]) -> list[str]:
    """The probe scripts/healthcheck.sh runs for a container whose PID 1 runs ``cmdline``."""
    result = subprocess.run(
        ["sh", str(HEALTHCHECK_SCRIPT), "--dry-run"],
        env={
            "PATH": "/usr/bin:/bin",
            "SPOTLAKE_HEALTHCHECK_CMDLINE": " ".join(["/usr/local/bin/python", *cmdline]),
        },
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return shlex.split(result.stdout.strip())


def test_the_image_has_a_healthcheck_for_each_of_its_roles(
    terraform: dict[str, list[dict[str, Any]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    (check,) = [a for k, a in instructions() if k == "HEALTHCHECK"]
    probe = json.loads(check[check.index("CMD") + 3 :].strip())
    copies = {copy_paths(a)[1]: copy_paths(a)[0][0] for k, a in instructions() if k == "COPY"}
    assert copies[probe[0]] == "scripts/healthcheck.sh"

    # The code server (the image's CMD) answers gRPC health on the port it serves.
    code_server = healthcheck_probe(entry_command())
    assert code_server == ["dagster", "api", "grpc-health-check", "--port", "4000"]
    assert parse_cli(code_server).command.name == "grpc-health-check"
    monkeypatch.setenv("DAGSTER_CODE_SERVER_HOST", "code.spotlake.internal")
    commands = _terraform_commands(terraform)
    webserver = healthcheck_probe(commands["webserver"])
    assert webserver[-1] == "http://127.0.0.1:3000/server_info"
    daemon = healthcheck_probe(commands["daemon"])
    assert daemon == ["dagster-daemon", "liveness-check"]
    assert parse_cli(daemon).command.name == "liveness-check"
    # A run worker has no endpoint: Batch watches its process.
    assert healthcheck_probe(["dagster", "api", "execute_run", "{}"]) == ["true"]


def test_the_entry_command_serves_a_module_that_holds_the_definitions() -> None:
    command = entry_command()
    assert command[:3] == ["dagster", "api", "grpc"]
    context = parse_cli(command)
    module_name = context.params["module_name"]
    assert module_name == "spotlake_assets.definitions"
    targets = loadable_targets_from_python_module(module_name, working_directory=None)
    assert [t.attribute for t in targets] == ["defs"]
    assert isinstance(importlib.import_module(module_name).build_definitions(), dg.Definitions)


def test_the_launcher_command_names_the_same_cli(aws_env: None) -> None:
    with instance_for_test(overrides=launcher_overrides()) as instance:
        launcher = instance.run_launcher
        assert isinstance(launcher, BatchRunLauncher)
        run = create_run(instance)
        command = launcher.command_for_run(LaunchRunContext(dagster_run=run, workspace=None))
    # Same console script as the image's entry command, and a subcommand the installed CLI parses.
    assert command[0] == entry_command()[0]
    context = parse_cli(command)
    assert context.command.name == "execute_run"
    assert context.params["input_json"] == command[-1]


def _terraform_commands(terraform: dict[str, list[dict[str, Any]]]) -> dict[str, list[str]]:
    for block in terraform["locals"]:
        if "services" in block:
            services = block["services"]
            workspace = block["workspace"]
            return {
                name: [workspace if part == "${local.workspace}" else part for part in spec["command"]]
                for name, spec in services.items()
                if isinstance(spec.get("command"), list)
            }
    raise AssertionError("locals.services not found in infra/")


def test_the_control_plane_commands_parse_and_use_the_image_workspace(
    terraform: dict[str, list[dict[str, Any]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DAGSTER_CODE_SERVER_HOST", "code.spotlake.internal")
    commands = _terraform_commands(terraform)
    assert set(commands) == {"webserver", "daemon"}
    # Image destination -> repository source of every COPY.
    copied = {copy_paths(a)[1]: copy_paths(a)[0][0] for k, a in instructions() if k == "COPY"}
    for command in commands.values():
        image_path = command[command.index("--workspace") + 1]
        assert copied.get(image_path) == "infra/workspace.yaml", (
            f"{image_path} is not where the image puts it"
        )
        # The CLI checks the file exists: parse against the file the image would hold.
        local = [str(REPO / copied[image_path]) if part == image_path else part for part in command]
        context = parse_cli(local)
        assert list(context.params["workspace"]) == [str(REPO / "infra" / "workspace.yaml")]


def test_the_workspace_loads_the_code_server_by_grpc() -> None:
    import yaml

    workspace = yaml.safe_load((INFRA / "workspace.yaml").read_text())
    (entry,) = workspace["load_from"]
    server = entry["grpc_server"]
    assert server["port"] == 4000
    assert "--port" in entry_command() and entry_command()[entry_command().index("--port") + 1] == "4000"
    assert server["host"] == {"env": "DAGSTER_CODE_SERVER_HOST"}


@pytest.mark.parametrize("path", [DOCKERFILE, INFRA / "dagster.yaml", INFRA / "workspace.yaml"])
def test_no_secret_literals_in_image_files(path: Path) -> None:
    text = path.read_text().lower()
    assert not re.search(r"(password|secret|token)[ \t]*[:=][ \t]*['\"]?[a-z0-9]", text), path.name
