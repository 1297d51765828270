"""Delivery of the daily report: e-mail over SMTP with STARTTLS, e-mail through Amazon SES, a Slack incoming
webhook (slack_sdk's `WebhookClient`, the client dagster-slack ships, as the run-failure alerts use in
`orchestration/alerts.py`). Each channel is optional and configured with `dg.EnvVar`s
(`aws_single/environment.py`); a channel that is not configured is skipped, one that fails is reported in the
asset's metadata, never retried in a loop, and never fails the report (the markdown is in the metadata either
way)."""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

import dagster as dg

from spotlake_assets.storage.botocore_config import client_config


@dataclass(frozen=True)
class Report:
    subject: str
    markdown: str
    png: bytes | None


@dataclass(frozen=True)
class Delivery:
    channel: str
    status: str  # sent, skipped, failed
    detail: str = ""


def _recipients(value: str | None) -> list[str]:
    return [r.strip() for r in (value or "").split(",") if r.strip()]


class ReportNotifier(dg.ConfigurableResource):  # type: ignore[type-arg]
    """Where the daily report goes. Secrets (SMTP password, webhook URL) only ever as EnvVars."""

    mail_from: str | None = None
    mail_to: str | None = None  # comma-separated
    smtp_host: str | None = None
    smtp_port: int = 587
    smtp_user: str | None = None
    smtp_password: str | None = None
    # A CA bundle to verify the SMTP server with (tests, private relays); None: the system's.
    smtp_ca_file: str | None = None
    ses_region: str | None = None
    ses_endpoint_url: str | None = None
    slack_webhook_url: str | None = None
    timeout_s: float = 20.0

    def message(self, report: Report) -> EmailMessage:
        message = EmailMessage()
        message["Subject"] = report.subject
        message["From"] = self.mail_from or "spotlake@localhost"
        message["To"] = ", ".join(_recipients(self.mail_to))
        message.set_content(report.markdown)
        if report.png is not None:
            message.add_attachment(report.png, maintype="image", subtype="png", filename="top_k.png")
        return message

    def deliver(self, report: Report) -> list[Delivery]:
        return [self._smtp(report), self._ses(report), self._slack(report)]

    def _smtp(self, report: Report) -> Delivery:
        if not (self.smtp_host and self.mail_from and _recipients(self.mail_to)):
            return Delivery("smtp", "skipped", "SMTP host, sender or recipients not configured")
        context = ssl.create_default_context(cafile=self.smtp_ca_file)
        try:
            with smtplib.SMTP(self.smtp_host, self.smtp_port, timeout=self.timeout_s) as smtp:
                # STARTTLS is required: credentials and the report never cross the network in clear.
                smtp.starttls(context=context)
                if self.smtp_user:
                    smtp.login(self.smtp_user, self.smtp_password or "")
                smtp.send_message(self.message(report))
        except (OSError, smtplib.SMTPException) as exc:
            return Delivery("smtp", "failed", f"{type(exc).__name__}: {exc}")
        return Delivery("smtp", "sent", f"{self.smtp_host}:{self.smtp_port}")

    def _ses(self, report: Report) -> Delivery:
        # Imported here, not at module level: loading the definitions must not pay for it.
        import boto3

        if not (self.ses_region and self.mail_from and _recipients(self.mail_to)):
            return Delivery("ses", "skipped", "SES region, sender or recipients not configured")
        client: Any = boto3.session.Session().client(
            "ses", region_name=self.ses_region, endpoint_url=self.ses_endpoint_url, config=client_config()
        )
        try:
            answer = client.send_raw_email(
                Source=self.mail_from,
                Destinations=_recipients(self.mail_to),
                RawMessage={"Data": self.message(report).as_bytes()},
            )
        except Exception as exc:  # botocore's ClientError and BotoCoreError both; reported, not raised
            return Delivery("ses", "failed", f"{type(exc).__name__}: {exc}")
        return Delivery("ses", "sent", str(answer.get("MessageId", "")))

    def _slack(self, report: Report) -> Delivery:
        from slack_sdk.errors import SlackClientError
        from slack_sdk.webhook import WebhookClient

        if not self.slack_webhook_url:
            return Delivery("slack", "skipped", "no webhook configured")
        client = WebhookClient(self.slack_webhook_url, timeout=max(1, round(self.timeout_s)))
        try:
            status = client.send(text=f"*{report.subject}*\n{report.markdown}").status_code
        except (SlackClientError, OSError) as exc:
            # The exception's text may hold the webhook URL (a secret): only its type reaches the metadata.
            return Delivery("slack", "failed", type(exc).__name__)
        return Delivery("slack", "sent" if 200 <= status < 300 else "failed", f"HTTP {status}")


def deliveries_metadata(deliveries: Sequence[Delivery]) -> dict[str, str]:
    return {d.channel: f"{d.status}{': ' + d.detail if d.detail else ''}" for d in deliveries}
