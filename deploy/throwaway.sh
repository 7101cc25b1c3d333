# throwaway.sh is sourced by test.sh, bench.sh and soak.sh. `throwaway NAME BASE VAR`
# starts the TimescaleDB cluster NAME on the first free loopback port from BASE, puts its
# superuser URL in the exported variable VAR, and removes the cluster when the calling
# script exits, whatever happened. The ports are below 32768, outside Linux's ephemeral
# range: a port there can look free to a connect test and still be the local port of an
# outgoing connection, which PostgreSQL then cannot bind.
throwaway() {
  local name=$1 port=$2 var=$3 url
  while (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do port=$((port + 1)); done
  # Global, for the EXIT trap: it runs after this function has returned.
  throwaway_name=$name
  trap 'bash "$here/tsdb.sh" destroy "$throwaway_name"' EXIT
  trap 'exit 130' INT TERM
  url=$(bash "$here/tsdb.sh" start "$name" "$port")
  export "$var=$url"
  throwaway_port=$port
}
