"""The Dagster UI in a real browser, as a new user meets it: `make demo`'s program seeds a temporary home
(the most recent windows), then `dagster dev` runs on it, driven by Playwright in Debian's chromium. Asserted:
every node label of each group's graph is distinct; the checks are green after the demo (freshness included);
plots render as images; a 3-window backfill launched from the Catalog is one run; a sensor toggles on
and off; one SPS partition materializes from the UI. Screenshots go to test-output/ui/; when a test fails,
the page as it was (screenshot and HTML) is saved under .spotlake/ui-failures/.

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
from collections.abc import Callable, Iterator
from dataclasses import dataclass
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
FAILURES = ROOT / ".spotlake" / "ui-failures"
LOCATION = "spotlake_assets.definitions"
# The demo's windows: enough for a 3-window backfill. 0.02: the scale the demo tests run at.
DEMO_WINDOWS = 3
DEMO_SCALE = "0.02"
# (asset, metadata entry) of plots the demo leaves: the day's chart and one per window.
PLOTS = [
    ("ops/collector_stats", "plot_duration_rss"),
    ("aws/merged", "plot_score_distribution"),
    ("aws/delta", "plot_changed_share"),
    ("azure/merged", "plot_score_distribution"),
]

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


@dataclass(frozen=True)
class Seeded:
    home: Path
    env: dict[str, str]
    windows: list[str]
    output: str


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Seeded:
    """A home as `make demo` leaves it (the most recent finished windows, at a small scale)."""
    require_chromium()
    home = tmp_path_factory.mktemp("ui")
    dagster_home = home / "dagster_home"
    dagster_home.mkdir()
    shutil.copy(ROOT / "infra" / "local" / "dagster.yaml", dagster_home / "dagster.yaml")
    env = {
        **{k: v for k, v in os.environ.items() if k != "SPOTLAKE_PARTITIONS_START"},
        "SPOTLAKE_ENV": "local",
        "SPOTLAKE_HOME": str(home),
        "SPOTLAKE_SCALE": DEMO_SCALE,
        "DAGSTER_HOME": str(dagster_home),
    }
    demo = [sys.executable, "-m", "spotlake_assets.demo", "--windows", str(DEMO_WINDOWS)]
    done = subprocess.run(demo, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    windows = re.findall(r"^\[\d+/\d+\] window (\S+)$", done.stdout, flags=re.MULTILINE)
    assert len(windows) == DEMO_WINDOWS, done.stdout[-3000:]
    return Seeded(home, env, windows, done.stdout)


@pytest.fixture(scope="module")
def dagster_dev(seeded: Seeded) -> Iterator[str]:
    port = free_port()
    log = (seeded.home / "dagster_dev.log").open("w")
    # Its own process group: the webserver, daemon and code servers are all killed together at the end.
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "dagster"), "dev", "-w", "workspace.yaml", "-p", str(port)],
        cwd=ROOT,
        env=seeded.env,
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
                    raise RuntimeError(
                        f"dagster dev did not start; see {seeded.home / 'dagster_dev.log'}"
                    ) from None
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
def screenshot_on_failure(request: pytest.FixtureRequest) -> Iterator[None]:
    """A failed browser test leaves the page as it was (screenshot and HTML) in .spotlake/ui-failures/."""
    yield
    if "page" not in request.fixturenames or not failed(request):
        return
    page = request.getfixturevalue("page")
    FAILURES.mkdir(parents=True, exist_ok=True)
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
    shot, html = FAILURES / f"{name}.png", FAILURES / f"{name}.html"
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


def poll(base: str, query: str, ready: Callable[[dict[str, Any]], bool], timeout_s: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while not ready(data := graphql(base, query)):
        assert time.monotonic() < deadline, f"not ready after {timeout_s}s: {json.dumps(data)[:2000]}"
        time.sleep(3)
    return data


def test_every_node_label_in_a_group_graph_is_distinct(page: Any, dagster_dev: str) -> None:
    from spotlake_assets.definitions import build_definitions

    groups: dict[str, int] = {}
    for node in build_definitions().resolve_asset_graph().asset_nodes:
        groups[node.group_name] = groups.get(node.group_name, 0) + 1
    for group, count in sorted(groups.items()):
        open_page(page, f"{dagster_dev}/locations/{LOCATION}/asset-groups/{group}")
        # The graph's nodes (the UI labels each with its key's last part, shortened when long).
        nodes = page.locator("[class*='AssetNode_assetName']")
        deadline = time.monotonic() + 60
        while nodes.count() < count and time.monotonic() < deadline:
            page.wait_for_timeout(500)
        labels = [label.strip() for label in nodes.all_inner_texts()]
        assert len(labels) == count, (group, labels)
        repeated = sorted({label for label in labels if labels.count(label) > 1})
        assert not repeated, f"group {group}: several nodes read {repeated}"
        if group == "aws":
            page.screenshot(path=str(SHOTS / "01_aws_graph.png"))


def test_checks_are_green_after_the_demo(page: Any, dagster_dev: str, seeded: Seeded) -> None:
    assert re.search(r"asset checks: (\d+) of \1 green", seeded.output), seeded.output[-3000:]
    for provider in ("aws", "azure"):
        open_page(page, f"{dagster_dev}/assets/{provider}/delta?view=checks")
        page.get_by_text("delta_is_fresh", exact=True).first.click()
        result = page.get_by_text("Evaluation result").locator("xpath=..")
        result.get_by_text("Passed", exact=True).wait_for()
        if provider == "aws":
            page.screenshot(path=str(SHOTS / "02_freshness_green.png"))


def test_plots_render_as_images(page: Any, dagster_dev: str) -> None:
    for i, (asset, entry) in enumerate(PLOTS):
        open_page(page, f"{dagster_dev}/assets/{asset}?view=events")
        row = page.locator("tr").filter(has=page.get_by_text(entry, exact=True)).first
        # Over 1,000 characters, a Markdown value opens (rendered) from this link.
        row.get_by_text("[Show Markdown]").click()
        dialog = page.get_by_role("dialog").filter(has_text=entry)
        image = dialog.locator("img").first
        image.wait_for()
        assert (image.get_attribute("src") or "").startswith("data:image/png;base64,")
        image.evaluate("img => img.decode()")
        loaded, width, height = image.evaluate("img => [img.complete, img.naturalWidth, img.naturalHeight]")
        assert loaded and width > 200 and height > 100, (asset, entry, width, height)
        if i == 0:
            page.screenshot(path=str(SHOTS / "03_collector_stats_plot.png"))
        dialog.get_by_role("button", name="Close").click()
        dialog.wait_for(state="detached")


def test_a_catalog_backfill_of_three_windows_is_one_run(page: Any, dagster_dev: str, seeded: Seeded) -> None:
    selection = f"[{seeded.windows[0]}...{seeded.windows[-1]}]"
    launch_from_asset(page, dagster_dev, "aws/merged", selection, "Launch backfill")
    query = (
        "{ partitionBackfillsOrError { ... on PartitionBackfills { results {"
        " id status numPartitions runs(limit: 10) { runId status tags { key value } } } } } }"
    )

    def finished(data: dict[str, Any]) -> bool:
        results = data["partitionBackfillsOrError"]["results"]
        return bool(results) and results[0]["status"] not in ("REQUESTED", "CANCELING")

    data = poll(dagster_dev, query, finished, 600)
    (backfill,) = data["partitionBackfillsOrError"]["results"]
    assert backfill["status"] == "COMPLETED_SUCCESS", backfill
    assert backfill["numPartitions"] == DEMO_WINDOWS
    # One run merges the three windows in order (the merge chain's backfill policy), not one per window.
    assert [run["status"] for run in backfill["runs"]] == ["SUCCESS"], backfill["runs"]
    wait_for_text(page, f"{dagster_dev}/runs/{backfill['runs'][0]['runId']}", r"\bSuccess\b", 120)
    page.screenshot(path=str(SHOTS / "04_one_run_backfill.png"))


def test_a_sensor_toggles_on_and_off(page: Any, dagster_dev: str) -> None:
    sensor = "aws_freshness_sensor"  # launches no run, so turning it on disturbs nothing
    selector = (
        f'repositoryLocationName: "{LOCATION}", repositoryName: "__repository__", sensorName: "{sensor}"'
    )
    state = "... on Sensor { sensorState { status } }"
    query = f"{{ sensorOrError(sensorSelector: {{{selector}}}) {{ {state} }} }}"

    def status() -> str:
        return str(graphql(dagster_dev, query)["sensorOrError"]["sensorState"]["status"])

    assert status() == "STOPPED"  # local: off until the operator turns it on
    open_page(page, f"{dagster_dev}/automation")
    row = page.locator("[class*='ListItem_listItem']").filter(
        has=page.locator(f"a[href$='/sensors/{sensor}']")
    )
    switch = row.locator("label[class*='formatSwitch']")

    def is_(wanted: str) -> Callable[[dict[str, Any]], bool]:
        return lambda data: bool(data["sensorOrError"]["sensorState"]["status"] == wanted)

    for wanted in ("RUNNING", "STOPPED"):
        switch.click()
        poll(dagster_dev, query, is_(wanted), 60)
        if wanted == "RUNNING":
            page.screenshot(path=str(SHOTS / "05_sensor_on.png"))
    assert status() == "STOPPED"


def test_materialize_one_sps_partition(page: Any, dagster_dev: str, seeded: Seeded) -> None:
    window = seeded.windows[0]
    launch_from_asset(page, dagster_dev, "aws/sps", window, "Launch 1 run")
    query = (
        '{ runsOrError(filter: {tags: [{key: "dagster/partition", value: "%s"}]})'
        " { ... on Runs { results { runId tags { key value } } } } }"
    )

    def launched_from_ui(data: dict[str, Any]) -> list[str]:
        # The demo's own runs of this window carry its process tags; the UI's run does not.
        return [
            run["runId"]
            for run in data["runsOrError"]["results"]
            if not any(tag["key"].startswith("spotlake/worker") for tag in run["tags"])
            and not any(tag["key"] == "dagster/backfill" for tag in run["tags"])
        ]

    data = poll(dagster_dev, query % window, lambda d: bool(launched_from_ui(d)), 60)
    wait_for_text(page, f"{dagster_dev}/runs/{launched_from_ui(data)[0]}", r"\bSuccess\b", 300)
    page.screenshot(path=str(SHOTS / "06_sps_run_success.png"))
