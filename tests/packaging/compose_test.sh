#!/usr/bin/env bash
# Checks that docker/compose.yaml is valid (Debian's docker-compose renders it; no Docker
# engine is needed for `config`) and keeps what operators rely on: the service on port 50051,
# its healthcheck through classifier-cli, restart policy, named volumes, and the one-shot
# fetch-data service. Exits 0 on success, 1 on failure, 77 (skipped) without docker-compose.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

if ! command -v docker-compose >/dev/null 2>&1; then
  echo "SKIP: docker-compose not installed (scripts/install-deps.sh installs it)"
  exit 77
fi

compose=(docker-compose -f "${CLASSIFIER_COMPOSE_FILE:-docker/compose.yaml}")
out=$("${compose[@]}" config) || { echo "FAIL: docker-compose config rejected ${compose[2]}"; exit 1; }
services=$("${compose[@]}" --profile tools config --services) || {
  echo "FAIL: docker-compose --profile tools config --services failed"
  exit 1
}

failures=0
expect() {  # expect DESCRIPTION EXTENDED_REGEX [TEXT]
  if grep -Eq -- "$2" <<<"${3:-$out}"; then
    echo "ok: $1"
  else
    echo "FAIL: $1 (no line matching /$2/)"
    failures=$((failures + 1))
  fi
}
# The healthcheck's test, as rendered: one list item per line after `test:`.
health=$(awk '/^ *healthcheck:/{h=1} h&&/^ *test:/{t=1;next} t&&/^ *- /{print;next} t{exit}' <<<"$out" | tr -d ' -' | tr '\n' ' ')

expect "service classifier" '^  classifier:$'
expect "port 50051 published" '(published: 50051|50051:50051)'
expect "port 50051 targeted" '(target: 50051|:50051$)'
expect "healthcheck present" '^ *healthcheck:$'
expect "healthcheck runs classifier-cli --server 127.0.0.1:50051 health" \
  'classifiercli server 127\.0\.0\.1:50051 health' "$health"
expect "restart unless-stopped" 'restart: unless-stopped'
expect "state volume" 'classifier-state:/var/lib/classifier/state'
expect "data volume" 'classifier-data:/var/lib/classifier/data'
expect "built from the repository's Dockerfile" 'dockerfile: Dockerfile'
expect "fetch-data service" '^fetch-data$' "$services"
expect "fetch-data runs classifier-fetch-data" 'classifier-fetch-data'

if ((failures)); then
  echo "compose_test: $failures check(s) failed"
  exit 1
fi
echo "compose_test: all checks passed"
