#!/usr/bin/env bash
# Remove the SpotLake Assets platform deployed by scripts/deploy_infra.sh. Takes the same options (region,
# profile, state bucket, image URI, VPC/subnets/security groups, bucket): Terraform needs every variable to
# plan a destroy. The lake bucket, the Timestream database and other existing inputs are not touched.
#
#   scripts/destroy_infra.sh --region us-west-2 --state-bucket my-tf-state --image-uri ... --vpc-id ... \
#     --subnets subnet-1,subnet-2 --bucket spotlake-lake
set -euo pipefail

for arg in "$@"; do
  if [[ "$arg" == "-h" || "$arg" == "--help" ]]; then
    echo "Usage: scripts/destroy_infra.sh [the options of scripts/deploy_infra.sh]"
    echo "Lifts the database's deletion protection, then destroys every resource in infra/."
    exit 0
  fi
done

exec "$(dirname "$0")/deploy_infra.sh" --destroy "$@"
