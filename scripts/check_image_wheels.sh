#!/usr/bin/env bash
# Proves the multi-arch image can be built without a compiler: every package the Dockerfile installs
# (the project's pinned dependencies and infra/image-requirements.txt) resolves to a binary wheel for each
# platform of scripts/build_and_push.sh. Needs only pip and the package index; downloads to a temp dir.
#
#   scripts/check_image_wheels.sh [x86_64 aarch64]
set -euo pipefail
cd "$(dirname "$0")/.."
pip="${PIP:-.venv/bin/pip}"
arches=("$@")
[ ${#arches[@]} -gt 0 ] || arches=(x86_64 aarch64)
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
for arch in "${arches[@]}"; do
  "$pip" download --quiet --disable-pip-version-check --only-binary=:all: \
    --platform "manylinux2014_${arch}" --platform "manylinux_2_17_${arch}" --platform "manylinux_2_28_${arch}" \
    --python-version 3.11 --implementation cp -c constraints.txt -r infra/image-requirements.txt . \
    -d "$scratch/$arch" 2> >(grep -v '^WARNING: Location' >&2) >/dev/null
  echo "$arch: $(ls "$scratch/$arch" | wc -l) wheels, $(ls "$scratch/$arch" | grep -c "_${arch}" || true) of them native ${arch}"
done
