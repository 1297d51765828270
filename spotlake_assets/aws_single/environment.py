"""The single-account resources of each environment (``aws_ec2``, ``report_notifier``), for the one resolver.

``local``: the simulated EC2/SSM (`SPOTLAKE_SEED`, `SPOTLAKE_SCALE`). ``test``/``prod``: boto3 with the
ambient credentials (the researcher's account). Report channels are optional and each is configured only
when its variables are set, always as `dg.EnvVar`s (values never land in the UI's config):
- SMTP with STARTTLS: `SPOTLAKE_REPORT_SMTP_HOST` (+ `SPOTLAKE_REPORT_SMTP_PORT`, default 587,
  `SPOTLAKE_REPORT_SMTP_USER`, `SPOTLAKE_REPORT_SMTP_PASSWORD`);
- Amazon SES: `SPOTLAKE_REPORT_SES_REGION`;
- both e-mail channels: `SPOTLAKE_REPORT_MAIL_FROM`, `SPOTLAKE_REPORT_MAIL_TO` (comma-separated);
- Slack: `SPOTLAKE_REPORT_SLACK_WEBHOOK_URL` (an incoming webhook).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import dagster as dg

from spotlake_assets.aws_single.notify import ReportNotifier
from spotlake_assets.aws_single.resources import Boto3Ec2Lab, SimulatedEc2Lab
from spotlake_assets.settings import load_settings

# Resource field → variable (settings.REPORT_VARIABLES lists and checks them).
REPORT_FIELDS = {
    "mail_from": "SPOTLAKE_REPORT_MAIL_FROM",
    "mail_to": "SPOTLAKE_REPORT_MAIL_TO",
    "smtp_host": "SPOTLAKE_REPORT_SMTP_HOST",
    "smtp_user": "SPOTLAKE_REPORT_SMTP_USER",
    "smtp_password": "SPOTLAKE_REPORT_SMTP_PASSWORD",
    "ses_region": "SPOTLAKE_REPORT_SES_REGION",
    "slack_webhook_url": "SPOTLAKE_REPORT_SLACK_WEBHOOK_URL",
}
PORT_VARIABLE = "SPOTLAKE_REPORT_SMTP_PORT"


def report_notifier(environ: Mapping[str, str]) -> ReportNotifier:
    """The channels whose variables are set, as EnvVars (parsed and checked by `load_settings`)."""
    present = set(load_settings(environ).report_variables)
    fields: dict[str, Any] = {name: dg.EnvVar(v) for name, v in REPORT_FIELDS.items() if v in present}
    if PORT_VARIABLE in present:
        fields["smtp_port"] = dg.EnvVar.int(PORT_VARIABLE)
    return ReportNotifier(**fields)


def aws_single_resources(environment: str, environ: Mapping[str, str]) -> dict[str, Any]:
    settings = load_settings({**environ, "SPOTLAKE_ENV": environment})
    lab = (
        SimulatedEc2Lab(seed=settings.seed, scale=settings.scale)
        if settings.environment == "local"
        else Boto3Ec2Lab()
    )
    return {"aws_ec2": lab, "report_notifier": report_notifier(environ)}
