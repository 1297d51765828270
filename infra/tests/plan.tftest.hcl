# The whole stack planned offline with a mocked AWS provider and production-like variables
# (spotlake_assets_tests/infra/test_terraform_plan.py runs it from `make test`). A mock provider answers
# every data source and computed attribute with the values below, so these runs check the configuration:
# what Terraform would ask AWS for, not what AWS would answer.

mock_provider "aws" {
  # Mocked computed values (ARNs, ids) are known at plan time, as AWS's would be after apply, so data
  # sources that depend on them (the policy documents) are read and checked in a plan.
  override_during = plan

  mock_data "aws_caller_identity" {
    defaults = {
      account_id = "123456789012"
      arn        = "arn:aws:iam::123456789012:role/deployer"
      user_id    = "AROAEXAMPLEDEPLOYER"
    }
  }

  mock_data "aws_partition" {
    defaults = {
      partition          = "aws"
      dns_suffix         = "amazonaws.com"
      reverse_dns_prefix = "com.amazonaws"
    }
  }

  mock_data "aws_iam_policy_document" {
    # The provider renders the real document from the statements; the mock cannot, so a valid one stands
    # in (the runs below assert on the statements themselves).
    defaults = {
      json = "{\"Version\":\"2012-10-17\",\"Statement\":[{\"Effect\":\"Allow\",\"Action\":\"sts:AssumeRole\",\"Principal\":{\"Service\":\"ecs-tasks.amazonaws.com\"}}]}"
    }
  }

  mock_resource "aws_kms_key" {
    defaults = {
      arn    = "arn:aws:kms:us-west-2:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
      key_id = "1234abcd-12ab-34cd-56ef-1234567890ab"
    }
  }

  mock_resource "aws_cloudwatch_log_group" {
    defaults = {
      arn = "arn:aws:logs:us-west-2:123456789012:log-group:/spotlake/batch/run-worker"
    }
  }

  mock_resource "aws_secretsmanager_secret" {
    defaults = {
      arn = "arn:aws:secretsmanager:us-west-2:123456789012:secret:spotlake/dagster/db-password-AbCdEf"
    }
  }

  mock_resource "aws_iam_role" {
    defaults = {
      arn = "arn:aws:iam::123456789012:role/spotlake-role"
    }
  }

  mock_resource "aws_iam_instance_profile" {
    defaults = {
      arn = "arn:aws:iam::123456789012:instance-profile/spotlake-batch-instance"
    }
  }

  mock_resource "aws_batch_compute_environment" {
    defaults = {
      arn = "arn:aws:batch:us-west-2:123456789012:compute-environment/spotlake-runs-20260101"
    }
  }

  mock_resource "aws_batch_job_queue" {
    defaults = {
      arn = "arn:aws:batch:us-west-2:123456789012:job-queue/spotlake-runs"
    }
  }

  mock_resource "aws_db_instance" {
    defaults = {
      address = "spotlake-dagster.abcdefghijkl.us-west-2.rds.amazonaws.com"
      arn     = "arn:aws:rds:us-west-2:123456789012:db:spotlake-dagster"
    }
  }

  mock_resource "aws_launch_template" {
    defaults = {
      id             = "lt-0123456789abcdef0"
      latest_version = 1
    }
  }

  # --- operations outside Dagster (alerts.tf), endpoints (endpoints.tf), the lake (lake_bucket.tf) ---
  mock_data "aws_secretsmanager_secret_version" {
    # The secret slack_webhook_secret_arn names holds the webhook URL itself (a dummy here).
    defaults = {
      secret_string = "https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX"
    }
  }

  mock_resource "aws_cloudwatch_metric_alarm" {
    defaults = {
      arn = "arn:aws:cloudwatch:us-west-2:123456789012:alarm:spotlake-no-run-worker-for-30m"
    }
  }

  mock_resource "aws_cloudwatch_event_connection" {
    defaults = {
      arn = "arn:aws:events:us-west-2:123456789012:connection/spotlake-slack/0a1b2c3d-0000-0000-0000-000000000000"
    }
  }

  mock_resource "aws_cloudwatch_event_api_destination" {
    defaults = {
      arn = "arn:aws:events:us-west-2:123456789012:api-destination/spotlake-slack/0a1b2c3d-1111-1111-1111-111111111111"
    }
  }

  mock_data "aws_route_table" {
    defaults = {
      id = "rtb-0123456789abcdef0"
    }
  }

  mock_resource "aws_s3_bucket" {
    defaults = {
      id  = "spotlake-lake"
      arn = "arn:aws:s3:::spotlake-lake"
    }
  }
}

variables {
  region             = "us-west-2"
  vpc_id             = "vpc-0123456789abcdef0"
  private_subnet_ids = ["subnet-0123456789abcdef0", "subnet-0fedcba9876543210"]
  lake_bucket_name   = "spotlake-lake"
  image_uri          = "123456789012.dkr.ecr.us-west-2.amazonaws.com/spotlake-assets@sha256:0000000000000000000000000000000000000000000000000000000000000000"

  sps_credentials_secret_name = "spotlake/sps-credentials"
  slack_webhook_secret_arn    = "arn:aws:secretsmanager:us-west-2:123456789012:secret:spotlake/slack-AbCdEf"

  # What scripts/deploy_infra.sh passes as TF_VAR_db_password (a dummy here).
  db_password = "OfflinePlanTestOnly0000"
}

run "production_plan" {
  command = plan

  # --- Batch on Spot ---
  assert {
    condition     = aws_batch_compute_environment.spot.compute_resources[0].type == "SPOT"
    error_message = "the run workers' compute environment must be SPOT"
  }
  assert {
    condition     = aws_batch_compute_environment.spot.compute_resources[0].allocation_strategy == "SPOT_PRICE_CAPACITY_OPTIMIZED"
    error_message = "allocation strategy must be SPOT_PRICE_CAPACITY_OPTIMIZED"
  }
  assert {
    condition     = aws_batch_compute_environment.spot.compute_resources[0].min_vcpus == 0
    error_message = "the compute environment must scale to zero between runs"
  }
  assert {
    condition     = aws_batch_compute_environment.spot.compute_environment_name_prefix == "spotlake-runs-"
    error_message = "the compute environment needs a name prefix so it can be replaced before it is destroyed"
  }
  assert {
    condition     = toset(aws_batch_compute_environment.spot.compute_resources[0].instance_type) == toset(["m7g", "c7g", "r7g", "m6g", "c6g", "r6g"])
    error_message = "run workers default to arm64 on the Graviton families"
  }
  assert {
    condition     = [for o in aws_batch_job_queue.runs.compute_environment_order : o.compute_environment] == [aws_batch_compute_environment.spot.arn]
    error_message = "the queue must feed the Spot compute environment"
  }

  # --- the run-worker job definition ---
  assert {
    condition     = aws_batch_job_definition.run_worker.retry_strategy[0].attempts == 1
    error_message = "Dagster owns retries: one Batch attempt"
  }
  assert {
    condition     = aws_batch_job_definition.run_worker.timeout[0].attempt_duration_seconds == 14400
    error_message = "the run worker's attempt timeout must be set"
  }
  assert {
    condition     = aws_batch_job_definition.run_worker.deregister_on_new_revision == false
    error_message = "earlier revisions must stay ACTIVE so queued runs keep their image"
  }
  assert {
    condition = (
      { for r in jsondecode(aws_batch_job_definition.run_worker.container_properties).resourceRequirements : r.type => r.value }
      == { VCPU = "1", MEMORY = "2048" }
    )
    error_message = "job definition resources must be 1 vCPU / 2048 MiB by default"
  }
  assert {
    condition = alltrue([
      jsondecode(aws_batch_job_definition.run_worker.container_properties).readonlyRootFilesystem,
      !jsondecode(aws_batch_job_definition.run_worker.container_properties).privileged,
      jsondecode(aws_batch_job_definition.run_worker.container_properties).image == var.image_uri,
    ])
    error_message = "run workers: read-only root, unprivileged, the deployed image"
  }
  assert {
    condition = (
      { for e in jsondecode(aws_batch_job_definition.run_worker.container_properties).environment : e.name => e.value }["SPOTLAKE_BATCH_JOB_DEFINITION"]
      == aws_batch_job_definition.run_worker.name
    )
    error_message = "the environment must name the job definition itself (without a dependency cycle)"
  }

  # --- the database ---
  assert {
    condition = alltrue([
      aws_db_instance.dagster.storage_encrypted,
      !aws_db_instance.dagster.publicly_accessible,
      aws_db_instance.dagster.deletion_protection,
      aws_db_instance.dagster.multi_az,
      aws_db_instance.dagster.backup_retention_period >= 7,
      !aws_db_instance.dagster.skip_final_snapshot,
    ])
    error_message = "RDS must be encrypted, private, protected, Multi-AZ, with backups and a final snapshot"
  }
  assert {
    condition     = aws_db_instance.dagster.password == null && aws_db_instance.dagster.password_wo_version == 1
    error_message = "the database password is write-only (never in the state)"
  }

  # --- least privilege ---
  assert {
    condition = alltrue(flatten([
      for name, document in {
        run_worker    = data.aws_iam_policy_document.run_worker
        control_plane = data.aws_iam_policy_document.control_plane
        execution     = data.aws_iam_policy_document.task_execution
        alerts        = data.aws_iam_policy_document.alerts[0]
        } : [
        for s in document.statement : !(contains(s.resources, "*") && anytrue([for a in s.actions : strcontains(a, "*")]))
      ]
    ]))
    error_message = "no role policy may grant a wildcard action on every resource"
  }
  assert {
    condition = alltrue([
      for s in data.aws_iam_policy_document.run_worker.statement :
      alltrue([for a in s.actions : !strcontains(a, "*")])
    ])
    error_message = "run-worker actions are named one by one"
  }
  assert {
    condition     = length([for s in data.aws_iam_policy_document.run_worker.statement : s if s.sid == "SpsCredentialsSecret"]) == 1
    error_message = "with a secret name, run workers may read that secret"
  }
  assert {
    condition = alltrue([
      for name in ["webserver", "daemon", "code-server"] :
      jsondecode(aws_ecs_task_definition.dagster[name].container_definitions)[0].healthCheck.command == ["CMD", "/usr/local/bin/spotlake-healthcheck"]
    ])
    error_message = "every control-plane task runs the image's health probe"
  }
  assert {
    condition     = aws_ecs_task_definition.dagster["daemon"].runtime_platform[0].cpu_architecture == "X86_64"
    error_message = "the control plane defaults to X86_64"
  }
}

run "x86_run_workers_and_arm64_control_plane" {
  command = plan

  variables {
    run_worker_architecture        = "x86_64"
    control_plane_cpu_architecture = "ARM64"
  }

  assert {
    condition     = toset(aws_batch_compute_environment.spot.compute_resources[0].instance_type) == toset(["m6i", "m7i", "m6a", "c6i", "c7i", "r6i"])
    error_message = "x86_64 run workers default to the x86 families"
  }
  assert {
    condition     = aws_ecs_task_definition.dagster["webserver"].runtime_platform[0].cpu_architecture == "ARM64"
    error_message = "the control plane architecture follows its variable"
  }
}

run "mixed_architectures_are_refused" {
  command = plan

  variables {
    run_worker_architecture = "arm64"
    instance_types          = ["m7g", "m7i"]
  }

  expect_failures = [aws_batch_compute_environment.spot]
}

run "fractional_default_vcpu_is_refused" {
  command = plan

  variables {
    run_worker_vcpu = 0.5
  }

  expect_failures = [var.run_worker_vcpu]
}

run "on_demand_fallback" {
  command = plan

  variables {
    compute_environment_type = "EC2"
    allocation_strategy      = "BEST_FIT_PROGRESSIVE"
  }

  assert {
    condition     = aws_batch_compute_environment.spot.compute_resources[0].bid_percentage == null
    error_message = "on-demand capacity has no bid percentage"
  }
}

# --- Operations outside Dagster: failed Batch jobs and silent ticks -> Slack (alerts.tf) ---------------------

run "alerts_post_to_slack" {
  command = plan

  # The mock gives every role the same ARN: this one must be told apart.
  override_resource {
    target          = aws_iam_role.alerts
    override_during = plan
    values          = { arn = "arn:aws:iam::123456789012:role/spotlake-alerts" }
  }

  assert {
    condition = alltrue([
      jsondecode(aws_cloudwatch_event_rule.alerts["batch-job-failed"].event_pattern).source == ["aws.batch"],
      jsondecode(aws_cloudwatch_event_rule.alerts["batch-job-failed"].event_pattern)["detail-type"] == ["Batch Job State Change"],
      jsondecode(aws_cloudwatch_event_rule.alerts["batch-job-failed"].event_pattern).detail.status == ["FAILED"],
      jsondecode(aws_cloudwatch_event_rule.alerts["batch-job-failed"].event_pattern).detail.jobQueue == [aws_batch_job_queue.runs.arn],
      length(jsondecode(aws_cloudwatch_event_rule.alerts["batch-job-failed"].event_pattern)) == 3,
    ])
    error_message = "the failed-job rule must match Batch Job State Change events with status FAILED on our queue only"
  }
  assert {
    condition = alltrue([
      aws_cloudwatch_metric_alarm.silent_ticks.namespace == "AWS/Logs",
      aws_cloudwatch_metric_alarm.silent_ticks.metric_name == "IncomingLogEvents",
      aws_cloudwatch_metric_alarm.silent_ticks.dimensions["LogGroupName"] == aws_cloudwatch_log_group.run_worker.name,
      length(aws_cloudwatch_metric_alarm.silent_ticks.dimensions) == 1,
      aws_cloudwatch_metric_alarm.silent_ticks.statistic == "Sum",
      aws_cloudwatch_metric_alarm.silent_ticks.period == 600,
      aws_cloudwatch_metric_alarm.silent_ticks.evaluation_periods == 3,
      aws_cloudwatch_metric_alarm.silent_ticks.datapoints_to_alarm == 3,
      aws_cloudwatch_metric_alarm.silent_ticks.comparison_operator == "LessThanThreshold",
      aws_cloudwatch_metric_alarm.silent_ticks.threshold == 1,
      aws_cloudwatch_metric_alarm.silent_ticks.treat_missing_data == "breaching",
    ])
    error_message = "the silent-tick alarm: run-worker IncomingLogEvents, Sum < 1 over 3 x 10 min, missing data breaching"
  }
  assert {
    condition = alltrue([
      jsondecode(aws_cloudwatch_event_rule.alerts["silent-ticks"].event_pattern).source == ["aws.cloudwatch"],
      jsondecode(aws_cloudwatch_event_rule.alerts["silent-ticks"].event_pattern)["detail-type"] == ["CloudWatch Alarm State Change"],
      jsondecode(aws_cloudwatch_event_rule.alerts["silent-ticks"].event_pattern).resources == [aws_cloudwatch_metric_alarm.silent_ticks.arn],
      jsonencode(jsondecode(aws_cloudwatch_event_rule.alerts["silent-ticks"].event_pattern).detail["$or"]) == jsonencode([
        { state = { value = ["ALARM"] } },
        { state = { value = ["OK"] }, previousState = { value = ["ALARM"] } },
      ]),
    ])
    error_message = "the alarm (ALARM) and its recovery (ALARM -> OK) must reach the Slack path"
  }
  assert {
    condition = alltrue([
      for name, target in aws_cloudwatch_event_target.alerts : alltrue([
        target.arn == aws_cloudwatch_event_api_destination.slack[0].arn,
        target.role_arn == aws_iam_role.alerts[0].arn,
        target.rule == aws_cloudwatch_event_rule.alerts[name].name,
        target.retry_policy[0].maximum_event_age_in_seconds == 3600,
      ])
    ]) && length(aws_cloudwatch_event_target.alerts) == 2
    error_message = "both rules must target the Slack API destination through the alerts role"
  }
  assert {
    # Slack wants {"text": ...}: the template is JSON, and every placeholder it uses is defined.
    condition = alltrue(flatten([
      for target in aws_cloudwatch_event_target.alerts : [
        for placeholder in regexall("<([a-z]+)>", jsondecode(target.input_transformer[0].input_template).text) :
        contains(keys(target.input_transformer[0].input_paths), placeholder[0])
      ]
    ]))
    error_message = "the Slack message templates must be JSON objects with text, and every <placeholder> an input path"
  }
  assert {
    condition = alltrue([
      strcontains(jsondecode(aws_cloudwatch_event_target.alerts["batch-job-failed"].input_transformer[0].input_template).text, "<reason>"),
      aws_cloudwatch_event_target.alerts["batch-job-failed"].input_transformer[0].input_paths.reason == "$.detail.statusReason",
    ])
    error_message = "a failed job's message carries Batch's status reason"
  }
  assert {
    condition = alltrue([
      aws_cloudwatch_event_api_destination.slack[0].http_method == "POST",
      aws_cloudwatch_event_api_destination.slack[0].connection_arn == aws_cloudwatch_event_connection.slack[0].arn,
      nonsensitive(aws_cloudwatch_event_api_destination.slack[0].invocation_endpoint == "https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX"),
      data.aws_secretsmanager_secret_version.slack_webhook[0].secret_id == var.slack_webhook_secret_arn,
    ])
    error_message = "the API destination must POST to the webhook URL held in slack_webhook_secret_arn"
  }
  assert {
    condition = (
      data.aws_iam_policy_document.alerts[0].statement[0].actions == toset(["events:InvokeApiDestination"])
      && data.aws_iam_policy_document.alerts[0].statement[0].resources == toset([aws_cloudwatch_event_api_destination.slack[0].arn])
      && length(data.aws_iam_policy_document.alerts[0].statement) == 1
    )
    error_message = "the alerts role may only invoke the Slack API destination"
  }
}

run "alerts_without_a_webhook" {
  command = plan

  variables {
    slack_webhook_secret_arn  = ""
    silent_tick_alarm_minutes = 60
  }

  assert {
    condition     = aws_cloudwatch_metric_alarm.silent_ticks.evaluation_periods == 6 && aws_cloudwatch_metric_alarm.silent_ticks.datapoints_to_alarm == 6
    error_message = "the alarm exists without Slack, its window follows silent_tick_alarm_minutes"
  }
  assert {
    condition = alltrue([
      length(aws_cloudwatch_event_rule.alerts) == 0,
      length(aws_cloudwatch_event_target.alerts) == 0,
      length(aws_cloudwatch_event_api_destination.slack) == 0,
      length(aws_cloudwatch_event_connection.slack) == 0,
      length(aws_iam_role.alerts) == 0,
      length(data.aws_secretsmanager_secret_version.slack_webhook) == 0,
    ])
    error_message = "without a webhook secret nothing is posted (and no secret is read)"
  }
}

run "silent_tick_window_must_be_whole_periods" {
  command = plan

  variables {
    silent_tick_alarm_minutes = 25
  }

  expect_failures = [var.silent_tick_alarm_minutes]
}

# --- VPC endpoints (endpoints.tf) ---------------------------------------------------------------------------

run "vpc_endpoints" {
  command = plan

  # Distinct security groups, so the assertions below can tell them apart.
  override_resource {
    target          = aws_security_group.endpoints
    override_during = plan
    values          = { id = "sg-0e0e0e0e0e0e0e0e0" }
  }
  override_resource {
    target          = aws_security_group.control_plane
    override_during = plan
    values          = { id = "sg-0c0c0c0c0c0c0c0c0" }
  }
  override_resource {
    target          = aws_security_group.run_worker
    override_during = plan
    values          = { id = "sg-0a0a0a0a0a0a0a0a0" }
  }
  override_resource {
    target          = aws_security_group.database
    override_during = plan
    values          = { id = "sg-0d0d0d0d0d0d0d0d0" }
  }

  assert {
    condition = alltrue([
      aws_vpc_endpoint.s3[0].vpc_endpoint_type == "Gateway",
      aws_vpc_endpoint.s3[0].service_name == "com.amazonaws.us-west-2.s3",
      aws_vpc_endpoint.s3[0].vpc_id == var.vpc_id,
      aws_vpc_endpoint.s3[0].route_table_ids == toset(["rtb-0123456789abcdef0"]),
      length(data.aws_route_table.private) == 2,
    ])
    error_message = "an S3 gateway endpoint on the private subnets' route tables (looked up per subnet)"
  }
  assert {
    condition     = toset(keys(aws_vpc_endpoint.interface)) == toset(["ecr.api", "ecr.dkr", "logs"])
    error_message = "interface endpoints for ECR (api, dkr) and CloudWatch Logs by default"
  }
  assert {
    condition = alltrue([
      for service, endpoint in aws_vpc_endpoint.interface : alltrue([
        endpoint.service_name == "com.amazonaws.us-west-2.${service}",
        endpoint.vpc_endpoint_type == "Interface",
        endpoint.private_dns_enabled,
        endpoint.subnet_ids == toset(var.private_subnet_ids),
        endpoint.security_group_ids == toset([aws_security_group.endpoints[0].id]),
      ])
    ])
    error_message = "interface endpoints: private DNS, in the private subnets, behind their security group"
  }
  assert {
    condition = alltrue([
      for name, rule in aws_vpc_security_group_ingress_rule.endpoints_from : alltrue([
        rule.security_group_id == aws_security_group.endpoints[0].id,
        rule.from_port == 443 && rule.to_port == 443 && rule.ip_protocol == "tcp",
        rule.cidr_ipv4 == null,
      ])
      ]) && (
      toset([for rule in aws_vpc_security_group_ingress_rule.endpoints_from : rule.referenced_security_group_id])
      == toset([aws_security_group.control_plane.id, aws_security_group.run_worker.id])
    )
    error_message = "the endpoints accept HTTPS from the run workers and the control plane only"
  }
}

run "vpc_endpoints_off" {
  command = plan

  variables {
    interface_endpoints = []
    s3_gateway_endpoint = false
  }

  assert {
    condition = alltrue([
      length(aws_vpc_endpoint.interface) == 0,
      length(aws_vpc_endpoint.s3) == 0,
      length(aws_security_group.endpoints) == 0,
      length(aws_vpc_security_group_ingress_rule.endpoints_from) == 0,
      length(data.aws_route_table.private) == 0,
    ])
    error_message = "no endpoint, security group or route-table lookup when both are off"
  }
}

run "vpc_endpoints_chosen" {
  command = plan

  variables {
    interface_endpoints     = ["ecr.api", "ecr.dkr", "logs", "secretsmanager", "sts", "batch"]
    private_route_table_ids = ["rtb-0fedcba9876543210", "rtb-0123456789abcdef1", "rtb-0fedcba9876543210"]
  }

  assert {
    condition     = toset(keys(aws_vpc_endpoint.interface)) == toset(["ecr.api", "ecr.dkr", "logs", "secretsmanager", "sts", "batch"])
    error_message = "the optional interface endpoints follow the variable"
  }
  assert {
    condition     = aws_vpc_endpoint.s3[0].route_table_ids == toset(["rtb-0123456789abcdef1", "rtb-0fedcba9876543210"]) && length(data.aws_route_table.private) == 0
    error_message = "given route tables are used as they are (no lookup)"
  }
}

run "unknown_interface_endpoint_is_refused" {
  command = plan

  variables {
    interface_endpoints = ["s3"]
  }

  expect_failures = [var.interface_endpoints]
}

# --- The lake bucket (lake_bucket.tf) -----------------------------------------------------------------------

run "lake_bucket_managed" {
  command = plan

  assert {
    condition     = aws_s3_bucket.lake[0].bucket == "spotlake-lake"
    error_message = "the lake bucket is managed by default"
  }
  assert {
    condition     = aws_s3_bucket_versioning.lake[0].versioning_configuration[0].status == "Enabled"
    error_message = "the lake is versioned"
  }
  assert {
    condition = alltrue([
      one([for r in aws_s3_bucket_server_side_encryption_configuration.lake[0].rule : r.apply_server_side_encryption_by_default[0].sse_algorithm]) == "AES256",
      one([for r in aws_s3_bucket_server_side_encryption_configuration.lake[0].rule : r.apply_server_side_encryption_by_default[0].kms_master_key_id]) == null,
    ])
    error_message = "the lake is encrypted by default (SSE-S3, no key to grant)"
  }
  assert {
    condition = alltrue([
      aws_s3_bucket_public_access_block.lake[0].block_public_acls,
      aws_s3_bucket_public_access_block.lake[0].block_public_policy,
      aws_s3_bucket_public_access_block.lake[0].ignore_public_acls,
      aws_s3_bucket_public_access_block.lake[0].restrict_public_buckets,
      aws_s3_bucket_ownership_controls.lake[0].rule[0].object_ownership == "BucketOwnerEnforced",
    ])
    error_message = "the lake blocks every kind of public access and has ACLs off"
  }
  assert {
    condition = (
      jsonencode({ for r in aws_s3_bucket_lifecycle_configuration.lake[0].rule : r.filter[0].prefix => r.expiration[0].days if startswith(r.id, "expire-") })
      == jsonencode({ "state/aws/sps_checkpoints/" = 7, "state/azure/sps_checkpoints/" = 7 })
    )
    error_message = "only the SPS checkpoints expire, after lake_checkpoint_expiration_days"
  }
  assert {
    condition = alltrue(flatten([
      for r in aws_s3_bucket_lifecycle_configuration.lake[0].rule : [r.status == "Enabled"]
    ])) && length(aws_s3_bucket_lifecycle_configuration.lake[0].rule) == 3
    error_message = "every lifecycle rule is enabled: two checkpoint rules and the whole-bucket one"
  }
  assert {
    condition = one([
      for r in aws_s3_bucket_lifecycle_configuration.lake[0].rule : alltrue([
        r.noncurrent_version_expiration[0].noncurrent_days == 30,
        r.abort_incomplete_multipart_upload[0].days_after_initiation == 7,
        r.expiration[0].expired_object_delete_marker,
      ]) if r.id == "noncurrent-versions-and-uploads"
    ])
    error_message = "noncurrent versions expire after 30 days, incomplete uploads are aborted after 7, delete markers cleaned"
  }
}

run "lake_bucket_aws_managed_kms" {
  command = plan

  variables {
    lake_bucket_sse_algorithm       = "aws:kms"
    lake_checkpoint_expiration_days = 3
  }

  assert {
    condition = alltrue([
      one([for r in aws_s3_bucket_server_side_encryption_configuration.lake[0].rule : r.apply_server_side_encryption_by_default[0].sse_algorithm]) == "aws:kms",
      one([for r in aws_s3_bucket_server_side_encryption_configuration.lake[0].rule : r.apply_server_side_encryption_by_default[0].kms_master_key_id]) == null,
      one([for r in aws_s3_bucket_server_side_encryption_configuration.lake[0].rule : r.bucket_key_enabled]) == true,
    ])
    error_message = "aws:kms uses the AWS managed key (no grant in any role) with an S3 Bucket Key"
  }
  assert {
    condition     = alltrue([for r in aws_s3_bucket_lifecycle_configuration.lake[0].rule : r.expiration[0].days == 3 if startswith(r.id, "expire-")])
    error_message = "checkpoint expiry follows its variable"
  }
  assert {
    condition     = alltrue([for s in data.aws_iam_policy_document.run_worker.statement : alltrue([for a in s.actions : !startswith(a, "kms:")]) if s.sid != "DecryptSpsCredentials"])
    error_message = "the lake's encryption adds no KMS grant to the run workers"
  }
}

run "lake_bucket_not_managed" {
  command = plan

  variables {
    manage_lake_bucket = false
  }

  assert {
    condition = alltrue([
      length(aws_s3_bucket.lake) == 0,
      length(aws_s3_bucket_versioning.lake) == 0,
      length(aws_s3_bucket_server_side_encryption_configuration.lake) == 0,
      length(aws_s3_bucket_public_access_block.lake) == 0,
      length(aws_s3_bucket_ownership_controls.lake) == 0,
      length(aws_s3_bucket_lifecycle_configuration.lake) == 0,
    ])
    error_message = "manage_lake_bucket = false leaves the bucket to its owner"
  }
  assert {
    condition     = contains(data.aws_iam_policy_document.run_worker.statement[0].resources, "arn:aws:s3:::spotlake-lake")
    error_message = "the run workers are granted the named bucket either way"
  }
}

run "lake_checkpoint_prefixes_only_under_state" {
  command = plan

  variables {
    lake_checkpoint_prefixes = ["rawdata/"]
  }

  expect_failures = [var.lake_checkpoint_prefixes]
}

# --- the large job class (batch_large.tf) ---

run "large_job_class" {
  command = plan

  variables {
    large_job_scratch_gib = 500
  }

  assert {
    condition = alltrue([
      for d in aws_launch_template.batch_large.block_device_mappings :
      d.ebs[0].volume_size == 500 && d.ebs[0].delete_on_termination == "true" && d.ebs[0].encrypted == "true"
      if d.device_name == "/dev/xvdb"
    ]) && length(aws_launch_template.batch_large.block_device_mappings) == 2
    error_message = "large hosts get an encrypted scratch volume of large_job_scratch_gib, deleted with the instance"
  }
  assert {
    condition     = aws_launch_template.batch_large.metadata_options[0].http_tokens == "required"
    error_message = "large hosts: IMDSv2 only"
  }
  assert {
    condition = alltrue([
      aws_batch_compute_environment.spot_large.compute_resources[0].type == "SPOT",
      aws_batch_compute_environment.spot_large.compute_resources[0].min_vcpus == 0,
      [for o in aws_batch_job_queue.large.compute_environment_order : o.compute_environment] == [aws_batch_compute_environment.spot_large.arn],
    ])
    error_message = "the large queue feeds its own Spot compute environment, which scales to zero"
  }
  assert {
    condition = (
      { for r in jsondecode(aws_batch_job_definition.large_worker.container_properties).resourceRequirements : r.type => r.value }
      == { VCPU = "4", MEMORY = "16384" }
    )
    error_message = "the large job definition defaults to 4 vCPU / 16384 MiB"
  }
  assert {
    condition = alltrue([
      contains([for m in jsondecode(aws_batch_job_definition.large_worker.container_properties).mountPoints : m.containerPath], "/scratch"),
      contains([for v in jsondecode(aws_batch_job_definition.large_worker.container_properties).volumes : try(v.host.sourcePath, "")], "/scratch"),
      { for e in jsondecode(aws_batch_job_definition.large_worker.container_properties).environment : e.name => e.value }["TMPDIR"] == "/scratch",
      jsondecode(aws_batch_job_definition.large_worker.container_properties).readonlyRootFilesystem,
      aws_batch_job_definition.large_worker.retry_strategy[0].attempts == 1,
    ])
    error_message = "large jobs mount the scratch volume as TMPDIR, read-only root otherwise, one attempt"
  }
  assert {
    condition = (
      { for e in jsondecode(aws_batch_job_definition.run_worker.container_properties).environment : e.name => e.value }["SPOTLAKE_BATCH_LARGE_JOB_DEFINITION"]
      == aws_batch_job_definition.large_worker.name
    )
    error_message = "the instance config's large job class names the large job definition"
  }
  assert {
    condition = contains(
      flatten([for s in data.aws_iam_policy_document.control_plane.statement : s.resources if s.sid == "LaunchRuns"]),
      aws_batch_job_queue.large.arn,
    )
    error_message = "the launcher may submit to the large queue"
  }
  assert {
    condition = (
      flatten([for s in data.aws_iam_policy_document.run_worker.statement : s.resources if s.sid == "ReadLegacySource"])
      == ["arn:aws:s3:::spotlake/*"]
    )
    error_message = "the history import reads SpotLake's bucket, and nothing else beyond the lake"
  }
}

run "large_job_scratch_too_small_is_refused" {
  command = plan

  variables {
    large_job_scratch_gib = 5
  }

  expect_failures = [var.large_job_scratch_gib]
}

run "no_legacy_source_grant" {
  command = plan

  variables {
    legacy_source_bucket = ""
  }

  assert {
    condition     = length([for s in data.aws_iam_policy_document.run_worker.statement : s if startswith(s.sid, "ReadLegacy") || startswith(s.sid, "ListLegacy")]) == 0
    error_message = "an empty legacy_source_bucket grants nothing"
  }
}
