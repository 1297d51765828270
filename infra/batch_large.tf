# The large job class (issue 15): runs too big for a run worker (importing a month of SpotLake's published
# history: a quarter-billion rows, a zip of several GiB) go to their own Spot compute environment and queue,
# on hosts with a scratch EBS volume that is deleted with the instance. The launcher sends a run here when
# its job carries the tag spotlake/job_class=large (infra/dagster.yaml `job_classes`); a Spot reclaim fails
# the run and a run retry resumes from the last day checkpointed in the lake.

locals {
  large_job_definition_name = "${local.name}-large-worker"
  scratch_path              = "/scratch"
  # A cloud-boothook (runs before ECS starts, on every boot): format the scratch volume (the second disk,
  # nvme1n1 on Nitro hosts) once and mount it where the job definition's host volume points.
  large_host_user_data = <<-EOT
    MIME-Version: 1.0
    Content-Type: multipart/mixed; boundary="==SCRATCH=="

    --==SCRATCH==
    Content-Type: text/cloud-boothook; charset="us-ascii"

    #!/bin/bash
    set -eu
    mkdir -p ${local.scratch_path}
    if ! mountpoint -q ${local.scratch_path}; then
      for device in /dev/nvme1n1 /dev/xvdb /dev/sdb; do
        if [ -b "$device" ]; then
          blkid "$device" >/dev/null || mkfs -t xfs "$device"
          mount "$device" ${local.scratch_path}
          chmod 1777 ${local.scratch_path}
          break
        fi
      done
    fi
    --==SCRATCH==--
  EOT
}

resource "aws_launch_template" "batch_large" {
  name_prefix = "${local.name}-batch-large-"
  description = "Large Batch hosts: IMDSv2 only, encrypted root and scratch volumes, scratch deleted with the host"

  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
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

  block_device_mappings {
    device_name = "/dev/xvdb"
    ebs {
      volume_size = var.large_job_scratch_gib
      volume_type = "gp3"
      encrypted   = true
      # Scratch only: the zip and temporary files of one run; nothing outlives the instance.
      delete_on_termination = "true"
    }
  }

  user_data = base64encode(local.large_host_user_data)
}

resource "aws_batch_compute_environment" "spot_large" {
  compute_environment_name_prefix = "${local.name}-large-"
  type                            = "MANAGED"
  state                           = "ENABLED"

  compute_resources {
    type                = var.compute_environment_type
    allocation_strategy = var.allocation_strategy
    bid_percentage      = var.compute_environment_type == "SPOT" ? var.spot_bid_percentage : null
    instance_type       = local.run_worker_instance_types
    # Scales to zero: large runs are rare (a backfill of history), and hosts with scratch cost while up.
    min_vcpus          = 0
    max_vcpus          = var.large_job_max_vcpus
    instance_role      = aws_iam_instance_profile.batch_instance.arn
    subnets            = var.private_subnet_ids
    security_group_ids = concat([aws_security_group.run_worker.id], var.batch_security_group_ids)

    ec2_configuration {
      image_type = "ECS_AL2023"
    }

    launch_template {
      launch_template_id = aws_launch_template.batch_large.id
      version            = aws_launch_template.batch_large.latest_version
    }

    tags = { Name = "${local.name}-batch-large" }
  }

  update_policy {
    job_execution_timeout_minutes = 30
    terminate_jobs_on_update      = false
  }

  depends_on = [aws_iam_role_policy_attachment.batch_instance]

  lifecycle {
    create_before_destroy = true
    ignore_changes        = [compute_resources[0].desired_vcpus]

    precondition {
      condition     = var.large_job_max_vcpus >= var.large_job_vcpu
      error_message = "large_job_max_vcpus must fit at least one large job (large_job_vcpu)."
    }
  }
}

resource "aws_batch_job_queue" "large" {
  name     = "${local.name}-large"
  state    = "ENABLED"
  priority = 1

  compute_environment_order {
    order               = 1
    compute_environment = aws_batch_compute_environment.spot_large.arn
  }

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

resource "aws_batch_job_definition" "large_worker" {
  name                       = local.large_job_definition_name
  type                       = "container"
  platform_capabilities      = ["EC2"]
  propagate_tags             = true
  deregister_on_new_revision = false

  # As for run workers: Dagster owns retries (run retries resume from the last checkpointed day).
  retry_strategy {
    attempts = 1
  }

  timeout {
    attempt_duration_seconds = var.large_job_timeout_seconds
  }

  container_properties = jsonencode(merge(local.run_worker_container, {
    volumes = concat(local.run_worker_container.volumes, [
      { name = "scratch", host = { sourcePath = local.scratch_path } },
    ])
    mountPoints = concat(local.run_worker_container.mountPoints, [
      { sourceVolume = "scratch", containerPath = local.scratch_path, readOnly = false },
    ])
    resourceRequirements = [
      { type = "VCPU", value = tostring(var.large_job_vcpu) },
      { type = "MEMORY", value = tostring(var.large_job_memory_mib) },
    ]
    # Temporary files (a zip fetched from S3) land on the scratch volume, not the host's root disk.
    environment = concat(local.dagster_environment, [{ name = "TMPDIR", value = local.scratch_path }])
  }))
}
