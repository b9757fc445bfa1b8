#!/usr/bin/env bash
# The official postgres image's first-start contract, for docker/postgres.Dockerfile: on an
# empty $PGDATA, initdb with POSTGRES_USER as the superuser and POSTGRES_PASSWORD (required),
# create POSTGRES_DB, accept password logins from the network; then run the command (postgres).
set -euo pipefail

if [[ ! -s $PGDATA/PG_VERSION ]]; then
  : "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD must be set (the official image refuses to start without it too)}"
  user=${POSTGRES_USER:-postgres}
  database=${POSTGRES_DB:-$user}
  password_file=$(mktemp)
  printf '%s\n' "$POSTGRES_PASSWORD" >"$password_file"
  initdb --username="$user" --pwfile="$password_file" --auth-local=trust \
    --auth-host=scram-sha-256 --encoding=UTF8 >/dev/null
  rm -f "$password_file"
  echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
  echo "listen_addresses = '*'" >>"$PGDATA/postgresql.conf"
  if [[ $database != postgres ]]; then
    # A private socket: nothing can connect before the database exists.
    pg_ctl -w -o "-c listen_addresses='' -k /tmp" start >/dev/null
    createdb -h /tmp -U "$user" "$database"
    pg_ctl -w stop -m fast >/dev/null
  fi
  echo "postgres-entrypoint: initialised $PGDATA (user $user, database $database)"
fi
exec "$@"
