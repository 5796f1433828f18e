#!/usr/bin/env bash
# Run a command against a throwaway PostgreSQL 15 cluster:
#   bash scripts/with-postgres.sh .venv/bin/pytest tests/registry -m postgres_ok
# Starts initdb + pg_ctl as the postgres user (no systemd needed) on a private port and
# socket directory with fsync off, exports TRUSTLOAD_TEST_DATABASE_URL
# (postgresql+psycopg://...), runs "$@", and always tears the cluster down (even when
# the command fails or is interrupted). Exit status: the command's.
set -euo pipefail

PGBIN="${PGBIN:-}"
if [[ -z "$PGBIN" ]]; then
  for candidate in /usr/lib/postgresql/15/bin /usr/lib/postgresql/*/bin; do
    if [[ -x "$candidate/initdb" ]]; then PGBIN="$candidate"; break; fi
  done
fi
if [[ -z "$PGBIN" || ! -x "$PGBIN/initdb" ]]; then
  echo "with-postgres: no PostgreSQL server binaries (apt-get install postgresql)" >&2
  exit 2
fi
if [[ $# -eq 0 ]]; then
  echo "usage: with-postgres.sh COMMAND [ARGS...]" >&2
  exit 2
fi

WORK="$(mktemp -d /tmp/trustload-pg.XXXXXX)"
DATA="$WORK/data"
SOCK="$WORK/sock"
mkdir -p "$SOCK"
PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')"
PASSWORD="$(python3 -c 'import secrets; print(secrets.token_hex(16))')"

as_postgres() {
  if [[ "$(id -u)" -eq 0 ]]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

if [[ "$(id -u)" -eq 0 ]]; then
  chown -R postgres:postgres "$WORK"
fi
chmod 700 "$WORK"

cleanup() {
  local status=$?
  as_postgres "$PGBIN/pg_ctl" -D "$DATA" -m immediate -w stop >/dev/null 2>&1 || true
  rm -rf "$WORK"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

printf '%s\n' "$PASSWORD" > "$WORK/pwfile"
[[ "$(id -u)" -eq 0 ]] && chown postgres:postgres "$WORK/pwfile"
as_postgres "$PGBIN/initdb" -D "$DATA" -U trustload --pwfile="$WORK/pwfile" \
  --auth-local=trust --auth-host=scram-sha-256 -E UTF8 --no-sync >/dev/null
rm -f "$WORK/pwfile"
as_postgres "$PGBIN/pg_ctl" -D "$DATA" -l "$WORK/postgres.log" -w -t 30 \
  -o "-p $PORT -k $SOCK -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300" \
  start >/dev/null

export TRUSTLOAD_TEST_DATABASE_URL="postgresql+psycopg://trustload:${PASSWORD}@127.0.0.1:${PORT}/postgres"
echo "with-postgres: PostgreSQL $("$PGBIN/postgres" --version | awk '{print $3}') on 127.0.0.1:$PORT" >&2
set +e
"$@"
status=$?
set -e
exit "$status"
