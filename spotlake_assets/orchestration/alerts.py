"""Run-failure alerts to Slack through `dagster-slack`'s client (slack_sdk), the log otherwise.

Two ways to reach Slack, both secrets given as `dg.EnvVar` so their values never land in config the UI
shows: a bot token with its channel (`SPOTLAKE_SLACK_BOT_TOKEN`, `SPOTLAKE_SLACK_CHANNEL`: `chat.postMessage`
with `dagster_slack.SlackResource`'s `WebClient`), or an incoming webhook (`SPOTLAKE_SLACK_WEBHOOK_URL`, the
one the infrastructure's EventBridge alerts use too: slack_sdk's `WebhookClient`). The token wins when both
are set. An alert that cannot be delivered is logged, never raised: the sensor reporting failures must not
fail itself.
"""

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import dagster as dg

from spotlake_assets.settings import load_settings

log = logging.getLogger(__name__)

PARTITION_TAG = "dagster/partition"
SLACK_API_URL = "https://slack.com/api/"


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


class SlackAlerts(dg.ConfigurableResource):  # type: ignore[type-arg]
    """Where alerts go: a bot token and channel, or an incoming-webhook URL (secrets: give them as EnvVar).
    Without either, alerts go to the log only."""

    token: str | None = None
    channel: str | None = None
    webhook_url: str | None = None
    ui_url: str | None = None
    # Slack's Web API; tests point it at a loopback server.
    api_url: str = SLACK_API_URL
    timeout_s: float = 10.0

    @property
    def configured(self) -> bool:
        return bool(self.token and self.channel) or bool(self.webhook_url)

    def post(self, payload: dict[str, Any]) -> bool:
        """Whether Slack accepted the alert."""
        # Imported here, not at module level: loading the definitions must not pay for it.
        from dagster_slack import SlackResource
        from slack_sdk.errors import SlackClientError
        from slack_sdk.webhook import WebhookClient

        text = payload["text"]
        try:
            if self.token and self.channel:
                client = SlackResource(token=self.token).get_client()
                client.base_url, client.timeout = self.api_url, int(self.timeout_s)
                # Raises SlackApiError when Slack answers ok=false (bad token, unknown channel).
                client.chat_postMessage(channel=self.channel, text=text)
                return True
            if self.webhook_url:
                response = WebhookClient(self.webhook_url, timeout=int(self.timeout_s)).send(text=text)
                if 200 <= response.status_code < 300:
                    return True
                log.error("Slack webhook answered HTTP %s; alert: %s", response.status_code, text)
                return False
        except (SlackClientError, OSError) as exc:
            # The exception's text may hold the URL (a secret): only its type is logged.
            log.error("Slack post failed (%s); alert: %s", type(exc).__name__, text)
            return False
        log.warning("no Slack token or webhook configured; alert: %s", text)
        return False


def _root_message(error: Any) -> str:
    """Dagster wraps the user's exception; its message is at the end of the cause chain."""
    while error.cause is not None:
        error = error.cause
    return str(error.message).strip()


def build_run_failure_alert(running: bool) -> dg.SensorDefinition:
    """The alert sensor; ``running``: on by default (test/prod). Locally it starts STOPPED: a laptop has
    no one to page, and the UI shows failed runs anyway."""

    @dg.run_failure_sensor(
        name="run_failure_alert",
        default_status=dg.DefaultSensorStatus.RUNNING if running else dg.DefaultSensorStatus.STOPPED,
        description=(
            "Posts every failed run (run link, failed assets, partition, root error) to Slack through "
            "dagster-slack (bot token + channel, or the incoming webhook); logs it when neither is set."
        ),
    )
    def run_failure_alert(context: dg.RunFailureSensorContext, slack: SlackAlerts) -> None:
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

    return run_failure_alert


def slack_resource(environ: Mapping[str, str]) -> SlackAlerts:
    """The token or webhook as an EnvVar when set (its value never lands in config shown by the UI), else
    none. The variables are parsed by the one resolver (`spotlake_assets.settings.load_settings`)."""
    settings = load_settings(environ)
    secrets: dict[str, Any] = {}
    if settings.slack_bot_token_set:
        secrets |= {"token": dg.EnvVar("SPOTLAKE_SLACK_BOT_TOKEN"), "channel": settings.slack_channel}
    if settings.slack_webhook_set:
        secrets["webhook_url"] = dg.EnvVar("SPOTLAKE_SLACK_WEBHOOK_URL")
    return SlackAlerts(ui_url=settings.ui_url, **secrets)
