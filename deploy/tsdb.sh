#!/usr/bin/env bash
# tsdb.sh provisions and runs a local TimescaleDB for amrd on a Debian bookworm machine.
#
# Debian 12 packages PostgreSQL 15 but not TimescaleDB; Debian 13 (trixie) packages
# postgresql-17-timescaledb. Installing trixie packages into bookworm would replace libc,
# so the server lives in a trixie root file system in a cache folder outside the
# repository, entered with chroot (see docs/timescaledb-local.md of the shared docs).
#
# Usage:
#   tsdb.sh provision            build the root file system once (reused afterwards)
#   tsdb.sh start NAME PORT      start (creating if needed) cluster NAME on 127.0.0.1:PORT;
#                                prints its DATABASE_URL on stdout
#   tsdb.sh url NAME             print the DATABASE_URL of cluster NAME
#   tsdb.sh stop NAME            stop cluster NAME (no error if it is not running)
#   tsdb.sh destroy NAME         stop cluster NAME and remove its data folder
#   tsdb.sh status NAME          exit 0 if cluster NAME is running
#
# Settings: AMRD_CACHE_DIR (default ${XDG_CACHE_HOME:-$HOME/.cache}/amrd) holds the root
# file system; DEBIAN_MIRROR (default http://deb.debian.org/debian).
# Cluster NAME "test-*" is tuned for throw-away test runs (fsync off).
set -euo pipefail

CACHE_DIR=${AMRD_CACHE_DIR:-${XDG_CACHE_HOME:-${HOME:-/root}/.cache}/amrd}
ROOT=$CACHE_DIR/tsdb-rootfs
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
PGBIN=/usr/lib/postgresql/17/bin
# Data folders live inside the chroot, so the server (which runs in it) can reach them.
CLUSTERS=/var/lib/amrd

die() {
  printf 'tsdb: %s\n' "$1" >&2
  [ $# -gt 1 ] && printf 'tsdb: what to do: %s\n' "$2" >&2
  exit 1
}
log() { printf 'tsdb: %s\n' "$*" >&2; }

need_root() {
  [ "$(id -u)" = 0 ] || die "provisioning a local TimescaleDB needs root (it uses debootstrap and chroot)" \
    "run as root, or set DATABASE_URL to an existing TimescaleDB 2.x and skip local provisioning"
}

provision() {
  if [ -f "$ROOT/.amrd-ready" ]; then
    return 0
  fi
  need_root
  command -v chroot >/dev/null || die "chroot is missing" "install coreutils"
  mkdir -p "$CACHE_DIR"
  if ! command -v debootstrap >/dev/null; then
    log "installing debootstrap (apt-get)"
    if ! { apt-get update -qq && apt-get install -y -qq debootstrap; } >"$CACHE_DIR/apt-host.log" 2>&1; then
      die "could not install debootstrap with apt-get (log: $CACHE_DIR/apt-host.log)" \
        "check the network to Debian's package mirror, or install debootstrap yourself, or set DATABASE_URL"
    fi
  fi
  mkdir -p "$CACHE_DIR"
  local tmp=$ROOT.partial
  rm -rf "$tmp"
  local t0=$SECONDS
  log "building a Debian trixie root file system in $ROOT (once; about 2 minutes)"
  if ! debootstrap --variant=minbase trixie "$tmp" "$MIRROR" >"$CACHE_DIR/debootstrap.log" 2>&1; then
    die "debootstrap of Debian trixie failed (log: $CACHE_DIR/debootstrap.log)" \
      "check the network to $MIRROR (or set DEBIAN_MIRROR), or set DATABASE_URL to an existing TimescaleDB"
  fi
  # No service may start inside the chroot during package installation, and no default
  # cluster is wanted: amrd creates its own.
  printf '#!/bin/sh\nexit 101\n' >"$tmp/usr/sbin/policy-rc.d"
  chmod 755 "$tmp/usr/sbin/policy-rc.d"
  mkdir -p "$tmp/etc/postgresql-common"
  echo 'create_main_cluster = false' >"$tmp/etc/postgresql-common/createcluster.conf"
  log "installing postgresql-17-timescaledb in the root file system"
  if ! chroot "$tmp" /usr/bin/env DEBIAN_FRONTEND=noninteractive LC_ALL=C PATH=/usr/sbin:/usr/bin:/sbin:/bin \
    sh -c 'apt-get update -qq && apt-get install -y -qq --no-install-recommends postgresql-17-timescaledb' \
    >"$CACHE_DIR/apt-chroot.log" 2>&1; then
    die "installing postgresql-17-timescaledb failed (log: $CACHE_DIR/apt-chroot.log)" \
      "check the network to $MIRROR, or set DATABASE_URL to an existing TimescaleDB"
  fi
  chroot "$tmp" apt-get clean >/dev/null 2>&1 || true
  [ -x "$tmp$PGBIN/postgres" ] || die "postgres binary missing after install" "remove $tmp and retry"
  touch "$tmp/.amrd-ready"
  rm -rf "$ROOT"
  mv "$tmp" "$ROOT"
  log "root file system ready in $((SECONDS - t0)) s"
}

check_name() {
  case "$1" in
    ''|*[!A-Za-z0-9_-]*) die "cluster name '$1' must be letters, digits, - or _" ;;
  esac
}

in_root() { chroot --userspec=postgres:postgres "$ROOT" /usr/bin/env LC_ALL=C.UTF-8 HOME=/var/lib/postgresql "$@"; }

url_of() {
  local name=$1 dir=$ROOT$CLUSTERS/$1
  [ -f "$dir/amrd.url" ] || die "cluster $name has no URL file; start it first"
  cat "$dir/amrd.url"
}

start() {
  local name=$1 port=$2
  check_name "$name"
  case "$port" in ''|*[!0-9]*) die "port '$port' is not a number" ;; esac
  provision
  need_root
  local dir=$CLUSTERS/$name
  local host=$ROOT$dir
  if [ ! -f "$host/data/PG_VERSION" ]; then
    rm -rf "$host"
    mkdir -p "$host"
    chroot "$ROOT" chown postgres:postgres "$dir"
    # A random password per cluster: loopback is shared by every local user.
    local pw
    pw=$(head -c 18 /dev/urandom | base64 | tr -d '/+=' )
    printf '%s\n' "$pw" >"$host/pwfile"
    chroot "$ROOT" chown postgres:postgres "$dir/pwfile"
    chmod 600 "$host/pwfile"
    if ! in_root "$PGBIN/initdb" -D "$dir/data" -U postgres --pwfile="$dir/pwfile" \
      --auth-local=scram-sha-256 --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 >"$host/initdb.log" 2>&1; then
      die "initdb failed (log: $host/initdb.log)"
    fi
    rm -f "$host/pwfile"
    {
      echo "shared_preload_libraries = 'timescaledb'"
      echo "timescaledb.telemetry_level = off"
      echo "listen_addresses = '127.0.0.1'"
      echo "unix_socket_directories = '/tmp'"
      echo "dynamic_shared_memory_type = mmap"
      echo "max_connections = 200"
      echo "shared_buffers = 512MB"
      echo "max_wal_size = 4GB"
      echo "timezone = 'UTC'"
      echo "log_timezone = 'UTC'"
      case "$name" in
        test-*)
          # Throw-away clusters: durability is not wanted, speed is.
          echo "fsync = off"
          echo "synchronous_commit = off"
          echo "full_page_writes = off"
          ;;
      esac
    } >>"$host/data/postgresql.conf"
    printf 'postgres://postgres:%s@127.0.0.1:%s/amrd?sslmode=disable\n' "$pw" "$port" >"$host/amrd.url"
    chmod 600 "$host/amrd.url"
    echo "$port" >"$host/port"
    local fresh=1
  fi
  if [ "$(cat "$host/port" 2>/dev/null)" != "$port" ]; then
    # Same cluster, other port: rewrite the URL.
    sed -i "s/@127.0.0.1:[0-9]*\//@127.0.0.1:$port\//" "$host/amrd.url"
    echo "$port" >"$host/port"
  fi
  if ! in_root "$PGBIN/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
    if ! in_root "$PGBIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 -o "-p $port" start >/dev/null 2>&1; then
      tail -n 20 "$host/server.log" >&2 || true
      die "the TimescaleDB server of cluster $name did not start on port $port (log: $host/server.log)" \
        "if the port is taken, choose another (make run PG_PORT=...)"
    fi
  fi
  if [ "${fresh:-0}" = 1 ]; then
    PGPASSWORD=$(sed -E 's|^postgres://postgres:([^@]*)@.*|\1|' "$host/amrd.url") \
      in_root "$PGBIN/psql" -h 127.0.0.1 -p "$port" -U postgres -d postgres -qAtc 'CREATE DATABASE amrd' >/dev/null \
      || die "could not create database amrd in cluster $name"
  fi
  cat "$host/amrd.url"
}

stop() {
  local name=$1
  check_name "$name"
  local dir=$CLUSTERS/$name
  [ -f "$ROOT$dir/data/PG_VERSION" ] || return 0
  in_root "$PGBIN/pg_ctl" -D "$dir/data" status >/dev/null 2>&1 || return 0
  in_root "$PGBIN/pg_ctl" -D "$dir/data" -m fast -w -t 60 stop >/dev/null 2>&1 \
    || in_root "$PGBIN/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
}

case "${1:-}" in
  provision) provision ;;
  start) [ $# = 3 ] || die "usage: tsdb.sh start NAME PORT"; start "$2" "$3" ;;
  url) [ $# = 2 ] || die "usage: tsdb.sh url NAME"; check_name "$2"; url_of "$2" ;;
  stop) [ $# = 2 ] || die "usage: tsdb.sh stop NAME"; stop "$2" ;;
  destroy) [ $# = 2 ] || die "usage: tsdb.sh destroy NAME"; stop "$2"; check_name "$2"; rm -rf "${ROOT:?}$CLUSTERS/$2" ;;
  status) [ $# = 2 ] || die "usage: tsdb.sh status NAME"; check_name "$2"
    [ -f "$ROOT$CLUSTERS/$2/data/PG_VERSION" ] && in_root "$PGBIN/pg_ctl" -D "$CLUSTERS/$2/data" status >/dev/null 2>&1 ;;
  *) die "usage: tsdb.sh provision|start NAME PORT|url NAME|stop NAME|destroy NAME|status NAME" ;;
esac
