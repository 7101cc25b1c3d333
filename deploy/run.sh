#!/usr/bin/env bash
# run.sh starts amrd for `make run`: with DATABASE_URL unset it provisions and starts a
# local TimescaleDB (deploy/tsdb.sh) and keeps a SECRET_KEY beside it, then migrates,
# creates a first staff user when the database has none, and serves.
set -euo pipefail
bin=${1:?usage: run.sh BIN}
here=$(cd "$(dirname "$0")" && pwd)
cache=${AMRD_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/amrd}

if [ -z "${DATABASE_URL:-}" ]; then
  DATABASE_URL=$(bash "$here/tsdb.sh" start run "${PG_PORT:-55432}")
  export DATABASE_URL
  echo "run: local TimescaleDB on 127.0.0.1:${PG_PORT:-55432} (stop it with: make db-stop)"
fi
if [ -z "${SECRET_KEY:-}" ]; then
  # One key per machine, kept so that JWTs and encrypted keys survive restarts.
  mkdir -p "$cache"
  if [ ! -s "$cache/secret_key" ]; then
    (umask 077; head -c 48 /dev/urandom | base64 | tr -d '\n' >"$cache/secret_key")
  fi
  SECRET_KEY=$(cat "$cache/secret_key")
  export SECRET_KEY
fi
"$bin" migrate
"$bin" bootstrap
exec "$bin" serve
