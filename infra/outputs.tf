output "job_queue" {
  description = "Batch job queue of the run workers (SPOTLAKE_BATCH_JOB_QUEUE)."
  value       = aws_batch_job_queue.runs.name
}

output "job_definition" {
  description = "Run-worker job definition (SPOTLAKE_BATCH_JOB_DEFINITION)."
  value       = aws_batch_job_definition.run_worker.arn
}

output "large_job_queue" {
  description = "Batch job queue of the large job class (SPOTLAKE_BATCH_LARGE_JOB_QUEUE): the history imports."
  value       = aws_batch_job_queue.large.name
}

output "large_job_definition" {
  description = "Large job definition (SPOTLAKE_BATCH_LARGE_JOB_DEFINITION): more vCPU and memory, a scratch volume."
  value       = aws_batch_job_definition.large_worker.arn
}

output "compute_environment" {
  description = "Batch compute environment."
  value       = aws_batch_compute_environment.spot.arn
}

output "ecs_cluster" {
  description = "ECS cluster of the control plane."
  value       = aws_ecs_cluster.dagster.name
}

output "webserver_service" {
  description = "ECS service of the webserver (reach it with SSM port forwarding, README.md)."
  value       = aws_ecs_service.dagster["webserver"].name
}

output "database_endpoint" {
  description = "Private endpoint of the Dagster database."
  value       = aws_db_instance.dagster.address
}

output "database_password_secret" {
  description = "Secrets Manager secret with the database password."
  value       = aws_secretsmanager_secret.db_password.arn
}

output "lake_bucket" {
  description = "The lake bucket (SPOTLAKE_BUCKET); managed here when manage_lake_bucket."
  value       = var.lake_bucket_name
}

output "silent_ticks_alarm" {
  description = "CloudWatch alarm: no run worker has logged for silent_tick_alarm_minutes (posted to Slack with a webhook secret)."
  value       = aws_cloudwatch_metric_alarm.silent_ticks.alarm_name
}

output "alert_rules" {
  description = "EventBridge rules posting to Slack (empty without slack_webhook_secret_arn)."
  value       = [for rule in aws_cloudwatch_event_rule.alerts : rule.name]
}

output "vpc_endpoints" {
  description = "VPC endpoints created here, by service."
  value = merge(
    { for service, endpoint in aws_vpc_endpoint.interface : service => endpoint.id },
    { for endpoint in aws_vpc_endpoint.s3 : "s3" => endpoint.id },
  )
}
