"""The run-failure alert through dagster-slack's client (slack_sdk), against a loopback HTTP server standing
in for Slack: the Web API (bot token + channel) and an incoming webhook."""

from __future__ import annotations

import json

import dagster as dg
import pytest
from pytest_httpserver import HTTPServer

from spotlake_assets.orchestration.alerts import (
    SlackAlerts,
    build_run_failure_alert,
    failure_message,
    slack_resource,
)

WEBHOOK_PATH = "/services/T000/B000/XXXX"
run_failure_alert = build_run_failure_alert(running=True)

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


def assert_alert_text(text: str, context: dg.RunFailureSensorContext) -> None:
    assert context.dagster_run.run_id[:8] in text and "http://dagster.internal:3000/runs/" in text
    assert "aws/sps" in text and "2026-03-01-00:10" in text
    assert "2 of 148 credential groups uncovered" in text


def test_a_bot_token_posts_with_chat_post_message(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/api/chat.postMessage", method="POST").respond_with_json(
        {"ok": True, "channel": "C1", "ts": "1.0"}
    )
    context = failed_run_context()
    slack = SlackAlerts(
        token="xoxb-test-token",
        channel="#spotlake-alerts",
        ui_url="http://dagster.internal:3000",
        api_url=httpserver.url_for("/api/"),
    )
    run_failure_alert(context, slack=slack)
    ((request, _),) = httpserver.log
    assert request.headers["Authorization"] == "Bearer xoxb-test-token"
    body = request.form or json.loads(request.get_data())
    assert body["channel"] == "#spotlake-alerts"
    assert_alert_text(body["text"], context)


def test_a_webhook_posts_the_message(httpserver: HTTPServer) -> None:
    httpserver.expect_request(WEBHOOK_PATH, method="POST").respond_with_data("ok")
    context = failed_run_context()
    slack = SlackAlerts(webhook_url=httpserver.url_for(WEBHOOK_PATH), ui_url="http://dagster.internal:3000")
    run_failure_alert(context, slack=slack)
    ((request, _),) = httpserver.log
    assert_alert_text(json.loads(request.get_data())["text"], context)


def test_a_refused_token_is_logged_not_raised(
    httpserver: HTTPServer, caplog: pytest.LogCaptureFixture
) -> None:
    httpserver.expect_request("/api/chat.postMessage").respond_with_json(
        {"ok": False, "error": "invalid_auth"}
    )
    slack = SlackAlerts(token="xoxb-bad", channel="#c", api_url=httpserver.url_for("/api/"))
    message = failure_message("abcdef123456", "aws_window_job", ["aws/sps"], None, "boom", None)
    assert slack.post(message) is False
    assert "Slack post failed (SlackApiError)" in caplog.text and "xoxb-bad" not in caplog.text


def test_without_slack_the_alert_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    context = failed_run_context()
    with caplog.at_level("WARNING"):
        run_failure_alert(context, slack=SlackAlerts())
    assert "no Slack token or webhook configured" in caplog.text and "aws/sps" in caplog.text


def test_an_unreachable_webhook_does_not_raise(caplog: pytest.LogCaptureFixture) -> None:
    hook = SlackAlerts(webhook_url="http://127.0.0.1:9/unreachable", timeout_s=2)
    assert (
        hook.post(failure_message("abcdef123456", "aws_window_job", ["aws/sps"], None, "boom", None)) is False
    )
    assert "Slack post failed" in caplog.text
    assert "unreachable" not in caplog.text  # the URL (a secret) is never logged


def test_secrets_come_from_the_environment_as_envvar() -> None:
    none = slack_resource({})
    assert none.webhook_url is None and none.token is None and not none.configured
    hook = slack_resource({"SPOTLAKE_SLACK_WEBHOOK_URL": "https://hooks.example/T/B/X"})
    assert isinstance(hook.webhook_url, dg.EnvVar)
    bot = slack_resource({"SPOTLAKE_SLACK_BOT_TOKEN": "xoxb-1", "SPOTLAKE_SLACK_CHANNEL": "#alerts"})
    assert isinstance(bot.token, dg.EnvVar) and bot.channel == "#alerts"


def test_a_token_without_a_channel_is_refused() -> None:
    from spotlake_assets.settings import InvalidSetting

    with pytest.raises(InvalidSetting, match="SPOTLAKE_SLACK_CHANNEL is not"):
        slack_resource({"SPOTLAKE_SLACK_BOT_TOKEN": "xoxb-1"})
