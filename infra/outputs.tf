output "job_queue" {
  description = "Batch job queue of the run workers (SPOTLAKE_BATCH_JOB_QUEUE)."
  value       = aws_batch_job_queue.runs.name
}

output "job_definition" {
  description = "Run-worker job definition (SPOTLAKE_BATCH_JOB_DEFINITION)."
  value       = aws_batch_job_definition.run_worker.arn
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
