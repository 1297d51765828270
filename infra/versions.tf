terraform {
  # 1.11: write-only arguments and ephemeral resources keep the database password out of the state.
  required_version = ">= 1.11"

  # Partial configuration: scripts/deploy_infra.sh passes the bucket, key and region (S3-native locking).
  backend "s3" {}

  required_providers {
    aws = {
      source = "hashicorp/aws"
      # 5.100 is the provider the offline checks run (make test: validate + mock-provider plan). Not 6.x:
      # it renames arguments used here (aws_batch_compute_environment.compute_environment_name_prefix ->
      # name_prefix), so one configuration cannot satisfy both majors. Move to 6.x in one change, with the
      # checks run against the new mirror.
      version = ">= 5.100, < 6.0"
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

  # One region setting: every service defaults to var.region; Timestream LiveAnalytics (not offered in every
  # region) and SpotLake's existing AzureAuth table may live elsewhere. The same values go to the code
  # (environment below) and to the IAM resource ARNs (iam.tf), so the two cannot disagree.
  timestream_region = coalesce(var.timestream_region, var.region)
  azure_auth_region = coalesce(var.azure_auth_region, var.region)

  lake_bucket_arn = "arn:${local.partition}:s3:::${var.lake_bucket_name}"
  # A name, not a reference to aws_batch_job_definition.run_worker: the job definition's own environment
  # carries it, and a reference would make the definition depend on itself (a cycle plan refuses).
  run_worker_job_definition_name = "${local.name}-run-worker"
  # Names the instance config (infra/dagster.yaml) reads with {env: NAME}, shared by every Dagster process.
  dagster_environment = [
    { name = "SPOTLAKE_ENV", value = "prod" },
    { name = "SPOTLAKE_BUCKET", value = var.lake_bucket_name },
    { name = "SPOTLAKE_TIMESTREAM_DATABASE", value = var.timestream_database_name },
    { name = "SPOTLAKE_TIMESTREAM_REGION", value = local.timestream_region },
    { name = "SPOTLAKE_CREDENTIALS_SECRET_ID", value = var.sps_credentials_secret_name },
    { name = "SPOTLAKE_AZURE_AUTH_TABLE", value = var.azure_auth_table_name },
    { name = "SPOTLAKE_AZURE_AUTH_REGION", value = local.azure_auth_region },
    # Both names: boto3 reads AWS_DEFAULT_REGION, the instance config and other SDKs read AWS_REGION.
    { name = "AWS_REGION", value = var.region },
    { name = "AWS_DEFAULT_REGION", value = var.region },
    { name = "DAGSTER_PG_HOST", value = aws_db_instance.dagster.address },
    { name = "DAGSTER_PG_USERNAME", value = aws_db_instance.dagster.username },
    { name = "DAGSTER_PG_DB", value = aws_db_instance.dagster.db_name },
    { name = "SPOTLAKE_BATCH_JOB_QUEUE", value = aws_batch_job_queue.runs.name },
    # By name: the launcher resolves the revision that holds the run's image (see DAGSTER_CONTAINER_IMAGE).
    { name = "SPOTLAKE_BATCH_JOB_DEFINITION", value = local.run_worker_job_definition_name },
    { name = "SPOTLAKE_BATCH_LOG_GROUP", value = aws_cloudwatch_log_group.run_worker.name },
    # The large job class (batch_large.tf): the launcher's `job_classes.large` in infra/dagster.yaml.
    { name = "SPOTLAKE_BATCH_LARGE_JOB_QUEUE", value = aws_batch_job_queue.large.name },
    { name = "SPOTLAKE_BATCH_LARGE_JOB_DEFINITION", value = local.large_job_definition_name },
    # The code server records this image on every run it plans (`dagster api grpc` reads the variable);
    # BatchRunLauncher submits the job-definition revision holding that image, so a deploy never makes a
    # queued run execute newer code than it was planned with.
    { name = "DAGSTER_CONTAINER_IMAGE", value = var.image_uri },
    { name = "DAGSTER_CODE_SERVER_HOST", value = "${local.code_server_name}.${aws_service_discovery_private_dns_namespace.dagster.name}" },
  ]
  dagster_secrets = concat(
    [{ name = "DAGSTER_PG_PASSWORD", valueFrom = aws_secretsmanager_secret.db_password.arn }],
    var.slack_webhook_secret_arn == "" ? [] : [{ name = "SPOTLAKE_SLACK_WEBHOOK_URL", valueFrom = var.slack_webhook_secret_arn }],
  )
  code_server_name = "code"
}
