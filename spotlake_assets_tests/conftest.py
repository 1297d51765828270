"""Shared fixtures: a temporary lake, an S3 lake on moto, and an S3 lake on a moto server for races."""

from __future__ import annotations

import os
import threading
import urllib.request
from collections.abc import Callable, Generator, Iterable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import BaseWSGIServer, make_server

from spotlake_assets.storage.lake import LocalLake, S3Lake

# Tests use fixed days (2026-03-01, ...): pin the partitions' start before any definition is imported, where
# `local` would otherwise start a few days before today (settings.partitions_start).
os.environ.setdefault("SPOTLAKE_PARTITIONS_START", "2026-01-01")

REGION = "us-west-2"
BUCKETS = ("spotlake-read", "spotlake-write", "spotlake-prod")


@pytest.fixture
def local_lake(tmp_path: Path) -> LocalLake:
    return LocalLake(root=str(tmp_path / "lake"))


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # Fake values: moto needs some credentials, and nothing here may reach a real account.
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        monkeypatch.setenv(name, value)


def _create_buckets(s3: Any) -> None:
    for bucket in BUCKETS:
        s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})


@pytest.fixture
def moto_s3(aws_env: None) -> Iterator[None]:
    with mock_aws():
        _create_buckets(boto3.client("s3", region_name=REGION))
        yield


@pytest.fixture
def s3_lake(moto_s3: None) -> S3Lake:
    return S3Lake(bucket="spotlake-prod", region_name=REGION)


class _OneRequestAtATime:
    """S3 applies each request atomically: a conditional PUT checks and writes in one step. In-process moto
    does not (it checks `If-None-Match`, then writes, with no lock), so threads racing on one key can both
    "win" and the test flakes under load. This WSGI wrapper applies one request at a time, as S3 would,
    while the clients still race over real HTTP connections."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app
        self.lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        with self.lock:
            # The body is consumed under the lock too: moto builds responses lazily in places.
            return list(self.app(environ, start_response))


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """A moto server on 127.0.0.1 (a free port), one per test process; see `_OneRequestAtATime`."""
    app = _OneRequestAtATime(DomainDispatcherApplication(create_backend_app))
    # moto's handler keeps S3 metadata headers with underscores, as its own ThreadedMotoServer does.
    server: BaseWSGIServer = make_server(
        "127.0.0.1", 0, app, threaded=True, request_handler=MotoRequestHandler
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _reset(url: str) -> None:
    # moto's state is per process: start and end every test with empty buckets.
    with urllib.request.urlopen(urllib.request.Request(f"{url}/moto-api/reset", method="POST"), timeout=30):
        pass


@pytest.fixture
def s3_server_lake(aws_env: None, moto_server: str) -> Iterator[S3Lake]:
    """The `s3_lake` buckets on the moto server: for tests where threads race on the same objects."""
    _reset(moto_server)
    _create_buckets(boto3.client("s3", region_name=REGION, endpoint_url=moto_server))
    try:
        yield S3Lake(bucket="spotlake-prod", region_name=REGION, endpoint_url=moto_server)
    finally:
        _reset(moto_server)


# Each test's phase reports, so a fixture can tell at teardown whether the test failed (the browser test
# saves a screenshot then).
PHASE_REPORTS = pytest.StashKey[dict[str, pytest.TestReport]]()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report: pytest.TestReport = yield
    item.stash.setdefault(PHASE_REPORTS, {})[report.when] = report
    return report


def failed(request: pytest.FixtureRequest) -> bool:
    """Whether the requesting test's own call failed (for use after `yield` in a fixture)."""
    call = request.node.stash.get(PHASE_REPORTS, {}).get("call")
    return call is not None and call.failed
