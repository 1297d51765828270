"""The run-failure alert against a loopback HTTP server standing in for Slack."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer

import dagster as dg
import pytest

from spotlake_assets.orchestration.alerts import (
    SlackWebhook,
    failure_message,
    run_failure_alert,
    slack_resource,
)


class _Slack(BaseHTTPRequestHandler):
    received: list[dict[str, str]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Slack.received.append(json.loads(body))
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def slack_url() -> Iterator[str]:
    _Slack.received = []
    server = HTTPServer(("127.0.0.1", 0), _Slack)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/services/T000/B000/XXXX"
    server.shutdown()


partitions = dg.StaticPartitionsDefinition(["2026-03-01-00:10"])


@dg.asset(key=["aws", "sps"], partitions_def=partitions)
def failing_sps() -> None:
    raise RuntimeError("SPS collection incomplete: 2 of 148 credential groups uncovered")


def failed_run_context() -> dg.RunFailureSensorContext:
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize(
        [failing_sps], instance=instance, partition_key="2026-03-01-00:10", raise_on_error=False
    )
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "PIPELINE_FAILURE")
    run = instance.get_run_by_id(result.run_id)
    assert run is not None
    return dg.build_run_status_sensor_context(
        sensor_name="run_failure_alert", dagster_event=failure, dagster_instance=instance, dagster_run=run
    ).for_run_failure()


def test_failure_posts_run_asset_partition_and_error(slack_url: str) -> None:
    context = failed_run_context()
    run_failure_alert(context, slack=SlackWebhook(url=slack_url, ui_url="http://dagster.internal:3000"))
    (payload,) = _Slack.received
    text = payload["text"]
    assert context.dagster_run.run_id[:8] in text and "http://dagster.internal:3000/runs/" in text
    assert "aws/sps" in text and "2026-03-01-00:10" in text
    assert "2 of 148 credential groups uncovered" in text


def test_without_a_webhook_the_alert_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    context = failed_run_context()
    with caplog.at_level("WARNING"):
        run_failure_alert(context, slack=SlackWebhook())
    assert "no Slack webhook configured" in caplog.text and "aws/sps" in caplog.text


def test_an_unreachable_webhook_does_not_raise(caplog: pytest.LogCaptureFixture) -> None:
    hook = SlackWebhook(url="http://127.0.0.1:9/unreachable", timeout_s=2)
    assert (
        hook.post(failure_message("abcdef123456", "aws_window_job", ["aws/sps"], None, "boom", None)) is False
    )
    assert "Slack webhook post failed" in caplog.text
    assert "unreachable" not in caplog.text  # the URL (a secret) is never logged


def test_webhook_url_comes_from_the_environment_as_envvar() -> None:
    assert slack_resource({}).url is None
    resource = slack_resource({"SPOTLAKE_SLACK_WEBHOOK_URL": "https://hooks.example/T/B/X"})
    assert isinstance(resource.url, dg.EnvVar)
