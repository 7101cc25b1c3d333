#!/usr/bin/env bash
# test.sh runs every test for `make test`. Unless AMRD_TEST_DATABASE_URL points at a
# TimescaleDB already (a superuser URL: tests create and drop their own databases), it
# starts a throw-away local cluster on a free loopback port and removes it afterwards,
# whatever happened.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$here/.."

if [ -z "${AMRD_TEST_DATABASE_URL:-}" ]; then
  name=test-$$
  port=55500
  while (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do port=$((port + 1)); done
  trap 'bash "$here/tsdb.sh" destroy "$name"' EXIT
  trap 'exit 130' INT TERM
  t0=$SECONDS
  AMRD_TEST_DATABASE_URL=$(bash "$here/tsdb.sh" start "$name" "$port")
  export AMRD_TEST_DATABASE_URL
  echo "test: throw-away TimescaleDB $name on 127.0.0.1:$port ready in $((SECONDS - t0)) s"
fi

go vet ./...
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
  echo "test: gofmt would change: $unformatted" >&2
  exit 1
fi
# -race: the pipelines are concurrent; the detector costs about 2-5x, well inside CI's time.
go test -race -count=1 -timeout 30m ${GOTESTFLAGS:-} ./...
