#!/bin/sh
# Container health for the one SpotLake Assets image, whatever role it runs (Dockerfile HEALTHCHECK and the
# ECS task definitions' healthCheck): the probe follows the command of PID 1.
#   code server  `dagster api grpc ...`      -> dagster api grpc-health-check on its port
#   webserver    `dagster-webserver ...`     -> GET /server_info on its port
#   daemon       `dagster-daemon run ...`    -> dagster-daemon liveness-check (recent heartbeats)
#   run worker   `dagster api execute_run`  -> healthy (Batch watches the process; it has no endpoint)
# SPOTLAKE_HEALTHCHECK_CMDLINE overrides what PID 1 runs and --dry-run prints the probe (tests).
set -eu

dry_run=false
[ "${1:-}" = "--dry-run" ] && dry_run=true

if [ -n "${SPOTLAKE_HEALTHCHECK_CMDLINE:-}" ]; then
  cmdline="$SPOTLAKE_HEALTHCHECK_CMDLINE"
else
  cmdline="$(tr '\0' ' ' < /proc/1/cmdline)"
fi

# The value after "--port" in the command line, else the given default.
port_of() {
  port="$(printf '%s\n' "$cmdline" | sed -n 's/.*--port[ =]\([0-9][0-9]*\).*/\1/p')"
  echo "${port:-$1}"
}

probe() {
  if $dry_run; then
    echo "$*"
  else
    exec "$@"
  fi
}

case "$cmdline" in
  *" api grpc "*|*" api grpc")
    probe dagster api grpc-health-check --port "$(port_of 4000)" ;;
  *dagster-webserver*)
    probe python -c "import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=10)" \
      "http://127.0.0.1:$(port_of 3000)/server_info" ;;
  *"dagster-daemon run"*)
    probe dagster-daemon liveness-check ;;
  *)
    probe true ;;
esac
