# The Dagster control plane on ECS Fargate: webserver, daemon and the code location's gRPC server, all from the
# one image, in private subnets without public IPs. Operators reach the webserver through SSM port forwarding
# into its task (ECS Exec); see README.md.

resource "aws_ecs_cluster" "dagster" {
  name = "${local.name}-dagster"

  setting {
    name  = "containerInsights"
    value = "enabled"
  }

  configuration {
    execute_command_configuration {
      kms_key_id = aws_kms_key.spotlake.arn
      logging    = "OVERRIDE"

      log_configuration {
        cloud_watch_encryption_enabled = true
        cloud_watch_log_group_name     = aws_cloudwatch_log_group.ecs_exec.name
      }
    }
  }
}

resource "aws_service_discovery_private_dns_namespace" "dagster" {
  name        = "${local.name}.internal"
  description = "Private names of the Dagster control plane"
  vpc         = var.vpc_id
}

resource "aws_service_discovery_service" "code_server" {
  name = local.code_server_name

  dns_config {
    namespace_id   = aws_service_discovery_private_dns_namespace.dagster.id
    routing_policy = "MULTIVALUE"

    dns_records {
      type = "A"
      ttl  = 10
    }
  }

  health_check_custom_config {
    failure_threshold = 1
  }
}

locals {
  workspace = "/opt/dagster/workspace.yaml"
  services = {
    webserver = {
      cpu     = var.webserver_cpu
      memory  = var.webserver_memory
      command = ["dagster-webserver", "--host", "0.0.0.0", "--port", "3000", "--workspace", local.workspace]
      port    = 3000
      # ECS Exec (the operator's SSM port forwarding) needs a writable root filesystem for its agent.
      read_only = false
      exec      = true
    }
    daemon = {
      cpu       = var.daemon_cpu
      memory    = var.daemon_memory
      command   = ["dagster-daemon", "run", "--workspace", local.workspace]
      port      = null
      read_only = true
      exec      = false
    }
    code-server = {
      cpu    = var.code_server_cpu
      memory = var.code_server_memory
      # The image's default command: dagster api grpc --module-name spotlake_assets.definitions ...
      command   = null
      port      = 4000
      read_only = true
      exec      = false
    }
  }
}

resource "aws_ecs_task_definition" "dagster" {
  for_each                 = local.services
  family                   = "${local.name}-${each.key}"
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = each.value.cpu
  memory                   = each.value.memory
  execution_role_arn       = aws_iam_role.task_execution.arn
  task_role_arn            = aws_iam_role.control_plane.arn

  runtime_platform {
    operating_system_family = "LINUX"
    # The image is multi-arch (scripts/build_and_push.sh): ARM64 Fargate is the cheaper option.
    cpu_architecture = var.control_plane_cpu_architecture
  }

  volume {
    name = "tmp"
  }

  container_definitions = jsonencode([
    merge(
      {
        name                   = each.key
        image                  = var.image_uri
        essential              = true
        user                   = "10001"
        privileged             = false
        readonlyRootFilesystem = each.value.read_only
        environment            = local.dagster_environment
        secrets                = local.dagster_secrets
        mountPoints            = [{ sourceVolume = "tmp", containerPath = "/tmp", readOnly = false }]
        portMappings           = each.value.port == null ? [] : [{ containerPort = each.value.port, protocol = "tcp" }]
        # The image's probe (scripts/healthcheck.sh) picks the check from the command: gRPC health of the
        # code server, the webserver's /server_info, the daemon's heartbeats. ECS replaces an unhealthy task.
        healthCheck = {
          command     = ["CMD", "/usr/local/bin/spotlake-healthcheck"]
          interval    = 30
          timeout     = 15
          retries     = 3
          startPeriod = 120
        }
        logConfiguration = {
          logDriver = "awslogs"
          options = {
            "awslogs-group"         = aws_cloudwatch_log_group.control_plane[each.key].name
            "awslogs-region"        = var.region
            "awslogs-stream-prefix" = each.key
          }
        }
      },
      each.value.command == null ? {} : { command = each.value.command },
    )
  ])
}

resource "aws_ecs_service" "dagster" {
  for_each               = local.services
  name                   = "${local.name}-${each.key}"
  cluster                = aws_ecs_cluster.dagster.id
  task_definition        = aws_ecs_task_definition.dagster[each.key].arn
  desired_count          = 1
  launch_type            = "FARGATE"
  platform_version       = "LATEST"
  enable_execute_command = each.value.exec
  propagate_tags         = "SERVICE"

  # One daemon at a time: stop the old task before starting the new one on deploys.
  deployment_minimum_healthy_percent = each.key == "daemon" ? 0 : 100
  deployment_maximum_percent         = each.key == "daemon" ? 100 : 200

  network_configuration {
    subnets          = var.private_subnet_ids
    security_groups  = concat([aws_security_group.control_plane.id], var.control_plane_security_group_ids)
    assign_public_ip = false
  }

  dynamic "service_registries" {
    for_each = each.key == "code-server" ? [aws_service_discovery_service.code_server.arn] : []
    content {
      registry_arn = service_registries.value
    }
  }
}
