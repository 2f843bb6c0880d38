#!/usr/bin/env bash
# The OpenAPI document against a live latchkey: validated by openapi-spec-validator, then
# schemathesis generates requests for every operation from the document itself and checks that
# no answer is a server error and that every answer (status, content type, body) is one the
# document describes. Both tools come from PyPI; the server runs on 127.0.0.1 on a fresh
# SQLite database and is stopped at the end. Bounded: about three minutes.
set -euo pipefail
cd "$(dirname "$0")/../.."

BIN="${LATCHKEY_BIN:-${CARGO_TARGET_DIR:-target}/debug/latchkey}"
EXAMPLES="${OPENAPI_MAX_EXAMPLES:-40}"
venv=/var/tmp/latchkey-openapi
if [ ! -x "$venv/bin/schemathesis" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check \
    schemathesis==4.32.5 openapi-spec-validator==0.7.2
fi

dir="$(mktemp -d)"
port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
base="http://127.0.0.1:$port"
export LATCHKEY_DATABASE_URL="sqlite://$dir/latchkey.db?mode=rwc"
export LATCHKEY_BIND="127.0.0.1:$port"
# Generated requests come fast; limits would answer most of them 429 before any logic runs.
export LATCHKEY_RATE_LIMITS=off
# Registration open, so generated registrations reach the code behind the endpoint.
export LATCHKEY_CLIENT_REGISTRATION=open

echo "correct horse battery" | "$BIN" user create --email api@example.com --name "API Tester" >/dev/null
json() { python3 -c "import json, sys; print(json.load(sys.stdin)$1)"; }
pat="$("$BIN" pat create --email api@example.com --scopes "apps profile read project:read" --json | json "['token']")"
client="$("$BIN" client create --owner api@example.com --name "Resource server" --redirect-uri https://rs.example/cb --scopes "profile read" --json)"
client_id="$(echo "$client" | json "['client_id']")"
client_secret="$(echo "$client" | json "['client_secret']")"

"$BIN" serve >"$dir/server.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true; rm -rf "$dir"' EXIT
for _ in $(seq 1 100); do
  curl -sf "$base/healthz" >/dev/null 2>&1 && break
  sleep 0.1
done
api_key="$(curl -sf -H "Authorization: Bearer $pat" "$base/api/v1/authenticated/api_keys" | json "['token']")"

echo "== openapi-spec-validator"
curl -sf "$base/api/openapi.json" -o "$dir/openapi.json"
"$venv/bin/openapi-spec-validator" "$dir/openapi.json"

checks=not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance
run() {
  echo "== schemathesis: $1"
  shift
  # From the scratch directory: schemathesis keeps its cache in `.schemathesis/` where it runs.
  (cd "$dir" && timeout 600 "$venv/bin/schemathesis" run "$base/api/openapi.json" --url "$base" \
    --checks "$checks" --max-examples "$EXAMPLES" --request-timeout 10 \
    --no-color --warnings off "$@")
}
# Every operation with the user's personal access token (the client and activity APIs).
run "every operation, as a user" -H "Authorization: Bearer $pat"
# Heartbeats with the user's API key, as editor plugins send them.
run "heartbeat ingestion, with the API key" --include-path-regex 'heartbeats' -H "Authorization: Bearer $api_key"
# The authorization server as a confidential app (HTTP Basic).
run "the authorization server, as an app" --include-tag oauth --auth "$client_id:$client_secret"

if grep -q "panicked" "$dir/server.log"; then
  echo "the server panicked:" >&2
  cat "$dir/server.log" >&2
  exit 1
fi
echo "== the OpenAPI document holds"
