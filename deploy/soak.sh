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
  . "$here/throwaway.sh"
  throwaway "soak-$$" 25800 AMRD_SOAK_DATABASE_URL
fi
"$bin" soak "$@"
