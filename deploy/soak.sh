#!/usr/bin/env bash
# soak.sh runs `make soak`: a throw-away TimescaleDB with durable settings (fsync on, as
# make bench's), then `amrd soak` (amrd serve under steady mixed traffic, then its
# checks), then the cluster is removed whatever happened. The exit status is amrd
# soak's: non-zero when a check failed.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=${1:?usage: soak.sh BIN [amrd soak flags]}
shift
if [ -z "${AMRD_SOAK_DATABASE_URL:-}" ]; then
  name=soak-$$
  port=25800
  while (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do port=$((port + 1)); done
  trap 'bash "$here/tsdb.sh" destroy "$name"' EXIT
  trap 'exit 130' INT TERM
  AMRD_SOAK_DATABASE_URL=$(bash "$here/tsdb.sh" start "$name" "$port")
  export AMRD_SOAK_DATABASE_URL
fi
"$bin" soak "$@"
