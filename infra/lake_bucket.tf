# The lake bucket, managed here unless manage_lake_bucket = false. SpotLake's lake already exists: import it
# before the first apply (README.md, "The lake bucket"), or this plan would try to create it.
#
# Every resource refuses to be destroyed (prevent_destroy): years of collected data outlive this stack. Both
# `terraform destroy` and turning manage_lake_bucket off stop at plan time until the lake resources are
# removed from the state (`terraform state rm`, README.md), which leaves the bucket and its settings as they
# are. The run workers' grants do not come from here: iam.tf names the bucket by var.lake_bucket_name.

resource "aws_s3_bucket" "lake" {
  #checkov:skip=CKV_AWS_18:Server access logs would need a second bucket and duplicate what matters here: writes come from one role (CloudTrail data events cover audits when needed).
  #checkov:skip=CKV_AWS_144:No cross-region replica: versioning covers overwrites and deletions; a replica would double the data set's storage for a regional outage alone.
  #checkov:skip=CKV2_AWS_62:No event notifications: the lake sensor lists new raw objects itself (no consumer for S3 events).
  #checkov:skip=CKV_AWS_145:SSE-S3 by default (lake_bucket_sse_algorithm = aws:kms for the AWS managed key): a customer managed key would need kms grants in every reader's policy.
  count  = var.manage_lake_bucket ? 1 : 0
  bucket = var.lake_bucket_name

  lifecycle {
    prevent_destroy = true
  }
}

resource "aws_s3_bucket_versioning" "lake" {
  count  = length(aws_s3_bucket.lake)
  bucket = aws_s3_bucket.lake[0].id

  versioning_configuration {
    status = "Enabled"
  }

  lifecycle {
    # Destroying this resource would suspend versioning.
    prevent_destroy = true
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "lake" {
  count  = length(aws_s3_bucket.lake)
  bucket = aws_s3_bucket.lake[0].id

  rule {
    apply_server_side_encryption_by_default {
      # AES256: SSE-S3. aws:kms without a key id: the AWS managed key aws/s3, usable through S3 by every
      # principal of the account that may read or write the object, so no role needs a KMS grant.
      sse_algorithm = var.lake_bucket_sse_algorithm
    }
    # Fewer KMS requests with aws:kms (one data key per bucket and period instead of per object).
    bucket_key_enabled = var.lake_bucket_sse_algorithm == "aws:kms"
  }

  lifecycle {
    prevent_destroy = true
  }
}

resource "aws_s3_bucket_public_access_block" "lake" {
  count                   = length(aws_s3_bucket.lake)
  bucket                  = aws_s3_bucket.lake[0].id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true

  lifecycle {
    prevent_destroy = true
  }
}

resource "aws_s3_bucket_ownership_controls" "lake" {
  count  = length(aws_s3_bucket.lake)
  bucket = aws_s3_bucket.lake[0].id

  rule {
    # ACLs off: access is decided by IAM and bucket policies only.
    object_ownership = "BucketOwnerEnforced"
  }

  lifecycle {
    prevent_destroy = true
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "lake" {
  count  = length(aws_s3_bucket.lake)
  bucket = aws_s3_bucket.lake[0].id

  # A finished SPS unit's checkpoint only serves a retry of the same window's collection (the SPS quota is
  # not spent twice); afterwards it is dead weight. Only these prefixes expire: state/ also holds the
  # credential maps, and everything else is the data set.
  dynamic "rule" {
    for_each = var.lake_checkpoint_prefixes
    content {
      id     = "expire-${replace(trimsuffix(rule.value, "/"), "/", "-")}"
      status = "Enabled"

      filter {
        prefix = rule.value
      }

      expiration {
        days = var.lake_checkpoint_expiration_days
      }

      # Also in the whole-bucket rule below; repeated so that every rule bounds unfinished uploads.
      abort_incomplete_multipart_upload {
        days_after_initiation = var.lake_abort_incomplete_multipart_days
      }
    }
  }

  rule {
    id     = "noncurrent-versions-and-uploads"
    status = "Enabled"

    # Whole bucket.
    filter {}

    # Overwritten objects (latest_data/ every window) and deleted ones (expired checkpoints, moved-aside
    # state) are kept this long, then removed; their leftover delete markers go too.
    noncurrent_version_expiration {
      noncurrent_days = var.lake_noncurrent_version_expiration_days
    }

    expiration {
      expired_object_delete_marker = true
    }

    abort_incomplete_multipart_upload {
      days_after_initiation = var.lake_abort_incomplete_multipart_days
    }
  }

  # Lifecycle rules on a versioned bucket act on versions: configure versioning first.
  depends_on = [aws_s3_bucket_versioning.lake]

  lifecycle {
    prevent_destroy = true
  }
}
