# --- What already exists ----------------------------------------------------------------------------------

variable "region" {
  description = "AWS region of the deployment: every service (S3 client, Secrets Manager, DynamoDB, Timestream, Batch, ECS) unless overridden below."
  type        = string

  validation {
    condition     = can(regex("^[a-z]{2}(-[a-z]+)+-[0-9]+$", var.region))
    error_message = "region must be an AWS region name such as us-west-2."
  }
}

variable "timestream_region" {
  description = "Region of the Timestream database (SPOTLAKE_TIMESTREAM_REGION) when it is not var.region (LiveAnalytics is not offered everywhere); empty for var.region."
  type        = string
  default     = ""

  validation {
    condition     = var.timestream_region == "" || can(regex("^[a-z]{2}(-[a-z]+)+-[0-9]+$", var.timestream_region))
    error_message = "timestream_region must be empty or an AWS region name."
  }
}

variable "azure_auth_region" {
  description = "Region of the existing AzureAuth DynamoDB table (SPOTLAKE_AZURE_AUTH_REGION) when it is not var.region; empty for var.region."
  type        = string
  default     = ""

  validation {
    condition     = var.azure_auth_region == "" || can(regex("^[a-z]{2}(-[a-z]+)+-[0-9]+$", var.azure_auth_region))
    error_message = "azure_auth_region must be empty or an AWS region name."
  }
}

variable "name_prefix" {
  description = "Prefix of every resource name."
  type        = string
  default     = "spotlake"
}

variable "vpc_id" {
  description = "Existing VPC."
  type        = string
}

variable "private_subnet_ids" {
  description = "Existing private subnets (at least two AZs) with a route to the internet through NAT: Batch instances, ECS tasks and the database live there."
  type        = list(string)

  validation {
    condition     = length(var.private_subnet_ids) >= 2
    error_message = "RDS needs subnets in at least two availability zones."
  }
}

variable "batch_security_group_ids" {
  description = "Existing security groups added to the Batch instances (next to the one created here)."
  type        = list(string)
  default     = []
}

variable "control_plane_security_group_ids" {
  description = "Existing security groups added to the ECS tasks (next to the one created here)."
  type        = list(string)
  default     = []
}

variable "lake_bucket_name" {
  description = "S3 bucket of the lake (SPOTLAKE_BUCKET); compute logs go under dagster/compute-logs/. Created and configured here when manage_lake_bucket (import an existing one first: README.md), only referenced otherwise."
  type        = string
}

variable "lake_read_prefixes" {
  description = "Key prefixes run workers may read: configuration and everything they write (idempotent rewrites and checkpoint resumes read back). spotlake_assets_tests/infra/test_iam_from_code.py derives the list from the code."
  type        = list(string)
  default = [
    "config/", "rawdata/", "merged/", "delta/", "history/", "history_daily/", "latest_data/", "state/", "ops/",
    "dagster/compute-logs/",
  ]
}

variable "lake_write_prefixes" {
  description = "Key prefixes run workers may write (quarantine/ receives damaged state moved aside)."
  type        = list(string)
  default = [
    "rawdata/", "merged/", "delta/", "history/", "history_daily/", "latest_data/", "state/", "ops/", "quarantine/",
    "dagster/compute-logs/",
  ]
}

variable "lake_delete_prefixes" {
  description = "Key prefixes run workers may delete: damaged state is moved to quarantine/ (copy, then delete)."
  type        = list(string)
  default     = ["state/"]
}

variable "timestream_database_name" {
  description = "Existing Timestream database."
  type        = string
  default     = "spotlake"
}

variable "timestream_table_names" {
  description = "Timestream tables the sinks write."
  type        = list(string)
  default     = ["aws", "azure"]
}

variable "sps_credentials_secret_name" {
  description = "Existing Secrets Manager secret holding the SPS credential CSV (SPOTLAKE_CREDENTIALS_SECRET_ID); empty to read it from the lake."
  type        = string
  default     = ""
}

variable "sps_credentials_secret_kms_key_arn" {
  description = "KMS key of that secret if it is not the AWS managed key; empty otherwise."
  type        = string
  default     = ""
}

variable "azure_auth_table_name" {
  description = "Existing DynamoDB table holding the AzureAuth item (SpotLake's layout)."
  type        = string
  default     = "AzureAuth"
}

variable "slack_webhook_secret_arn" {
  description = "Existing Secrets Manager secret with the Slack webhook URL for run-failure alerts; empty for logs only."
  type        = string
  default     = ""
}

variable "launch_time_measurement" {
  description = "Let the run worker request, tag, cancel and terminate Spot instances tagged spotlake:launch-time (the single-account launch-time collector, aws_single/launch_time, which starts paid instances). Off by default: without it the collector's calls are denied."
  type        = bool
  default     = false
}

variable "image_uri" {
  description = "Image built from ../Dockerfile (scripts/build_and_push.sh), by digest or tag."
  type        = string
}

# --- Batch on Spot ------------------------------------------------------------------------------------------

variable "compute_environment_type" {
  description = "SPOT for production; EC2 (on-demand) as a fallback when Spot capacity is scarce."
  type        = string
  default     = "SPOT"

  validation {
    condition     = contains(["SPOT", "EC2"], var.compute_environment_type)
    error_message = "compute_environment_type must be SPOT or EC2."
  }
}

variable "allocation_strategy" {
  description = "How Batch picks instance types: price-capacity-optimized Spot by default."
  type        = string
  default     = "SPOT_PRICE_CAPACITY_OPTIMIZED"

  validation {
    condition = contains(
      ["SPOT_PRICE_CAPACITY_OPTIMIZED", "SPOT_CAPACITY_OPTIMIZED", "BEST_FIT_PROGRESSIVE", "BEST_FIT"],
      var.allocation_strategy,
    )
    error_message = "Unknown Batch allocation strategy."
  }
}

variable "run_worker_architecture" {
  description = "CPU architecture of the run workers' Spot hosts: arm64 (Graviton, the default: cheaper per tick, see infra/README.md) or x86_64; the image is multi-arch. A compute environment cannot mix the two."
  type        = string
  default     = "arm64"

  validation {
    condition     = contains(["x86_64", "arm64"], var.run_worker_architecture)
    error_message = "run_worker_architecture must be x86_64 or arm64."
  }
}

variable "instance_types" {
  description = "Instance types or families for run workers (several families deepen the Spot pools); null picks the families of run_worker_architecture."
  type        = list(string)
  default     = null
}

variable "control_plane_cpu_architecture" {
  description = "Fargate CPU architecture of the webserver, daemon and code server: X86_64 or ARM64 (the image is multi-arch)."
  type        = string
  default     = "X86_64"

  validation {
    condition     = contains(["X86_64", "ARM64"], var.control_plane_cpu_architecture)
    error_message = "control_plane_cpu_architecture must be X86_64 or ARM64."
  }
}

variable "min_vcpus" {
  description = "Floor of the compute environment; 0 scales to nothing between runs."
  type        = number
  default     = 0
}

variable "max_vcpus" {
  description = "Ceiling of the compute environment."
  type        = number
  default     = 64
}

variable "desired_vcpus" {
  description = "Initial desired vCPUs (Batch manages it afterwards)."
  type        = number
  default     = 0
}

variable "spot_bid_percentage" {
  description = "Maximum Spot price as a percentage of on-demand (ignored by the *_OPTIMIZED strategies' pricing, still a ceiling)."
  type        = number
  default     = 100
}

variable "run_worker_vcpu" {
  description = "Default vCPUs of a run worker (the launcher overrides per run from tags). Whole vCPUs: EC2 jobs cannot ask for fractions."
  type        = number
  default     = 1

  validation {
    condition     = var.run_worker_vcpu >= 1 && floor(var.run_worker_vcpu) == var.run_worker_vcpu
    error_message = "run_worker_vcpu must be a whole number of vCPUs (AWS Batch on EC2 accepts no fractions)."
  }
}

variable "run_worker_memory_mib" {
  description = "Default memory of a run worker in MiB (the launcher overrides per run from tags)."
  type        = number
  default     = 2048
}

variable "run_worker_timeout_seconds" {
  description = "Batch kills a run worker after this long; keep it above dagster.yaml's max_runtime_seconds."
  type        = number
  default     = 14400
}

variable "runnable_timeout_seconds" {
  description = "Cancel jobs stuck RUNNABLE for capacity or configuration reasons after this long (the run has failed its start timeout by then)."
  type        = number
  default     = 1800
}

# --- Control plane ------------------------------------------------------------------------------------------

variable "webserver_cpu" {
  description = "Fargate CPU units of the webserver."
  type        = number
  default     = 1024
}

variable "webserver_memory" {
  description = "Fargate memory (MiB) of the webserver."
  type        = number
  default     = 2048
}

variable "daemon_cpu" {
  description = "Fargate CPU units of the daemon."
  type        = number
  default     = 512
}

variable "daemon_memory" {
  description = "Fargate memory (MiB) of the daemon."
  type        = number
  default     = 1024
}

variable "code_server_cpu" {
  description = "Fargate CPU units of the code server."
  type        = number
  default     = 512
}

variable "code_server_memory" {
  description = "Fargate memory (MiB) of the code server."
  type        = number
  default     = 2048
}

variable "db_instance_class" {
  description = "RDS instance class of the Dagster database."
  type        = string
  default     = "db.t4g.small"
}

variable "db_engine_version" {
  description = "Postgres major version."
  type        = string
  default     = "16"
}

variable "db_allocated_storage" {
  description = "Initial storage (GiB); autoscaling up to db_max_allocated_storage."
  type        = number
  default     = 20
}

variable "db_max_allocated_storage" {
  description = "Storage autoscaling ceiling (GiB)."
  type        = number
  default     = 100
}

variable "db_multi_az" {
  description = "Standby in a second AZ."
  type        = bool
  default     = true
}

variable "db_deletion_protection" {
  description = "Refuse to delete the database; scripts/destroy_infra.sh turns it off first."
  type        = bool
  default     = true
}

variable "db_password_version" {
  description = "Bump to generate and store a new database password (then redeploy the services: scripts/deploy_infra.sh)."
  type        = number
  default     = 1
}

variable "db_password" {
  description = "The database password, set on creation and whenever db_password_version changes (write-only, ephemeral: never stored). scripts/deploy_infra.sh passes a fresh one from Secrets Manager's GetRandomPassword through TF_VAR_db_password; it is ignored while the version is unchanged."
  type        = string
  default     = null
  sensitive   = true
  ephemeral   = true

  validation {
    # Letters and digits only: the password travels in a libpq connection string.
    condition     = var.db_password == null || can(regex("^[A-Za-z0-9]{16,128}$", var.db_password))
    error_message = "db_password must be 16-128 letters and digits."
  }
}

variable "log_retention_days" {
  description = "Retention of every log group."
  type        = number
  default     = 365
}

variable "tags" {
  description = "Extra tags on every resource."
  type        = map(string)
  default     = {}
}

# --- The lake bucket (lake_bucket.tf) ---------------------------------------------------------------------

variable "manage_lake_bucket" {
  description = "Manage the lake bucket here (versioning, encryption, public access block, ownership, lifecycle). An existing bucket is imported first (README.md); false leaves it entirely to its owner."
  type        = bool
  default     = true
}

variable "lake_bucket_sse_algorithm" {
  description = "Default encryption of the lake: AES256 (SSE-S3), or aws:kms with the AWS managed key aws/s3 and an S3 Bucket Key. Neither needs a KMS grant in any role (README.md)."
  type        = string
  default     = "AES256"

  validation {
    condition     = contains(["AES256", "aws:kms"], var.lake_bucket_sse_algorithm)
    error_message = "lake_bucket_sse_algorithm must be AES256 or aws:kms."
  }
}

variable "lake_checkpoint_prefixes" {
  description = "Prefixes of the SPS checkpoints (state/<provider>/sps_checkpoints/), which expire after lake_checkpoint_expiration_days. spotlake_assets_tests/infra/test_operations.py checks them against the key layout."
  type        = list(string)
  default     = ["state/aws/sps_checkpoints/", "state/azure/sps_checkpoints/"]

  validation {
    condition     = alltrue([for p in var.lake_checkpoint_prefixes : can(regex("^state/[a-z0-9_]+/sps_checkpoints/$", p))])
    error_message = "lake_checkpoint_prefixes must be state/<provider>/sps_checkpoints/ prefixes: nothing else in the lake may expire."
  }
}

variable "lake_checkpoint_expiration_days" {
  description = "Days an SPS checkpoint is kept: it only serves a retry of its own window's collection."
  type        = number
  default     = 7

  validation {
    condition     = var.lake_checkpoint_expiration_days >= 2 && floor(var.lake_checkpoint_expiration_days) == var.lake_checkpoint_expiration_days
    error_message = "lake_checkpoint_expiration_days must be a whole number of at least 2 (a retried run may resume the next day)."
  }
}

variable "lake_noncurrent_version_expiration_days" {
  description = "Days an overwritten or deleted object version is kept (latest_data/ is rewritten every window, so this bounds the versioning cost)."
  type        = number
  default     = 30

  validation {
    condition     = var.lake_noncurrent_version_expiration_days >= 1 && floor(var.lake_noncurrent_version_expiration_days) == var.lake_noncurrent_version_expiration_days
    error_message = "lake_noncurrent_version_expiration_days must be a whole number of days, at least 1."
  }
}

variable "lake_abort_incomplete_multipart_days" {
  description = "Days after which S3 aborts (and stops billing) an unfinished multipart upload."
  type        = number
  default     = 7

  validation {
    condition     = var.lake_abort_incomplete_multipart_days >= 1 && floor(var.lake_abort_incomplete_multipart_days) == var.lake_abort_incomplete_multipart_days
    error_message = "lake_abort_incomplete_multipart_days must be a whole number of days, at least 1."
  }
}

# --- VPC endpoints (endpoints.tf) -------------------------------------------------------------------------

variable "s3_gateway_endpoint" {
  description = "Create an S3 gateway endpoint on the private subnets' route tables (free; carries the lake traffic and the ECR image layers, which ECR serves from S3, past the NAT). False when the VPC already has one on those route tables."
  type        = bool
  default     = true
}

variable "private_route_table_ids" {
  description = "Route tables of the private subnets for the S3 gateway endpoint; null looks up each subnet's explicitly associated table (pass them when a subnet uses the VPC's main route table implicitly)."
  type        = list(string)
  default     = null
}

variable "interface_endpoints" {
  description = "Services given an interface endpoint with private DNS in the private subnets (about 7.30 USD per month per AZ each, plus 0.01 USD/GB): [] for none. The VPC needs DNS support and hostnames, and must not already have private-DNS endpoints for these services."
  type        = list(string)
  default     = ["ecr.api", "ecr.dkr", "logs"]

  validation {
    condition = alltrue([
      for s in var.interface_endpoints :
      contains(["ecr.api", "ecr.dkr", "logs", "secretsmanager", "sts", "batch", "ecs", "ecs-agent", "ecs-telemetry", "kms", "monitoring", "ssmmessages"], s)
    ])
    error_message = "interface_endpoints may name ecr.api, ecr.dkr, logs, secretsmanager, sts, batch, ecs, ecs-agent, ecs-telemetry, kms, monitoring, ssmmessages."
  }
}

# --- Operations outside Dagster (alerts.tf) ---------------------------------------------------------------

variable "silent_tick_alarm_minutes" {
  description = "Alarm when no run worker has written a log line for this long (a tick runs every 10 minutes): the daemon, the code server or Batch has stopped launching runs."
  type        = number
  default     = 30

  validation {
    condition     = var.silent_tick_alarm_minutes >= 20 && var.silent_tick_alarm_minutes % 10 == 0
    error_message = "silent_tick_alarm_minutes must be a multiple of 10 (the alarm's period), at least 20."
  }
}

# --- The large job class (batch_large.tf) ---------------------------------------------------------------

variable "large_job_vcpu" {
  description = "Default vCPUs of a large job (the import of SpotLake's history: one process, a few threads)."
  type        = number
  default     = 4

  validation {
    condition     = var.large_job_vcpu >= 1 && floor(var.large_job_vcpu) == var.large_job_vcpu
    error_message = "large_job_vcpu must be a whole number of vCPUs (AWS Batch on EC2 accepts no fractions)."
  }
}

variable "large_job_memory_mib" {
  description = "Default memory of a large job in MiB (the import peaks well under 1 GiB; headroom for larger runs)."
  type        = number
  default     = 16384
}

variable "large_job_scratch_gib" {
  description = "Size of the scratch EBS volume of each large host, in GiB (a month's zip plus temporary files); deleted with the instance."
  type        = number
  default     = 200

  validation {
    condition     = var.large_job_scratch_gib >= 20 && var.large_job_scratch_gib <= 16384
    error_message = "large_job_scratch_gib must be between 20 and 16384 GiB (gp3 limits)."
  }
}

variable "large_job_max_vcpus" {
  description = "Ceiling of the large compute environment (it scales to zero between runs)."
  type        = number
  default     = 32
}

variable "large_job_timeout_seconds" {
  description = "Batch kills a large job after this long (a retry resumes from the last checkpointed day)."
  type        = number
  default     = 21600
}

variable "legacy_source_bucket" {
  description = "SpotLake's bucket the history import reads (public; the role still needs s3:GetObject on it). Empty: no grant."
  type        = string
  default     = "spotlake"
}
