"""The Dagster UI in a real browser: `dagster dev` on a temporary home, driven by Playwright in Debian's
chromium. Opens the asset graph, materializes one SPS partition, backfills three merged windows, and saves
screenshots under test-output/ui/ (and, when a test fails, the page as it was under that test's tmp path).

Overlays (the first-visit community dialog appears late and intercepted a click once) are dismissed by a
Playwright locator handler before every action; every action uses auto-waiting locators. Also here: the
`make chromium` step fails, instead of letting this test skip, when it runs as root and cannot install."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from spotlake_assets_tests.conftest import failed

ROOT = Path(__file__).resolve().parents[1]
SHOTS = ROOT / "test-output" / "ui"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# Yesterday: the launch dialog only offers the last 90 days of partitions.
DAY = (datetime.now(UTC) - timedelta(days=1)).strftime("%Y-%m-%d")
SPS_WINDOW = f"{DAY}-01:00"
MERGE_WINDOWS = [f"{DAY}-01:10", f"{DAY}-01:20", f"{DAY}-01:30"]

playwright = pytest.importorskip("playwright.sync_api", reason="pip playwright is not installed")


def _fake_tool(folder: Path, name: str, script: str) -> None:
    tool = folder / name
    tool.write_text(f"#!/bin/sh\n{script}\n")
    tool.chmod(0o755)


@pytest.mark.parametrize(
    ("uid", "code", "message"),
    [
        ("0", 2, "chromium could not be installed (apt-get failed): the browser test cannot run"),
        ("1000", 0, "chromium is missing and cannot be installed without root: the browser test will skip"),
    ],
    ids=["root: fails", "no root, no sudo: skips"],
)
def test_make_chromium_fails_as_root_when_chromium_cannot_be_installed(
    tmp_path: Path, uid: str, code: int, message: str
) -> None:
    # A PATH with no chromium, no sudo, a fixed `id -u` and an apt-get that fails (as offline).
    _fake_tool(tmp_path, "id", f"echo {uid}")
    _fake_tool(tmp_path, "apt-get", "echo 'E: Unable to locate package chromium' >&2; exit 100")
    make = shutil.which("make")
    if make is None:
        pytest.skip("make is not installed")
    done = subprocess.run(
        [make, "-s", "--no-print-directory", "chromium"],
        cwd=ROOT,
        env={"PATH": str(tmp_path), "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == code, done.stdout + done.stderr
    assert message in done.stdout + done.stderr


def require_chromium() -> None:
    # `make test` installs chromium first and fails when it cannot as root; a skip remains for the rest.
    if not Path(CHROMIUM).exists():
        pytest.skip(
            "Debian chromium is not installed (make test installs it when it runs as root or with sudo)"
        )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def graphql(base: str, query: str) -> dict[str, Any]:
    request = urllib.request.Request(
        f"{base}/graphql",
        data=json.dumps({"query": query}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return dict(json.loads(response.read())["data"])


@pytest.fixture(scope="module")
def dagster_dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    require_chromium()
    home = tmp_path_factory.mktemp("ui")
    dagster_home = home / "dagster_home"
    dagster_home.mkdir()
    shutil.copy(ROOT / "infra" / "local" / "dagster.yaml", dagster_home / "dagster.yaml")
    env = {
        **os.environ,
        "SPOTLAKE_ENV": "local",
        "SPOTLAKE_HOME": str(home),
        "SPOTLAKE_SCALE": "0.01",
        "DAGSTER_HOME": str(dagster_home),
    }
    seed = [sys.executable, "-m", "spotlake_assets_tests.ui_seed", DAY, *MERGE_WINDOWS]
    subprocess.run(seed, cwd=ROOT, env=env, check=True, capture_output=True, timeout=600)
    port = free_port()
    log = (home / "dagster_dev.log").open("w")
    # Its own process group: the webserver, daemon and code servers are all killed together at the end.
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "dagster"), "dev", "-w", "workspace.yaml", "-p", str(port)],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                urllib.request.urlopen(f"{base}/server_info", timeout=5).read()
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError(f"dagster dev did not start; see {home / 'dagster_dev.log'}") from None
                time.sleep(2)
        yield base
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
        log.close()


@pytest.fixture(scope="module")
def page(dagster_dev: str) -> Iterator[Any]:
    SHOTS.mkdir(parents=True, exist_ok=True)
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        tab = browser.new_page(viewport={"width": 1400, "height": 900})
        tab.set_default_timeout(60_000)
        # The first-visit community dialog renders some time after the page settles, so a check right after
        # loading can miss it and its overlay then intercepts the next click. The handler runs before every
        # action and auto-waiting check, whenever the dialog is visible.
        tab.add_locator_handler(
            tab.get_by_role("button", name="Skip", exact=True), lambda skip: skip.click(), no_wait_after=True
        )
        yield tab
        browser.close()


@pytest.fixture(autouse=True)
def screenshot_on_failure(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[None]:
    """A failed browser test leaves the page as it was (screenshot and HTML) under its tmp path."""
    yield
    if "page" not in request.fixturenames or not failed(request):
        return
    page = request.getfixturevalue("page")
    shot, html = tmp_path / "failure.png", tmp_path / "failure.html"
    try:
        page.screenshot(path=str(shot), full_page=True)
        html.write_text(page.content())
    except playwright.Error as exc:  # a crashed browser must not hide the test's own failure
        sys.stderr.write(f"no failure screenshot: {exc}\n")
        return
    # The teardown's captured output is shown with the failure report.
    sys.stderr.write(f"page at failure ({page.url}): {shot} and {html}\n")


def open_page(page: Any, url: str) -> None:
    page.goto(url)
    page.wait_for_load_state("networkidle")


def launch_from_asset(page: Any, base: str, asset_path: str, selection: str, button: str) -> None:
    open_page(page, f"{base}/assets/{asset_path}")
    page.get_by_role("button", name="Materialize…").click()
    # The launch dialog, not any other dialog that may be open (its button only reads `button` once the
    # selection is typed, so the title identifies it).
    dialog = page.get_by_role("dialog").filter(has_text="Launch runs to materialize")
    box = dialog.locator("input:not([type=checkbox])").first
    box.fill(selection)
    box.press("Enter")
    dialog.get_by_role("button", name=button).click()
    dialog.wait_for(state="detached")


def wait_for_text(page: Any, url: str, pattern: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        open_page(page, url)
        if re.search(pattern, page.inner_text("body")):
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{pattern!r} did not appear at {url} within {timeout_s}s")
        page.wait_for_timeout(5000)


def test_asset_graph_shows_every_group(page: Any, dagster_dev: str) -> None:
    from spotlake_assets.definitions import build_definitions

    groups = {node.group_name for node in build_definitions().resolve_asset_graph().asset_nodes}
    open_page(page, f"{dagster_dev}/asset-groups")
    for group in sorted(groups):
        page.get_by_text(group, exact=True).first.wait_for()
    page.screenshot(path=str(SHOTS / "01_asset_graph.png"))


def test_materialize_one_sps_partition(page: Any, dagster_dev: str) -> None:
    launch_from_asset(page, dagster_dev, "aws/sps", SPS_WINDOW, "Launch 1 run")
    query = (
        '{ runsOrError(filter: {tags: [{key: "dagster/partition", value: "%s"}]})'
        " { ... on Runs { results { runId } } } }"
    )
    deadline = time.monotonic() + 60
    while not (runs := graphql(dagster_dev, query % SPS_WINDOW)["runsOrError"]["results"]):
        assert time.monotonic() < deadline, "the launched run never appeared"
        time.sleep(2)
    wait_for_text(page, f"{dagster_dev}/runs/{runs[0]['runId']}", r"\bSuccess\b", 300)
    page.screenshot(path=str(SHOTS / "02_sps_run_success.png"))


def test_backfill_three_merged_windows(page: Any, dagster_dev: str) -> None:
    selection = f"[{MERGE_WINDOWS[0]}...{MERGE_WINDOWS[-1]}]"
    launch_from_asset(page, dagster_dev, "aws/merged", selection, "Launch backfill")
    wait_for_text(
        page, f"{dagster_dev}/runs?view=backfills", r"3 partitions[\s\S]*aws / merged[\s\S]*Success", 600
    )
    page.screenshot(path=str(SHOTS / "03_merged_backfill_success.png"))
    backfills = graphql(
        dagster_dev, "{ partitionBackfillsOrError { ... on PartitionBackfills { results { status } } } }"
    )
    assert [b["status"] for b in backfills["partitionBackfillsOrError"]["results"]] == ["COMPLETED_SUCCESS"]
