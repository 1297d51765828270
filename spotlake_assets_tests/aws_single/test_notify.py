"""The daily report reaches a loopback SMTP server over STARTTLS, SES (moto) and a loopback Slack webhook."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator
from email import message_from_bytes
from pathlib import Path
from typing import Any

import boto3
import pytest
import trustme
from aiosmtpd.controller import Controller
from moto import mock_aws
from moto.core.models import DEFAULT_ACCOUNT_ID
from moto.ses.models import ses_backends
from pytest_httpserver import HTTPServer

from spotlake_assets.aws_single.environment import report_notifier
from spotlake_assets.aws_single.notify import Report, ReportNotifier
from spotlake_assets.settings import InvalidSetting

REPORT = Report(
    "SpotLake single-account report 2026-03-01",
    "| InstanceType | Score |\n|---|---|\n| m5.large | 4 |",
    b"\x89PNG fake",
)


class Inbox:
    def __init__(self) -> None:
        self.messages: list[bytes] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(envelope.content)
        return "250 OK"


@pytest.fixture
def smtp(tmp_path: Path) -> Iterator[tuple[Inbox, int, str]]:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(server_context)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    inbox = Inbox()
    # aiosmtpd's start() connects to the port it was given to check the server is up: it needs a real one.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    controller = Controller(
        inbox, hostname="127.0.0.1", port=port, tls_context=server_context, require_starttls=True
    )
    controller.start()
    try:
        yield inbox, port, str(ca_file)
    finally:
        controller.stop()


def test_the_report_is_mailed_over_starttls(smtp: tuple[Inbox, int, str]) -> None:
    inbox, port, ca_file = smtp
    notifier = ReportNotifier(
        smtp_host="127.0.0.1",
        smtp_port=port,
        smtp_ca_file=ca_file,
        mail_from="lab@example.org",
        mail_to="a@example.org, b@example.org",
    )
    deliveries = {d.channel: d for d in notifier.deliver(REPORT)}
    assert deliveries["smtp"].status == "sent", deliveries["smtp"].detail
    assert deliveries["ses"].status == deliveries["slack"].status == "skipped"
    message = message_from_bytes(inbox.messages[0])
    assert message["Subject"] == REPORT.subject and message["To"] == "a@example.org, b@example.org"
    parts = {p.get_content_type(): p for p in message.walk()}
    text = parts["text/plain"].get_payload(decode=True)
    assert isinstance(text, bytes) and b"m5.large" in text
    assert parts["image/png"].get_payload(decode=True) == REPORT.png


def test_an_smtp_server_without_trusted_tls_is_a_failed_delivery_not_a_crash(
    smtp: tuple[Inbox, int, str],
) -> None:
    inbox, port, _ = smtp
    notifier = ReportNotifier(
        smtp_host="127.0.0.1", smtp_port=port, mail_from="lab@example.org", mail_to="a@example.org"
    )
    (delivery,) = [d for d in notifier.deliver(REPORT) if d.channel == "smtp"]
    assert delivery.status == "failed" and "SSL" in delivery.detail
    assert inbox.messages == []


def test_the_report_is_sent_through_ses(aws_env: None) -> None:
    with mock_aws():
        boto3.client("ses", region_name="eu-west-1").verify_email_identity(EmailAddress="lab@example.org")
        notifier = ReportNotifier(
            ses_region="eu-west-1", mail_from="lab@example.org", mail_to="a@example.org"
        )
        (delivery,) = [d for d in notifier.deliver(REPORT) if d.channel == "ses"]
        assert delivery.status == "sent"
        (sent,) = ses_backends[DEFAULT_ACCOUNT_ID]["eu-west-1"].sent_messages
        assert sent.source == "lab@example.org" and b"m5.large" in sent.raw_data.encode()


def test_the_report_is_posted_to_slack(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/hooks/abc", method="POST").respond_with_data("ok")
    notifier = ReportNotifier(slack_webhook_url=httpserver.url_for("/hooks/abc"))
    (delivery,) = [d for d in notifier.deliver(REPORT) if d.channel == "slack"]
    assert delivery.status == "sent"
    ((request, _),) = httpserver.log
    assert "m5.large" in request.get_json()["text"] and REPORT.subject in request.get_json()["text"]


def test_a_failing_slack_webhook_is_a_failed_delivery_that_does_not_leak_the_url(
    httpserver: HTTPServer,
) -> None:
    httpserver.expect_request("/hooks/gone", method="POST").respond_with_data("no_service", status=404)
    notifier = ReportNotifier(slack_webhook_url=httpserver.url_for("/hooks/gone"))
    (delivery,) = [d for d in notifier.deliver(REPORT) if d.channel == "slack"]
    assert (delivery.status, delivery.detail) == ("failed", "HTTP 404")
    with socket.socket() as probe:  # a port nothing listens on: the connection is refused
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}/hooks/secret-token"
    (delivery,) = [
        d for d in ReportNotifier(slack_webhook_url=closed).deliver(REPORT) if d.channel == "slack"
    ]
    assert delivery.status == "failed" and "secret-token" not in delivery.detail


def test_channels_are_configured_from_env_vars_only_when_set(monkeypatch: pytest.MonkeyPatch) -> None:
    assert report_notifier({}).smtp_host is None
    env = {
        "SPOTLAKE_REPORT_SLACK_WEBHOOK_URL": "https://hooks.example/x",
        "SPOTLAKE_REPORT_SMTP_PORT": "2525",
    }
    resource = report_notifier(env)
    # The values stay EnvVars (never literal config in the UI) until the resource is used.
    config = resource._convert_to_config_dictionary()
    assert config["slack_webhook_url"] == {"env": "SPOTLAKE_REPORT_SLACK_WEBHOOK_URL"}
    assert config["smtp_port"] == {"env": "SPOTLAKE_REPORT_SMTP_PORT"}
    assert resource.ses_region is None
    for bad in ({"SPOTLAKE_REPORT_SMTP_PORT": "smtp"}, {"SPOTLAKE_REPORT_SES_REGION": "Ireland"}):
        with pytest.raises(InvalidSetting, match=next(iter(bad))):
            report_notifier(bad)
