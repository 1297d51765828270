# AWS Batch on Spot: a managed compute environment that scales to zero, one queue, and the run-worker job
# definition the BatchRunLauncher submits (spotlake_assets/batch_launcher).

resource "aws_launch_template" "batch" {
  name_prefix = "${local.name}-batch-"
  description = "Batch hosts: IMDSv2 only, encrypted root volume"

  metadata_options {
    http_endpoint = "enabled"
    http_tokens   = "required"
    # Hop limit 1: containers (run workers) cannot reach the host's instance credentials; they get the job
    # role through the ECS task credentials endpoint instead.
    http_put_response_hop_limit = 1
  }

  block_device_mappings {
    device_name = "/dev/xvda"
    ebs {
      volume_size = 30
      volume_type = "gp3"
      encrypted   = true
    }
  }
}

locals {
  # Spot pools per architecture: several current families of each, Batch picks sizes (Graviton down to
  # .medium, 1 vCPU, which fits a default 1-vCPU run worker alone).
  default_instance_types = {
    x86_64 = ["m6i", "m7i", "m6a", "c6i", "c7i", "r6i"]
    arm64  = ["m7g", "c7g", "r7g", "m6g", "c6g", "r6g"]
  }
  run_worker_instance_types = coalesce(var.instance_types, local.default_instance_types[var.run_worker_architecture])
  # Graviton families carry a "g" after the generation digit (m7g, c7gn, r6gd, t4g, im4gn, is4gen).
  graviton_instance_types = [for t in local.run_worker_instance_types : t if can(regex("^[a-z]+[0-9]+g[a-z]*(\\.|$)", t))]
}

resource "aws_batch_compute_environment" "spot" {
  # A prefix, not a fixed name, and create_before_destroy: a change Batch cannot apply in place (type,
  # allocation strategy, architecture) creates the new environment, moves the queue onto it, then deletes
  # the old one. A fixed name would make the replacement collide with itself.
  compute_environment_name_prefix = "${local.name}-runs-"
  type                            = "MANAGED"
  state                           = "ENABLED"
  # No service_role: Batch uses its service-linked role (AWSServiceRoleForBatch, created on first use), the
  # only role with which Batch updates instance types, subnets, launch template and tags in place.

  compute_resources {
    type                = var.compute_environment_type
    allocation_strategy = var.allocation_strategy
    bid_percentage      = var.compute_environment_type == "SPOT" ? var.spot_bid_percentage : null
    instance_type       = local.run_worker_instance_types
    min_vcpus           = var.min_vcpus
    max_vcpus           = var.max_vcpus
    desired_vcpus       = var.desired_vcpus
    instance_role       = aws_iam_instance_profile.batch_instance.arn
    subnets             = var.private_subnet_ids
    security_group_ids  = concat([aws_security_group.run_worker.id], var.batch_security_group_ids)

    ec2_configuration {
      # Batch picks the x86_64 or arm64 variant of this AMI family from the instance types.
      image_type = "ECS_AL2023"
    }

    launch_template {
      launch_template_id = aws_launch_template.batch.id
      version            = aws_launch_template.batch.latest_version
    }

    tags = { Name = "${local.name}-batch" }
  }

  update_policy {
    job_execution_timeout_minutes = 30
    terminate_jobs_on_update      = false
  }

  # Hosts need the instance role's ECS policy to join the cluster; on destroy, deleting the environment
  # needs it too (Batch drains the ECS cluster with it). Without this edge Terraform may detach the policy
  # first and the environment is stuck INVALID.
  depends_on = [aws_iam_role_policy_attachment.batch_instance]

  lifecycle {
    create_before_destroy = true
    # Batch moves desired vCPUs itself.
    ignore_changes = [compute_resources[0].desired_vcpus]

    precondition {
      condition     = var.compute_environment_type == "SPOT" || !startswith(var.allocation_strategy, "SPOT_")
      error_message = "SPOT_* allocation strategies need compute_environment_type = SPOT."
    }

    precondition {
      # One architecture per compute environment: the multi-arch image runs on either, Batch cannot mix.
      condition = (
        var.run_worker_architecture == "arm64"
        ? length(local.graviton_instance_types) == length(local.run_worker_instance_types)
        : length(local.graviton_instance_types) == 0
      )
      error_message = "instance_types must all be of run_worker_architecture (Graviton families for arm64, none for x86_64)."
    }
  }
}

resource "aws_batch_job_queue" "runs" {
  name     = "${local.name}-runs"
  state    = "ENABLED"
  priority = 1

  compute_environment_order {
    order               = 1
    compute_environment = aws_batch_compute_environment.spot.arn
  }

  # A job that cannot be placed would wait forever: cancel it (its run has failed its start timeout by then).
  dynamic "job_state_time_limit_action" {
    for_each = [
      "CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY",
      "MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE",
      "MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT",
    ]
    content {
      action           = "CANCEL"
      max_time_seconds = var.runnable_timeout_seconds
      reason           = job_state_time_limit_action.value
      state            = "RUNNABLE"
    }
  }
}

resource "aws_batch_job_definition" "run_worker" {
  name                  = local.run_worker_job_definition_name
  type                  = "container"
  platform_capabilities = ["EC2"]
  propagate_tags        = true
  # Keep earlier revisions ACTIVE: a run planned before a deploy is submitted with the revision that holds
  # its image (BatchRunLauncher), and Batch refuses INACTIVE revisions. Revisions cost nothing.
  deregister_on_new_revision = false

  # Dagster owns retries: a second attempt would find the run already started, exit 0 and leave the run
  # hanging. Run monitoring fails a lost worker's run and run retries re-execute it from failure. (The
  # launcher also submits every job with attempts = 1.)
  retry_strategy {
    attempts = 1
  }

  timeout {
    attempt_duration_seconds = var.run_worker_timeout_seconds
  }

  container_properties = jsonencode(local.run_worker_container)
}

locals {
  # The run worker's container, shared by the default job definition and the large one (batch_large.tf).
  run_worker_container = {
    image = var.image_uri
    # Replaced on every submission by `dagster api execute_run <run>`.
    command          = ["dagster", "--version"]
    jobRoleArn       = aws_iam_role.run_worker.arn
    executionRoleArn = aws_iam_role.task_execution.arn
    user             = "10001"
    privileged       = false
    # Writable scratch only where Dagster writes: /tmp (compute log capture) and the instance's local
    # artifact storage.
    readonlyRootFilesystem = true
    volumes = [
      { name = "tmp", host = {} },
      { name = "dagster-storage", host = {} },
    ]
    mountPoints = [
      { sourceVolume = "tmp", containerPath = "/tmp", readOnly = false },
      { sourceVolume = "dagster-storage", containerPath = "/opt/dagster/home/storage", readOnly = false },
    ]
    resourceRequirements = [
      { type = "VCPU", value = tostring(var.run_worker_vcpu) },
      { type = "MEMORY", value = tostring(var.run_worker_memory_mib) },
    ]
    environment = local.dagster_environment
    secrets     = local.dagster_secrets
    logConfiguration = {
      logDriver = "awslogs"
      options = {
        "awslogs-group"         = aws_cloudwatch_log_group.run_worker.name
        "awslogs-region"        = var.region
        "awslogs-stream-prefix" = "run"
      }
    }
  }
}
