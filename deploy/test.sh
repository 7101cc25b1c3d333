#!/usr/bin/env bash
# test.sh runs every test for `make test`. Unless AMRD_TEST_DATABASE_URL points at a
# TimescaleDB already (a superuser URL: tests create and drop their own databases), it
# starts a throw-away local cluster on a free loopback port and removes it afterwards,
# whatever happened.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$here/.."

# TestDocsInBrowser opens /v1/docs in headless Chromium: Debian's package, installed here
# when missing as tsdb.sh installs debootstrap. The test fails (never skips) without it.
if ! command -v chromium >/dev/null; then
  if [ "$(id -u)" != 0 ]; then
    echo "test: chromium is missing (the /v1/docs browser test needs it); run as root, or apt-get install chromium" >&2
    exit 1
  fi
  cache=${AMRD_CACHE_DIR:-${XDG_CACHE_HOME:-${HOME:-/root}/.cache}/amrd}
  mkdir -p "$cache"
  echo "test: installing chromium (apt-get) for the /v1/docs browser test"
  if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } >"$cache/apt-chromium.log" 2>&1; then
    echo "test: could not install chromium with apt-get (log: $cache/apt-chromium.log)" >&2
    echo "test: what to do: check the network to Debian's package mirror, or install chromium yourself" >&2
    exit 1
  fi
fi

if [ -z "${AMRD_TEST_DATABASE_URL:-}" ]; then
  . "$here/throwaway.sh"
  t0=$SECONDS
  throwaway "test-$$" 25500 AMRD_TEST_DATABASE_URL
  echo "test: throw-away TimescaleDB test-$$ on 127.0.0.1:$throwaway_port ready in $((SECONDS - t0)) s"
fi

go vet ./...
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
  echo "test: gofmt would change: $unformatted" >&2
  exit 1
fi
# -race: the pipelines are concurrent; the detector costs about 2-5x, well inside CI's time.
go test -race -count=1 -timeout 30m ${GOTESTFLAGS:-} ./...
