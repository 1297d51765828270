# Roles: the instance role of Batch's EC2 hosts (Batch itself uses its service-linked role, batch.tf), one ECS task execution role (image
# pull, logs, injected secrets), the run workers' job role and the control plane's task role. Every statement
# names its resources; "*" appears only for actions AWS does not scope to a resource (commented where used).

locals {
  lake_read_objects   = [for prefix in var.lake_read_prefixes : "${local.lake_bucket_arn}/${prefix}*"]
  lake_write_objects  = [for prefix in var.lake_write_prefixes : "${local.lake_bucket_arn}/${prefix}*"]
  lake_delete_objects = [for prefix in var.lake_delete_prefixes : "${local.lake_bucket_arn}/${prefix}*"]
  timestream_tables = [
    for table in var.timestream_table_names :
    "arn:${local.partition}:timestream:${local.timestream_region}:${local.account_id}:database/${var.timestream_database_name}/table/${table}"
  ]
  sps_secret_arn = "arn:${local.partition}:secretsmanager:${var.region}:${local.account_id}:secret:${var.sps_credentials_secret_name}-??????"
  batch_job_arns = "arn:${local.partition}:batch:${var.region}:${local.account_id}:job/*"
}

data "aws_iam_policy_document" "assume" {
  # events: EventBridge posting alerts to Slack (alerts.tf).
  for_each = toset(["ec2", "ecs-tasks", "events"])

  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["${each.key}.amazonaws.com"]
    }

    # Confused-deputy guard where the service passes the source account (EC2 instance profiles do not).
    dynamic "condition" {
      for_each = each.key == "ec2" ? [] : [local.account_id]
      content {
        test     = "StringEquals"
        variable = "aws:SourceAccount"
        values   = [condition.value]
      }
    }
  }
}

# --- Batch instance role (Batch itself uses its service-linked role) -----------------------------------------

resource "aws_iam_role" "batch_instance" {
  name               = "${local.name}-batch-instance"
  assume_role_policy = data.aws_iam_policy_document.assume["ec2"].json
}

resource "aws_iam_role_policy_attachment" "batch_instance" {
  role       = aws_iam_role.batch_instance.name
  policy_arn = "arn:${local.partition}:iam::aws:policy/service-role/AmazonEC2ContainerServiceforEC2Role"
}

resource "aws_iam_instance_profile" "batch_instance" {
  name = "${local.name}-batch-instance"
  role = aws_iam_role.batch_instance.name
}

# --- ECS task execution role (ECS Fargate tasks and Batch jobs alike) -------------------------------------

resource "aws_iam_role" "task_execution" {
  name               = "${local.name}-task-execution"
  assume_role_policy = data.aws_iam_policy_document.assume["ecs-tasks"].json
}

resource "aws_iam_role_policy_attachment" "task_execution" {
  role       = aws_iam_role.task_execution.name
  policy_arn = "arn:${local.partition}:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy"
}

data "aws_iam_policy_document" "task_execution" {
  statement {
    sid       = "ReadInjectedSecrets"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = compact([aws_secretsmanager_secret.db_password.arn, var.slack_webhook_secret_arn])
  }

  statement {
    sid       = "DecryptInjectedSecrets"
    actions   = ["kms:Decrypt"]
    resources = [aws_kms_key.spotlake.arn]
  }
}

resource "aws_iam_role_policy" "task_execution" {
  name   = "inject-secrets"
  role   = aws_iam_role.task_execution.id
  policy = data.aws_iam_policy_document.task_execution.json
}

# --- Run workers: least privilege for the collectors and sinks ----------------------------------------------

data "aws_iam_policy_document" "run_worker" {
  statement {
    # Unconditional on purpose: S3 answers a read of a missing key with 404 (NoSuchKey) only to a caller
    # that may list the bucket, and 403 otherwise; the code treats "absent" (no checkpoint yet, first
    # window) as normal and would fail on a 403. Listing reveals key names only.
    sid       = "ListLake"
    actions   = ["s3:ListBucket"]
    resources = [local.lake_bucket_arn]
  }

  statement {
    # GetObject also covers HeadObject and the source side of CopyObject.
    sid       = "ReadLake"
    actions   = ["s3:GetObject"]
    resources = local.lake_read_objects
  }

  statement {
    # Conditional writes (If-None-Match / If-Match) are plain PutObject calls, as is the target side of
    # CopyObject (damaged state moved to quarantine/).
    sid       = "WriteLake"
    actions   = ["s3:PutObject"]
    resources = local.lake_write_objects
  }

  statement {
    # Moving damaged state aside is copy + delete.
    sid       = "DeleteDamagedState"
    actions   = ["s3:DeleteObject"]
    resources = local.lake_delete_objects
  }

  dynamic "statement" {
    # The history import (legacy/ assets) reads SpotLake's published snapshots: list a month's prefix, get
    # its files (or its zip). Read only; SpotLake's bucket is public, but another account's bucket still
    # needs the grant on the caller's side.
    for_each = var.legacy_source_bucket == "" ? [] : ["ListLegacySource", "ReadLegacySource"]
    content {
      sid       = statement.value
      actions   = statement.value == "ListLegacySource" ? ["s3:ListBucket"] : ["s3:GetObject"]
      resources = statement.value == "ListLegacySource" ? ["arn:${local.partition}:s3:::${var.legacy_source_bucket}"] : ["arn:${local.partition}:s3:::${var.legacy_source_bucket}/*"]
    }
  }

  statement {
    sid       = "TimestreamWriteNamedTables"
    actions   = ["timestream:WriteRecords"]
    resources = local.timestream_tables
  }

  statement {
    # Endpoint discovery and these EC2/Pricing reads have no resource-level permissions.
    # ec2:GetSpotPlacementScores is absent on purpose: SPS calls are signed with the pool's credentials
    # (other accounts), never with this role.
    sid = "UnscopedReads"
    actions = [
      "timestream:DescribeEndpoints",
      "ec2:DescribeRegions",
      "ec2:DescribeAvailabilityZones",
      "ec2:DescribeInstanceTypeOfferings",
      "ec2:DescribeSpotPriceHistory",
      "pricing:GetProducts",
      # Single-account mode (aws_single/): architectures, and the launch-time collector's polling and sweep.
      "ec2:DescribeInstanceTypes",
      "ec2:DescribeInstances",
      "ec2:DescribeInstanceStatus",
      "ec2:DescribeSpotInstanceRequests",
    ]
    resources = ["*"]
  }

  dynamic "statement" {
    # Single-account launch-time collector, only with var.launch_time_measurement (it starts paid instances):
    # Spot requests and tags only when the request carries its tag key, so everything it creates is
    # findable by the sweep; its cleanup only on tagged requests and instances (it tags instances before
    # terminating them).
    for_each = var.launch_time_measurement ? {
      LaunchTimeRequests = ["ec2:RequestSpotInstances", "ec2:CreateTags"]
      LaunchTimeCleanup  = ["ec2:CancelSpotInstanceRequests", "ec2:TerminateInstances"]
    } : {}
    content {
      sid       = statement.key
      actions   = statement.value
      resources = ["*"]
      condition {
        test     = "Null"
        variable = statement.key == "LaunchTimeRequests" ? "aws:RequestTag/spotlake:launch-time" : "aws:ResourceTag/spotlake:launch-time"
        values   = ["false"]
      }
    }
  }

  statement {
    # The current Amazon Linux 2023 AMI ids (aws/amis): AWS's public parameters, in every region.
    sid       = "PublicAmiParameters"
    actions   = ["ssm:GetParameter"]
    resources = ["arn:${local.partition}:ssm:*::parameter/aws/service/ami-amazon-linux-latest/*"]
  }

  statement {
    # The single-account daily report by e-mail through SES (optional; any verified identity of the account).
    sid       = "ReportEmail"
    actions   = ["ses:SendRawEmail"]
    resources = ["arn:${local.partition}:ses:*:${local.account_id}:identity/*"]
  }

  statement {
    sid       = "AzureAuthItem"
    actions   = ["dynamodb:GetItem"]
    resources = ["arn:${local.partition}:dynamodb:${local.azure_auth_region}:${local.account_id}:table/${var.azure_auth_table_name}"]
  }

  dynamic "statement" {
    for_each = var.sps_credentials_secret_name == "" ? [] : [local.sps_secret_arn]
    content {
      sid       = "SpsCredentialsSecret"
      actions   = ["secretsmanager:GetSecretValue"]
      resources = [statement.value]
    }
  }

  dynamic "statement" {
    for_each = var.sps_credentials_secret_kms_key_arn == "" ? [] : [var.sps_credentials_secret_kms_key_arn]
    content {
      sid       = "DecryptSpsCredentials"
      actions   = ["kms:Decrypt"]
      resources = [statement.value]
      condition {
        test     = "StringEquals"
        variable = "kms:ViaService"
        values   = ["secretsmanager.${var.region}.amazonaws.com"]
      }
    }
  }
}

resource "aws_iam_role" "run_worker" {
  name               = "${local.name}-run-worker"
  assume_role_policy = data.aws_iam_policy_document.assume["ecs-tasks"].json
}

resource "aws_iam_role_policy" "run_worker" {
  name   = "spotlake-run-worker"
  role   = aws_iam_role.run_worker.id
  policy = data.aws_iam_policy_document.run_worker.json
}

# --- Control plane: webserver, daemon and code server -------------------------------------------------------

data "aws_iam_policy_document" "control_plane" {
  statement {
    # BatchRunLauncher: submit to the queue and job definition of each job class (default and large),
    # tagging the job.
    sid     = "LaunchRuns"
    actions = ["batch:SubmitJob", "batch:TagResource"]
    resources = [
      aws_batch_job_queue.runs.arn,
      "arn:${local.partition}:batch:${var.region}:${local.account_id}:job-definition/${local.run_worker_job_definition_name}:*",
      aws_batch_job_queue.large.arn,
      "arn:${local.partition}:batch:${var.region}:${local.account_id}:job-definition/${local.large_job_definition_name}:*",
      local.batch_job_arns,
    ]
  }

  statement {
    # terminate() and the orphaned-job sensor; only jobs this deployment tagged (dagster.yaml job_tags).
    sid       = "StopRuns"
    actions   = ["batch:TerminateJob"]
    resources = [local.batch_job_arns]
    condition {
      test     = "StringEquals"
      variable = "aws:ResourceTag/project"
      values   = ["spotlake-assets"]
    }
  }

  statement {
    # check_run_worker_health and the image -> revision lookup at launch: neither DescribeJobs nor
    # DescribeJobDefinitions has resource-level permissions.
    sid       = "WatchRuns"
    actions   = ["batch:DescribeJobs", "batch:DescribeJobDefinitions"]
    resources = ["*"]
  }

  statement {
    # The log tail a failed run's event carries (BatchRunLauncher): run-worker streams only.
    sid       = "TailRunWorkerLogs"
    actions   = ["logs:GetLogEvents"]
    resources = ["${aws_cloudwatch_log_group.run_worker.arn}:log-stream:*"]
  }

  statement {
    sid       = "ComputeLogs"
    actions   = ["s3:GetObject", "s3:PutObject"]
    resources = ["${local.lake_bucket_arn}/dagster/compute-logs/*"]
  }

  statement {
    # The lake sensor lists new raw objects; the UI lists compute logs.
    sid       = "ListLake"
    actions   = ["s3:ListBucket"]
    resources = [local.lake_bucket_arn]
    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["rawdata/", "rawdata/*", "state/", "state/*", "dagster/compute-logs/", "dagster/compute-logs/*"]
    }
  }

  statement {
    sid       = "SensorsReadLake"
    actions   = ["s3:GetObject"]
    resources = ["${local.lake_bucket_arn}/rawdata/*", "${local.lake_bucket_arn}/state/*"]
  }

  statement {
    # ECS Exec, the operator's way to the webserver (SSM port forwarding): these actions take no resource.
    sid = "EcsExecChannel"
    actions = [
      "ssmmessages:CreateControlChannel",
      "ssmmessages:CreateDataChannel",
      "ssmmessages:OpenControlChannel",
      "ssmmessages:OpenDataChannel",
    ]
    resources = ["*"]
  }

  statement {
    sid       = "EcsExecAudit"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"]
    resources = ["${aws_cloudwatch_log_group.ecs_exec.arn}:*"]
  }

  statement {
    sid       = "EcsExecEncryption"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [aws_kms_key.spotlake.arn]
  }
}

resource "aws_iam_role" "control_plane" {
  name               = "${local.name}-control-plane"
  assume_role_policy = data.aws_iam_policy_document.assume["ecs-tasks"].json
}

resource "aws_iam_role_policy" "control_plane" {
  name   = "dagster-control-plane"
  role   = aws_iam_role.control_plane.id
  policy = data.aws_iam_policy_document.control_plane.json
}
