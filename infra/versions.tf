terraform {
  # 1.11: write-only arguments keep the database password out of the state.
  required_version = ">= 1.11"

  # Partial configuration: scripts/deploy_infra.sh passes the bucket, key and region (S3-native locking).
  backend "s3" {}

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 6.0, < 7.0"
    }
    random = {
      source  = "hashicorp/random"
      version = ">= 3.7, < 4.0"
    }
  }
}

provider "aws" {
  region = var.region

  default_tags {
    tags = merge({ project = "spotlake-assets", managed-by = "terraform" }, var.tags)
  }
}

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition
  name       = var.name_prefix

  lake_bucket_arn = "arn:${local.partition}:s3:::${var.lake_bucket_name}"
  # Names the instance config (infra/dagster.yaml) reads with {env: NAME}, shared by every Dagster process.
  dagster_environment = [
    { name = "SPOTLAKE_ENV", value = "prod" },
    { name = "SPOTLAKE_BUCKET", value = var.lake_bucket_name },
    { name = "SPOTLAKE_TIMESTREAM_DATABASE", value = var.timestream_database_name },
    { name = "SPOTLAKE_CREDENTIALS_SECRET_ID", value = var.sps_credentials_secret_name },
    { name = "SPOTLAKE_AZURE_AUTH_TABLE", value = var.azure_auth_table_name },
    { name = "AWS_REGION", value = var.region },
    { name = "DAGSTER_PG_HOST", value = aws_db_instance.dagster.address },
    { name = "DAGSTER_PG_USERNAME", value = aws_db_instance.dagster.username },
    { name = "DAGSTER_PG_DB", value = aws_db_instance.dagster.db_name },
    { name = "SPOTLAKE_BATCH_JOB_QUEUE", value = aws_batch_job_queue.runs.name },
    # By name: Batch uses the newest ACTIVE revision, so a new image needs no instance change.
    { name = "SPOTLAKE_BATCH_JOB_DEFINITION", value = aws_batch_job_definition.run_worker.name },
    { name = "SPOTLAKE_BATCH_LOG_GROUP", value = aws_cloudwatch_log_group.run_worker.name },
    { name = "DAGSTER_CODE_SERVER_HOST", value = "${local.code_server_name}.${aws_service_discovery_private_dns_namespace.dagster.name}" },
  ]
  dagster_secrets = concat(
    [{ name = "DAGSTER_PG_PASSWORD", valueFrom = aws_secretsmanager_secret.db_password.arn }],
    var.slack_webhook_secret_arn == "" ? [] : [{ name = "SPOTLAKE_SLACK_WEBHOOK_URL", valueFrom = var.slack_webhook_secret_arn }],
  )
  code_server_name = "code"
}
