#!/usr/bin/env bash
# bench.sh runs `make bench`: a throw-away TimescaleDB with durable settings (fsync on,
# unlike the test clusters, so that commit costs are real), then `amrd bench` (the
# ingestion cases, then the read cases on a month of 1,000 meters: about 15 minutes on 2
# cores; `make bench BENCHFLAGS="-only r1,r3"` runs some cases alone), then the cluster is
# removed whatever happened.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=${1:?usage: bench.sh BIN [amrd bench flags]}
shift
if [ -z "${AMRD_BENCH_DATABASE_URL:-}" ]; then
  . "$here/throwaway.sh"
  throwaway "bench-$$" 25700 AMRD_BENCH_DATABASE_URL
fi
"$bin" bench "$@"
