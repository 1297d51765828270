#!/usr/bin/env bash
# Build the one SpotLake Assets image (code location, Batch run workers, webserver, daemon) and push it to ECR.
# Prints the pushed image by digest: pass it to scripts/deploy_infra.sh --image-uri.
#
#   scripts/build_and_push.sh --region us-west-2 [--profile NAME] [--repository spotlake-assets] [--tag TAG]
#   scripts/build_and_push.sh --image-uri 123456789012.dkr.ecr.us-west-2.amazonaws.com/spotlake-assets:v1
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: scripts/build_and_push.sh [options]

  --region REGION        AWS region of the ECR repository (or AWS_REGION)
  --profile NAME         AWS CLI profile (or AWS_PROFILE)
  --repository NAME      ECR repository, created if missing (default: spotlake-assets)
  --tag TAG              image tag (default: the current git commit, short)
  --image-uri URI        full image URI instead of --repository/--tag (its registry must be ECR)
  --platform PLATFORMS   build platforms (default: linux/amd64,linux/arm64: one multi-arch image for x86
                         and Graviton Batch hosts and Fargate tasks)
  --dry-run              print the commands instead of running them
  -h, --help             this help
EOF
}

region="${AWS_REGION:-}"
profile="${AWS_PROFILE:-}"
repository="spotlake-assets"
tag=""
image_uri=""
platform="linux/amd64,linux/arm64"
dry_run=false

while [[ $# -gt 0 ]]; do
  case "$1" in
    --region) region="$2"; shift 2 ;;
    --profile) profile="$2"; shift 2 ;;
    --repository) repository="$2"; shift 2 ;;
    --tag) tag="$2"; shift 2 ;;
    --image-uri) image_uri="$2"; shift 2 ;;
    --platform) platform="$2"; shift 2 ;;
    --dry-run) dry_run=true; shift ;;
    -h | --help) usage; exit 0 ;;
    *) echo "unknown option: $1" >&2; usage >&2; exit 2 ;;
  esac
done

[[ -n "$region" ]] || { echo "--region (or AWS_REGION) is required" >&2; exit 2; }
cd "$(dirname "$0")/.."

run() {
  if $dry_run; then
    printf '%q ' "$@"
    printf '\n'
  else
    "$@"
  fi
}

aws_cli=(aws --region "$region")
[[ -n "$profile" ]] && aws_cli+=(--profile "$profile")

if [[ -z "$image_uri" ]]; then
  if $dry_run; then
    account="123456789012"
  else
    account="$("${aws_cli[@]}" sts get-caller-identity --query Account --output text)"
  fi
  tag="${tag:-$(git rev-parse --short HEAD 2>/dev/null || date -u +%Y%m%d%H%M%S)}"
  image_uri="${account}.dkr.ecr.${region}.amazonaws.com/${repository}:${tag}"
fi
registry="${image_uri%%/*}"
repository_name="${image_uri#*/}"
repository_name="${repository_name%%[:@]*}"

# Immutable tags and scan on push: a tag always names the image that was tested and deployed.
if $dry_run || ! "${aws_cli[@]}" ecr describe-repositories --repository-names "$repository_name" >/dev/null 2>&1; then
  run "${aws_cli[@]}" ecr create-repository --repository-name "$repository_name" \
    --image-tag-mutability IMMUTABLE --image-scanning-configuration scanOnPush=true \
    --encryption-configuration encryptionType=KMS
fi

# A multi-platform image exists only as a manifest list in a registry: log in first, then build every platform
# with buildx and push in the same step (a local `docker push` cannot carry a manifest list).
if $dry_run; then
  printf 'aws ecr get-login-password | docker login --username AWS --password-stdin %q\n' "$registry"
else
  "${aws_cli[@]}" ecr get-login-password | docker login --username AWS --password-stdin "$registry"
fi
run docker buildx build --platform "$platform" --tag "$image_uri" --provenance=false --push .

if $dry_run; then
  echo "image: ${image_uri}"
else
  # The manifest list's digest: one reference for every platform, pinned in the job definition.
  digest="$(docker buildx imagetools inspect "$image_uri" --format '{{json .Manifest.Digest}}' | tr -d '"')"
  echo "image: ${image_uri%%[:@]*}@${digest}"
fi
