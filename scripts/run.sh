#!/usr/bin/env bash
# Starts the platform on its embedded defaults: nats-server with nats.conf and
# the services on SQLite files under data/. Ctrl-C stops everything cleanly.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

command -v cargo >/dev/null || die "cargo not found: install the Rust toolchain (https://rustup.rs)"
command -v curl >/dev/null || die "curl not found: apt-get install curl"
ensure_nats_server

for port in 4222 8222 8080 8081 8082; do
  if (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null; then
    die "port $port is already in use (is the platform already running?)"
  fi
done

say "building the services (release; the first build takes a few minutes)"
cargo build --release --quiet -p giftcode-svc -p wallet-svc -p gateway-svc

mkdir -p data/logs
pids=()
stop() {
  trap - INT TERM EXIT
  # Output may go to a pipe that Ctrl-C just closed: never die of SIGPIPE
  # before the services are stopped.
  trap '' PIPE
  [ ${#pids[@]} -gt 0 ] || return 0
  say "stopping" || true
  # Services first (SIGTERM drains them), the broker last.
  for ((i=${#pids[@]}-1; i>=0; i--)); do
    kill -TERM "${pids[$i]}" 2>/dev/null || true
    wait "${pids[$i]}" 2>/dev/null || true
  done
  say "stopped" || true
}
trap 'stop; exit 0' INT TERM
trap stop EXIT

wait_url() { # url, name
  for _ in $(seq 1 150); do
    curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
    sleep 0.2
  done
  die "$2 did not become ready; see data/logs/"
}

# Each process runs in its own session: Ctrl-C reaches this script only, which
# then stops the services before the broker they drain into.
setsid "$NATS_SERVER_BIN" -c nats.conf >data/logs/nats.log 2>&1 &
pids+=($!)
wait_url "http://127.0.0.1:8222/healthz?js-enabled-only=true" nats-server

setsid ./target/release/giftcode-svc >data/logs/giftcode-svc.log 2>&1 &
pids+=($!)
setsid ./target/release/wallet-svc >data/logs/wallet-svc.log 2>&1 &
pids+=($!)
wait_url "http://127.0.0.1:8082/readyz" giftcode-svc
wait_url "http://127.0.0.1:8081/readyz" wallet-svc

# The admin token: yours if GATEWAY_ADMIN_TOKEN is set, else a fresh one.
export GATEWAY_ADMIN_TOKEN="${GATEWAY_ADMIN_TOKEN:-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')}"
setsid ./target/release/gateway-svc >data/logs/gateway-svc.log 2>&1 &
pids+=($!)
wait_url "http://127.0.0.1:8080/readyz" gateway-svc

cat <<TXT

  The platform is up (logs in data/logs/, data in data/):
    gateway-svc   http://127.0.0.1:8080/api/v1   (ready: http://127.0.0.1:8080/readyz)
    giftcode-svc  NATS service 'giftcode'        health http://127.0.0.1:8082/readyz
    wallet-svc    NATS service 'wallet'          health http://127.0.0.1:8081/readyz
    nats-server   nats://127.0.0.1:4222          monitoring http://127.0.0.1:8222

  Admin token: $GATEWAY_ADMIN_TOKEN

  Try it:
    export TOKEN=$GATEWAY_ADMIN_TOKEN
    curl -s -X POST localhost:8080/api/v1/gift-groups -H "Authorization: Bearer \$TOKEN" \\
         -H 'Content-Type: application/json' -d '{"name":"Launch","kind":"unique","amount":500,"count":3}'
    curl -s -X POST localhost:8080/api/v1/redemptions -H 'Content-Type: application/json' \\
         -d '{"code":"<a code from above>","phone":"+14155552671"}'

  Ctrl-C stops everything.
TXT
wait -n "${pids[@]}" || true
say "a process exited unexpectedly; see data/logs/ (stopping the rest)"
exit 1
