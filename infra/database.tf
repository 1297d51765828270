# The Dagster instance database: private, encrypted, its password written only to Secrets Manager and RDS through
# write-only arguments from the ephemeral var.db_password (never in the Terraform state or plan). The deploy
# script generates it with Secrets Manager's GetRandomPassword. Not generated here: Terraform 1.11's mock
# providers cannot mock ephemeral resources (the offline plan tests would fail), and hashicorp/random is one
# more provider to mirror.

resource "aws_secretsmanager_secret" "db_password" {
  #checkov:skip=CKV2_AWS_57:Dagster opens a new connection per operation with the password its containers read at start, so automatic rotation would break every running service; rotate with db_password_version and a redeploy (README.md).
  name                    = "${local.name}/dagster/db-password"
  description             = "Password of the Dagster instance database (DAGSTER_PG_PASSWORD)"
  kms_key_id              = aws_kms_key.spotlake.arn
  recovery_window_in_days = 7
}

resource "aws_secretsmanager_secret_version" "db_password" {
  secret_id                = aws_secretsmanager_secret.db_password.id
  secret_string_wo         = var.db_password
  secret_string_wo_version = var.db_password_version
}

resource "aws_db_subnet_group" "dagster" {
  name       = "${local.name}-dagster"
  subnet_ids = var.private_subnet_ids
}

resource "aws_db_parameter_group" "dagster" {
  name   = "${local.name}-dagster-pg${var.db_engine_version}"
  family = "postgres${var.db_engine_version}"

  parameter {
    name  = "rds.force_ssl"
    value = "1"
  }

  parameter {
    name  = "log_statement"
    value = "ddl"
  }

  parameter {
    name  = "log_min_duration_statement"
    value = "2000"
  }
}

data "aws_iam_policy_document" "rds_monitoring_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["monitoring.rds.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "rds_monitoring" {
  name               = "${local.name}-rds-monitoring"
  assume_role_policy = data.aws_iam_policy_document.rds_monitoring_assume.json
}

resource "aws_iam_role_policy_attachment" "rds_monitoring" {
  role       = aws_iam_role.rds_monitoring.name
  policy_arn = "arn:${local.partition}:iam::aws:policy/service-role/AmazonRDSEnhancedMonitoringRole"
}

resource "aws_db_instance" "dagster" {
  identifier     = "${local.name}-dagster"
  engine         = "postgres"
  engine_version = var.db_engine_version
  instance_class = var.db_instance_class
  db_name        = "dagster"
  username       = "dagster"

  password_wo         = var.db_password
  password_wo_version = var.db_password_version

  allocated_storage     = var.db_allocated_storage
  max_allocated_storage = var.db_max_allocated_storage
  storage_type          = "gp3"
  storage_encrypted     = true
  kms_key_id            = aws_kms_key.spotlake.arn

  db_subnet_group_name   = aws_db_subnet_group.dagster.name
  vpc_security_group_ids = [aws_security_group.database.id]
  publicly_accessible    = false
  multi_az               = var.db_multi_az
  parameter_group_name   = aws_db_parameter_group.dagster.name

  iam_database_authentication_enabled = true
  auto_minor_version_upgrade          = true
  backup_retention_period             = 14
  copy_tags_to_snapshot               = true
  deletion_protection                 = var.db_deletion_protection
  skip_final_snapshot                 = false
  final_snapshot_identifier           = "${local.name}-dagster-final"
  enabled_cloudwatch_logs_exports     = ["postgresql", "upgrade"]

  monitoring_interval                   = 60
  monitoring_role_arn                   = aws_iam_role.rds_monitoring.arn
  performance_insights_enabled          = true
  performance_insights_kms_key_id       = aws_kms_key.spotlake.arn
  performance_insights_retention_period = 7
}
