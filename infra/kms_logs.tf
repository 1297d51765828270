# One customer managed key for what this stack stores: logs, the database and its password, Performance
# Insights and ECS Exec sessions.
data "aws_iam_policy_document" "kms" {
  #checkov:skip=CKV_AWS_109:A key policy's Resource "*" is this key alone; the account-root administration statement is AWS's default key policy and keeps the key manageable.
  #checkov:skip=CKV_AWS_111:Same key policy: write actions apply to this key only, granted to the account root and to CloudWatch Logs for this stack's log groups.
  #checkov:skip=CKV_AWS_356:In a key policy "*" cannot name other resources: it is the key the policy is attached to.
  statement {
    # The account administers the key: without this statement the key could become unmanageable. In a key
    # policy "*" means this key only; IAM policies grant the roles their use of it.
    sid       = "AccountAdministersKey"
    actions   = ["kms:*"]
    resources = ["*"]
    principals {
      type        = "AWS"
      identifiers = ["arn:${local.partition}:iam::${local.account_id}:root"]
    }
  }

  statement {
    sid       = "CloudWatchLogsUseKey"
    actions   = ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"]
    resources = ["*"]
    principals {
      type        = "Service"
      identifiers = ["logs.${var.region}.amazonaws.com"]
    }
    condition {
      test     = "ArnLike"
      variable = "kms:EncryptionContext:aws:logs:arn"
      values   = ["arn:${local.partition}:logs:${var.region}:${local.account_id}:log-group:/${local.name}/*"]
    }
  }
}

resource "aws_kms_key" "spotlake" {
  description             = "${local.name}: logs, database, secrets"
  enable_key_rotation     = true
  deletion_window_in_days = 30
  policy                  = data.aws_iam_policy_document.kms.json
}

resource "aws_kms_alias" "spotlake" {
  name          = "alias/${local.name}"
  target_key_id = aws_kms_key.spotlake.key_id
}

resource "aws_cloudwatch_log_group" "run_worker" {
  name              = "/${local.name}/batch/run-worker"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.spotlake.arn
}

resource "aws_cloudwatch_log_group" "control_plane" {
  for_each          = toset(["webserver", "daemon", "code-server"])
  name              = "/${local.name}/ecs/${each.key}"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.spotlake.arn
}

resource "aws_cloudwatch_log_group" "ecs_exec" {
  name              = "/${local.name}/ecs/exec-sessions"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.spotlake.arn
}
