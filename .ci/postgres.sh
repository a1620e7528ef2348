#!/usr/bin/env bash
# Install (Debian's package, if missing) and start a throwaway PostgreSQL on 127.0.0.1 for the
# tests, then print its admin URL. Usage: export SENTIMENT_POSTGRES_URL=$(bash .ci/postgres.sh)
# Password authentication (user postgres, password postgres), so a wrong password is refused.
set -euo pipefail
port=${SENTIMENT_PG_PORT:-55432}
data=${SENTIMENT_PG_DIR:-/tmp/sentiment-postgres}
if ! ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql) >&2
fi
bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
as_postgres() {  # initdb refuses to run as root
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
if [ ! -f "$data/PG_VERSION" ]; then
  mkdir -p "$data"
  pwfile=$(mktemp)
  echo postgres > "$pwfile"
  if [ "$(id -u)" = 0 ]; then chown postgres "$data" "$pwfile"; fi
  as_postgres "$bin/initdb" -D "$data" -A scram-sha-256 -U postgres --pwfile="$pwfile" >&2
  rm -f "$pwfile"
fi
if ! as_postgres "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1; then
  as_postgres "$bin/pg_ctl" -D "$data" -l "$data/server.log" -w \
    -o "-p $port -k $data -c listen_addresses=127.0.0.1 -c max_connections=200" start >&2
fi
echo "postgresql://postgres:postgres@127.0.0.1:$port/postgres"
