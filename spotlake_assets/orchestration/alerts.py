"""Run-failure alerts: a Slack incoming webhook when one is configured, the log otherwise."""

import json
import logging
import urllib.request
from collections.abc import Mapping, Sequence
from typing import Any

import dagster as dg

from spotlake_assets.settings import load_settings

log = logging.getLogger(__name__)

PARTITION_TAG = "dagster/partition"


def failure_message(
    run_id: str, job_name: str, assets: Sequence[str], partition: str | None, error: str, ui_url: str | None
) -> dict[str, Any]:
    """The Slack payload: which run, which assets and partition, and the error, in a few readable lines."""
    run_ref = f"<{ui_url.rstrip('/')}/runs/{run_id}|{run_id[:8]}>" if ui_url else run_id[:8]
    lines = [
        f":red_circle: SpotLake run {run_ref} of `{job_name}` failed",
        f"*Assets:* {', '.join(assets) if assets else '(none recorded)'}",
        f"*Partition:* {partition or '(unpartitioned)'}",
        f"*Error:* {error.strip()[:1500] or '(no message)'}",
    ]
    return {"text": "\n".join(lines)}


class SlackWebhook(dg.ConfigurableResource):  # type: ignore[type-arg]
    """An incoming-webhook URL (a secret: give it as an EnvVar). Without one, alerts go to the log only."""

    url: str | None = None
    ui_url: str | None = None
    timeout_s: float = 10.0

    def post(self, payload: dict[str, Any]) -> bool:
        if not self.url:
            log.warning("no Slack webhook configured; alert: %s", payload["text"])
            return False
        request = urllib.request.Request(
            self.url,
            data=json.dumps(payload).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                ok: bool = 200 <= response.status < 300
        except OSError as exc:
            # An alert that cannot be delivered must not fail the sensor that reports failures.
            log.error("Slack webhook post failed (%s); alert: %s", type(exc).__name__, payload["text"])
            return False
        return ok


def _root_message(error: Any) -> str:
    """Dagster wraps the user's exception; its message is at the end of the cause chain."""
    while error.cause is not None:
        error = error.cause
    return str(error.message).strip()


@dg.run_failure_sensor(
    name="run_failure_alert",
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Posts every failed run (run, assets, partition, error) to Slack, or logs it.",
)
def run_failure_alert(context: dg.RunFailureSensorContext, slack: SlackWebhook) -> None:
    run = context.dagster_run
    failures = [
        e for e in context.get_step_failure_events() if e.step_failure_data and e.step_failure_data.error
    ]
    errors = [f"{e.step_key}: {_root_message(e.step_failure_data.error)}" for e in failures]
    # An asset step's key is its asset key joined by "__"; the failed ones matter more than the selection.
    assets = sorted(
        {str(e.step_key).replace("__", "/") for e in failures}
        if failures
        else {k.to_user_string() for k in (run.asset_selection or ())}
    )
    message = failure_message(
        run.run_id,
        run.job_name,
        assets,
        run.tags.get(PARTITION_TAG),
        "\n".join(errors) or (context.failure_event.message or ""),
        slack.ui_url,
    )
    slack.post(message)


def slack_resource(environ: Mapping[str, str]) -> SlackWebhook:
    """The webhook as an EnvVar when set (its value never lands in config shown by the UI), else none. The
    variables are parsed by the one resolver (`spotlake_assets.settings.load_settings`)."""
    settings = load_settings(environ)
    if settings.slack_webhook_set:
        return SlackWebhook(url=dg.EnvVar("SPOTLAKE_SLACK_WEBHOOK_URL"), ui_url=settings.ui_url)
    return SlackWebhook(ui_url=settings.ui_url)
