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
    condition     = toset(aws_batch_compute_environment.spot.compute_resources[0].instance_type) == toset(["m6i", "m7i", "m6a", "c6i", "c7i", "r6i"])
    error_message = "x86_64 run workers default to the x86 families"
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

run "graviton_run_workers" {
  command = plan

  variables {
    run_worker_architecture        = "arm64"
    control_plane_cpu_architecture = "ARM64"
  }

  assert {
    condition     = toset(aws_batch_compute_environment.spot.compute_resources[0].instance_type) == toset(["m7g", "c7g", "r7g", "m6g", "c6g", "r6g"])
    error_message = "arm64 run workers default to Graviton families"
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
