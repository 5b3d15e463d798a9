#!/usr/bin/env bash
# Fuzzes the HTTP API from its own /openapi.json with schemathesis, as a
# client would: every check, the admin token, a fixed seed and a bounded
# number of examples per operation (issue 10). It starts a private platform
# (the debug binaries, its own nats-server, SQLite in a temp dir, random
# ports) and stops it afterwards. scripts/test.sh runs it after the tests.
#   FUZZ_EXAMPLES   examples per operation (default 40)
#   FUZZ_SEED       the seed (default 20261203)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

ensure_nats_server
ensure_schemathesis
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/debug"
if ! [ -x "$BIN/giftcode-svc" ] || ! [ -x "$BIN/wallet-svc" ] || ! [ -x "$BIN/gateway-svc" ]; then
  say "building the services (debug)"
  cargo build --quiet -p giftcode-svc -p wallet-svc -p gateway-svc
fi

work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
NP=$(port); GP=$(port); TOKEN="fuzz-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"

"$NATS_SERVER_BIN" -a 127.0.0.1 -p "$NP" -js -sd "$work/js" >"$work/nats.log" 2>&1 &
pids+=($!)
export NATS_URL="nats://127.0.0.1:$NP" RUST_LOG=warn
GIFTCODE_DATABASE_URL="sqlite://$work/giftcode.db" GIFTCODE_HTTP_ADDR="127.0.0.1:$(port)" \
  "$BIN/giftcode-svc" >"$work/giftcode.log" 2>&1 &
pids+=($!)
WALLET_DATABASE_URL="sqlite://$work/wallet.db" WALLET_HTTP_ADDR="127.0.0.1:$(port)" \
  "$BIN/wallet-svc" >"$work/wallet.log" 2>&1 &
pids+=($!)
GATEWAY_HTTP_ADDR="127.0.0.1:$GP" GATEWAY_ADMIN_TOKEN="$TOKEN" \
  "$BIN/gateway-svc" >"$work/gateway.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 300); do
  curl -fsS -o /dev/null "http://127.0.0.1:$GP/readyz" 2>/dev/null && break
  sleep 0.2
done
curl -fsS -o /dev/null "http://127.0.0.1:$GP/readyz" || die "the platform did not become ready (logs: $work)"

# Data for the routes that name a resource, so that their examples reach the
# API's logic instead of stopping at a 404: a wallet holding 10^12 (the
# hooks keep debits small), a group with its codes, and one redemption.
api() { curl -sS -X "$1" "http://127.0.0.1:$GP/api/v1$2" -H "Authorization: Bearer $TOKEN" \
          -H 'Content-Type: application/json' "${@:3}"; }
api POST /wallets/%2B14155552671/credits -H 'Idempotency-Key: fuzz-seed' -d '{"amount": 1000000000000}' >/dev/null
group=$(api POST /gift-groups -d '{"name": "fuzz", "kind": "unique", "amount": 100, "count": 3}')
field() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
group_id=$(printf '%s' "$group" | field 'd["id"]')
code=$(printf '%s' "$group" | field 'd["codes"][0]')
redemption=$(api POST /redemptions -d "{\"code\": \"$code\", \"phone\": \"+14155550100\"}" | field 'd["id"]')
config="$work/schemathesis.toml"
cat >"$config" <<TOML
[cache]
enabled = false

# Creating a group has rules JSON Schema cannot state: an expiry lies in the
# future and after the start; which fields go with which kind. A request
# that breaks one is answered 422 validation_failed naming the field, as the
# document says; the hooks make most valid examples follow them, but the
# examples schemathesis builds from every property's bounds do not pass
# through hooks. Every other check, and every other status, still applies.
# Stateful runs follow links found by dependency analysis. The Location
# header inference of this version links POST /gift-groups to
# GET /wallets/{phone} (by shape, not by name) and stops with an error.
[phases.stateful.inference]
algorithms = ["dependency-analysis"]

[[operations]]
include-path = "/api/v1/gift-groups"
include-method = "POST"
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "404", "409", "422", "429", "5xx"]

[[operations]]
include-path-regex = "/wallets/\\\\{phone\\\\}"
parameters = { "path.phone" = "+14155552671" }

[[operations]]
include-path-regex = "^/api/v1/gift-groups/\\\\{id\\\\}"
parameters = { "path.id" = "$group_id" }

[[operations]]
include-path = "/api/v1/gift-codes/{code}"
parameters = { "path.code" = "$code" }

[[operations]]
include-path = "/api/v1/redemptions/{id}"
parameters = { "path.id" = "$redemption" }
TOML

report="${CARGO_TARGET_DIR:-$ROOT/target}/schemathesis"
mkdir -p "$report"
say "schemathesis: every check against http://127.0.0.1:$GP/openapi.json"
status=0
PYTHONPATH="$ROOT/scripts" SCHEMATHESIS_HOOKS="${FUZZ_HOOKS:-fuzz_hooks}" \
  "$TOOLS/schemathesis/bin/st" --config-file "$config" run "http://127.0.0.1:$GP/openapi.json" \
    --header "Authorization: Bearer $TOKEN" \
    --checks all \
    --seed "${FUZZ_SEED:-20261203}" \
    --max-examples "${FUZZ_EXAMPLES:-40}" \
    --workers 1 \
    --report junit --report-dir "$report" \
    --output-sanitize true ${FUZZ_ARGS:-} || status=$?
if grep -h -E "panicked|ERROR" "$work"/*.log >/dev/null 2>&1; then
  say "service logs with errors:"; grep -h -E "panicked|ERROR" "$work"/*.log | head -20 >&2
fi
exit "$status"
