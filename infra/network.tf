# Security groups created here; the existing ones passed in are added next to them. Nothing accepts traffic
# from outside the VPC: the webserver is reached through SSM port forwarding (README.md).

resource "aws_security_group" "control_plane" {
  name        = "${local.name}-control-plane"
  description = "Dagster webserver, daemon and code server (ECS Fargate)"
  vpc_id      = var.vpc_id
}

resource "aws_security_group" "run_worker" {
  name        = "${local.name}-run-worker"
  description = "AWS Batch instances running Dagster run workers"
  vpc_id      = var.vpc_id
}

resource "aws_security_group" "database" {
  name        = "${local.name}-database"
  description = "Dagster instance database (RDS Postgres)"
  vpc_id      = var.vpc_id
}

resource "aws_vpc_security_group_ingress_rule" "code_server_from_control_plane" {
  security_group_id            = aws_security_group.control_plane.id
  referenced_security_group_id = aws_security_group.control_plane.id
  ip_protocol                  = "tcp"
  from_port                    = 4000
  to_port                      = 4000
  description                  = "Webserver and daemon reach the code server (gRPC)"
}

resource "aws_vpc_security_group_egress_rule" "control_plane_to_code_server" {
  security_group_id            = aws_security_group.control_plane.id
  referenced_security_group_id = aws_security_group.control_plane.id
  ip_protocol                  = "tcp"
  from_port                    = 4000
  to_port                      = 4000
  description                  = "gRPC to the code server"
}

resource "aws_vpc_security_group_egress_rule" "https" {
  for_each          = { control_plane = aws_security_group.control_plane.id, run_worker = aws_security_group.run_worker.id }
  security_group_id = each.value
  cidr_ipv4         = "0.0.0.0/0"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  description       = "HTTPS to AWS APIs, ECR, Azure APIs and Slack (through NAT)"
}

resource "aws_vpc_security_group_egress_rule" "to_database" {
  for_each                     = { control_plane = aws_security_group.control_plane.id, run_worker = aws_security_group.run_worker.id }
  security_group_id            = each.value
  referenced_security_group_id = aws_security_group.database.id
  ip_protocol                  = "tcp"
  from_port                    = 5432
  to_port                      = 5432
  description                  = "Postgres (Dagster instance storage)"
}

resource "aws_vpc_security_group_ingress_rule" "database_from" {
  for_each                     = { control_plane = aws_security_group.control_plane.id, run_worker = aws_security_group.run_worker.id }
  security_group_id            = aws_security_group.database.id
  referenced_security_group_id = each.value
  ip_protocol                  = "tcp"
  from_port                    = 5432
  to_port                      = 5432
  description                  = "Postgres from ${each.key}"
}
