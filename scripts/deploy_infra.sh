#!/usr/bin/env bash
# Deploy (or, with --destroy, remove) the SpotLake Assets platform on AWS with the Terraform in infra/:
# Batch on Spot for run workers, the Dagster control plane on ECS Fargate, RDS Postgres, secrets and logs.
#
#   scripts/deploy_infra.sh --region us-west-2 --state-bucket my-tf-state \
#     --image-uri 123456789012.dkr.ecr.us-west-2.amazonaws.com/spotlake-assets@sha256:... \
#     --vpc-id vpc-0abc --subnets subnet-1,subnet-2 --bucket spotlake-lake [--security-groups sg-1,sg-2]
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: scripts/deploy_infra.sh [options]

Required:
  --region REGION                 AWS region (or AWS_REGION)
  --state-bucket BUCKET           S3 bucket holding the Terraform state
  --image-uri URI                 image from scripts/build_and_push.sh (by digest preferably)
  --vpc-id VPC                    existing VPC
  --subnets A,B                   existing private subnets (two AZs at least, with NAT)
  --bucket NAME                   existing lake bucket (SPOTLAKE_BUCKET)

Optional:
  --profile NAME                  AWS CLI profile (or AWS_PROFILE)
  --state-key KEY                 state object key (default: spotlake-assets/terraform.tfstate)
  --security-groups A,B           existing security groups added to the Batch hosts
  --control-plane-security-groups A,B
                                  existing security groups added to the ECS tasks
  --timestream-database NAME      existing Timestream database (default: spotlake)
  --sps-secret NAME               Secrets Manager secret with the SPS credential CSV
  --azure-auth-table NAME         DynamoDB table with the AzureAuth item (default: AzureAuth)
  --slack-webhook-secret ARN      Secrets Manager secret with the Slack webhook URL
  --compute-type SPOT|EC2         Batch compute environment type (default: SPOT)
  --allocation-strategy NAME      Batch allocation strategy (default: SPOT_PRICE_CAPACITY_OPTIMIZED)
  --max-vcpus N                   ceiling of the compute environment (default: 64)
  --rotate-db-password N          set db_password_version to N: a new password, then services restart
  --var-file FILE                 extra terraform variables file
  --auto-approve                  apply without the interactive confirmation
  --destroy                       remove everything (the database's deletion protection is lifted first)
  --dry-run                       print the commands instead of running them
  -h, --help                      this help
EOF
}

csv_to_hcl_list() {
  local IFS=','
  local items=()
  local item
  for item in $1; do
    [[ -n "$item" ]] && items+=("\"${item}\"")
  done
  local joined
  joined="$(IFS=','; echo "${items[*]:-}")"
  echo "[${joined}]"
}

region="${AWS_REGION:-}"
profile="${AWS_PROFILE:-}"
state_bucket=""
state_key="spotlake-assets/terraform.tfstate"
auto_approve=false
destroy=false
dry_run=false
tf_vars=()

while [[ $# -gt 0 ]]; do
  case "$1" in
    --region) region="$2"; shift 2 ;;
    --profile) profile="$2"; shift 2 ;;
    --state-bucket) state_bucket="$2"; shift 2 ;;
    --state-key) state_key="$2"; shift 2 ;;
    --image-uri) tf_vars+=(-var "image_uri=$2"); shift 2 ;;
    --vpc-id) tf_vars+=(-var "vpc_id=$2"); shift 2 ;;
    --subnets) tf_vars+=(-var "private_subnet_ids=$(csv_to_hcl_list "$2")"); shift 2 ;;
    --security-groups) tf_vars+=(-var "batch_security_group_ids=$(csv_to_hcl_list "$2")"); shift 2 ;;
    --control-plane-security-groups)
      tf_vars+=(-var "control_plane_security_group_ids=$(csv_to_hcl_list "$2")"); shift 2 ;;
    --bucket) tf_vars+=(-var "lake_bucket_name=$2"); shift 2 ;;
    --timestream-database) tf_vars+=(-var "timestream_database_name=$2"); shift 2 ;;
    --sps-secret) tf_vars+=(-var "sps_credentials_secret_name=$2"); shift 2 ;;
    --azure-auth-table) tf_vars+=(-var "azure_auth_table_name=$2"); shift 2 ;;
    --slack-webhook-secret) tf_vars+=(-var "slack_webhook_secret_arn=$2"); shift 2 ;;
    --compute-type) tf_vars+=(-var "compute_environment_type=$2"); shift 2 ;;
    --allocation-strategy) tf_vars+=(-var "allocation_strategy=$2"); shift 2 ;;
    --max-vcpus) tf_vars+=(-var "max_vcpus=$2"); shift 2 ;;
    --rotate-db-password) tf_vars+=(-var "db_password_version=$2"); shift 2 ;;
    --var-file) tf_vars+=(-var-file "$2"); shift 2 ;;
    --auto-approve) auto_approve=true; shift ;;
    --destroy) destroy=true; shift ;;
    --dry-run) dry_run=true; shift ;;
    -h | --help) usage; exit 0 ;;
    *) echo "unknown option: $1" >&2; usage >&2; exit 2 ;;
  esac
done

[[ -n "$region" ]] || { echo "--region (or AWS_REGION) is required" >&2; exit 2; }
[[ -n "$state_bucket" ]] || { echo "--state-bucket is required" >&2; exit 2; }
tf_vars=(-var "region=${region}" "${tf_vars[@]}")
infra_dir="$(cd "$(dirname "$0")/../infra" && pwd)"

if [[ -n "$profile" ]]; then
  export AWS_PROFILE="$profile"
fi
export TF_IN_AUTOMATION=1

run() {
  if $dry_run; then
    printf '%q ' "$@"
    printf '\n'
  else
    "$@"
  fi
}

approve=()
$auto_approve && approve=(-auto-approve)

run terraform -chdir="$infra_dir" init -input=false \
  -backend-config="bucket=${state_bucket}" \
  -backend-config="key=${state_key}" \
  -backend-config="region=${region}" \
  -backend-config="use_lockfile=true" \
  -backend-config="encrypt=true"

if $destroy; then
  # RDS refuses deletion while protected: lift the protection on the database alone, then destroy.
  run terraform -chdir="$infra_dir" apply -input=false "${approve[@]}" \
    -target=aws_db_instance.dagster "${tf_vars[@]}" -var "db_deletion_protection=false"
  # The lake outlives the stack (its resources are prevent_destroy): forget them, keep the bucket and its data.
  if $dry_run; then
    printf 'terraform -chdir=%q state rm <the lake bucket resources>\n' "$infra_dir"
  else
    mapfile -t lake_resources < <(terraform -chdir="$infra_dir" state list | grep -E '^aws_s3_bucket[a-z_]*\.lake(\[|$)' || true)
    if ((${#lake_resources[@]})); then
      terraform -chdir="$infra_dir" state rm "${lake_resources[@]}"
    fi
  fi
  run terraform -chdir="$infra_dir" destroy -input=false "${approve[@]}" "${tf_vars[@]}" \
    -var "db_deletion_protection=false"
  exit 0
fi

# The database password (write-only, ephemeral in Terraform): generated by Secrets Manager for this run and
# handed over in the environment, never on a command line. RDS and the secret only take it on creation or a
# --rotate-db-password bump; otherwise it is ignored. Set for plan and apply alike: a saved plan holds no
# ephemeral value.
if $dry_run; then
  echo 'export TF_VAR_db_password="$(aws secretsmanager get-random-password --password-length 40 --exclude-punctuation --require-each-included-type --query RandomPassword --output text)"'
else
  TF_VAR_db_password="$(aws --region "$region" secretsmanager get-random-password --password-length 40 \
    --exclude-punctuation --require-each-included-type --query RandomPassword --output text)"
  export TF_VAR_db_password
fi

plan_file="$(mktemp -t spotlake-plan.XXXXXX)"
trap 'rm -f "$plan_file"' EXIT
run terraform -chdir="$infra_dir" plan -input=false -out="$plan_file" "${tf_vars[@]}"
if ! $auto_approve && ! $dry_run; then
  read -r -p "Apply this plan? [y/N] " answer
  [[ "$answer" == "y" || "$answer" == "Y" ]] || { echo "not applied"; exit 1; }
fi
run terraform -chdir="$infra_dir" apply -input=false "$plan_file"

# A new password (--rotate-db-password) reaches running containers only when they restart.
for arg in "${tf_vars[@]}"; do
  if [[ "$arg" == db_password_version=* ]]; then
    cluster="$(run terraform -chdir="$infra_dir" output -raw ecs_cluster)"
    for service in webserver daemon code-server; do
      run aws ecs update-service --region "$region" --cluster "$cluster" \
        --service "spotlake-${service}" --force-new-deployment
    done
  fi
done
