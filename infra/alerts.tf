# Operations outside Dagster: alerts that still fire when the daemon (whose sensors send the run-failure
# alerts) is down. Two signals, one path to the same Slack webhook the code uses:
#
#   Batch job of our queue ends FAILED ─────────────────┐  EventBridge rules (default bus)
#   alarm "no run-worker log line for 30 min" changes ──┴─▶ input transformer {"text": ...}
#                                                           ─▶ API destination (HTTPS POST) ─▶ Slack webhook
#
# No Lambda, no SNS (an SNS https subscription posts SNS's own envelope, which Slack refuses), no AWS Chatbot
# (a workspace authorisation in the console) and no second provider. Without slack_webhook_secret_arn the
# alarm still exists (console, API) and nothing is posted.

locals {
  slack_alerts = var.slack_webhook_secret_arn != ""
  # A tick launches run workers every 10 minutes; each writes log lines to this group.
  silent_tick_periods = var.silent_tick_alarm_minutes / 10
}

# --- The silent-daemon alarm --------------------------------------------------------------------------------

resource "aws_cloudwatch_metric_alarm" "silent_ticks" {
  alarm_name        = "${local.name}-no-run-worker-for-${var.silent_tick_alarm_minutes}m"
  alarm_description = "No Dagster run worker wrote a log line for ${var.silent_tick_alarm_minutes} minutes: the daemon, the code server or Batch capacity has stopped the 10-minute ticks. Check the ${local.name}-daemon ECS service and the ${local.name}-runs job queue."
  # End to end: a run-worker log line needs the daemon's schedule/sensor tick, the code server, the run
  # queue, SubmitJob and Batch placing the job. The metric is emitted only when lines arrive, so a dead
  # daemon shows as missing data: treated as breaching.
  namespace           = "AWS/Logs"
  metric_name         = "IncomingLogEvents"
  dimensions          = { LogGroupName = aws_cloudwatch_log_group.run_worker.name }
  statistic           = "Sum"
  period              = 600
  evaluation_periods  = local.silent_tick_periods
  datapoints_to_alarm = local.silent_tick_periods
  comparison_operator = "LessThanThreshold"
  threshold           = 1
  treat_missing_data  = "breaching"
  # No alarm_actions: CloudWatch sends every alarm state change to EventBridge, whose rule below posts it.
}

# --- The Slack path -----------------------------------------------------------------------------------------

data "aws_secretsmanager_secret_version" "slack_webhook" {
  # The secret the control plane already injects as SPOTLAKE_SLACK_WEBHOOK_URL: its value is the URL. An API
  # destination holds its endpoint in plain configuration, so the URL is in the Terraform state (sensitive
  # in plans; the state bucket is encrypted and private). Rotating the webhook: update the secret, re-apply.
  count     = local.slack_alerts ? 1 : 0
  secret_id = var.slack_webhook_secret_arn
}

resource "aws_cloudwatch_event_connection" "slack" {
  count       = local.slack_alerts ? 1 : 0
  name        = "${local.name}-slack"
  description = "Slack incoming webhook (its token is in the URL; this header is a placeholder EventBridge requires)"
  # A connection needs an authorization; Slack's incoming webhooks take none and ignore an extra header.
  authorization_type = "API_KEY"

  auth_parameters {
    api_key {
      key   = "X-Spotlake-Source"
      value = "eventbridge"
    }
  }
}

resource "aws_cloudwatch_event_api_destination" "slack" {
  count                            = local.slack_alerts ? 1 : 0
  name                             = "${local.name}-slack"
  description                      = "POST {\"text\": ...} to the Slack webhook"
  connection_arn                   = aws_cloudwatch_event_connection.slack[0].arn
  invocation_endpoint              = data.aws_secretsmanager_secret_version.slack_webhook[0].secret_string
  http_method                      = "POST"
  invocation_rate_limit_per_second = 1

  lifecycle {
    precondition {
      condition     = startswith(data.aws_secretsmanager_secret_version.slack_webhook[0].secret_string, "https://")
      error_message = "slack_webhook_secret_arn must hold the webhook URL itself (https://hooks.slack.com/...), as the code reads it."
    }
  }
}

data "aws_iam_policy_document" "alerts" {
  count = local.slack_alerts ? 1 : 0

  statement {
    sid       = "PostToSlack"
    actions   = ["events:InvokeApiDestination"]
    resources = [aws_cloudwatch_event_api_destination.slack[0].arn]
  }
}

resource "aws_iam_role" "alerts" {
  count              = local.slack_alerts ? 1 : 0
  name               = "${local.name}-alerts"
  assume_role_policy = data.aws_iam_policy_document.assume["events"].json
}

resource "aws_iam_role_policy" "alerts" {
  count  = local.slack_alerts ? 1 : 0
  name   = "invoke-slack-destination"
  role   = aws_iam_role.alerts[0].id
  policy = data.aws_iam_policy_document.alerts[0].json
}

locals {
  # Placeholders (<name>) stay inside JSON strings: the template is valid JSON, and EventBridge inserts the
  # event's values as string content. Written as literals: jsonencode would escape "<" and ">".
  alert_rules = {
    batch-job-failed = {
      description = "A run-worker job of ${aws_batch_job_queue.runs.name} ended FAILED (also when the Dagster daemon is down)"
      pattern = {
        source        = ["aws.batch"]
        "detail-type" = ["Batch Job State Change"]
        detail = {
          status   = ["FAILED"]
          jobQueue = [aws_batch_job_queue.runs.arn]
        }
      }
      input_paths = {
        job    = "$.detail.jobName"
        id     = "$.detail.jobId"
        reason = "$.detail.statusReason"
        region = "$.region"
      }
      input_template = "{\"text\": \":red_circle: AWS Batch job <job> FAILED: <reason> (https://<region>.console.aws.amazon.com/batch/home?region=<region>#jobs/detail/<id>)\"}"
    }
    silent-ticks = {
      description = "The no-run-worker alarm changed state"
      pattern = {
        source        = ["aws.cloudwatch"]
        "detail-type" = ["CloudWatch Alarm State Change"]
        resources     = [aws_cloudwatch_metric_alarm.silent_ticks.arn]
        # The alarm, and its recovery; not the first INSUFFICIENT_DATA -> OK after a deploy.
        detail = {
          "$or" = [
            { state = { value = ["ALARM"] } },
            { state = { value = ["OK"] }, previousState = { value = ["ALARM"] } },
          ]
        }
      }
      input_paths = {
        alarm  = "$.detail.alarmName"
        state  = "$.detail.state.value"
        reason = "$.detail.state.reason"
      }
      input_template = "{\"text\": \":rotating_light: <alarm> is <state>: <reason> (no Dagster tick has launched a run worker; ALARM = the daemon or the run launch path is down, OK = runs again)\"}"
    }
  }
}

resource "aws_cloudwatch_event_rule" "alerts" {
  for_each      = { for name, rule in local.alert_rules : name => rule if local.slack_alerts }
  name          = "${local.name}-${each.key}"
  description   = each.value.description
  event_pattern = jsonencode(each.value.pattern)
}

resource "aws_cloudwatch_event_target" "alerts" {
  for_each  = aws_cloudwatch_event_rule.alerts
  rule      = each.value.name
  target_id = "slack"
  arn       = aws_cloudwatch_event_api_destination.slack[0].arn
  role_arn  = aws_iam_role.alerts[0].arn

  input_transformer {
    input_paths    = local.alert_rules[each.key].input_paths
    input_template = local.alert_rules[each.key].input_template
  }

  # Slack or the network failing briefly: EventBridge retries with back-off for up to an hour.
  retry_policy {
    maximum_event_age_in_seconds = 3600
    maximum_retry_attempts       = 20
  }
}
