#!/usr/bin/env bash
# Starts the platform on its embedded defaults: nats-server with nats.conf and
# the services on SQLite files under data/. Ctrl-C stops everything cleanly.
# Each service connects as its own NATS user (nats-users.conf) with a password
# made for this run; people use the `ops` user (data/nats-ops.env).
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

# The NATS users' passwords: yours if set (letters and digits, starting with a
# letter), else fresh ones for this run. nats-server reads them from its
# environment; each service gets only its own, as NATS_USER/NATS_PASSWORD.
rand_password() { printf 'p%s' "$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"; }
for var in GIFTCODE_NATS_PASSWORD WALLET_NATS_PASSWORD GATEWAY_NATS_PASSWORD OPS_NATS_PASSWORD; do
  [ -n "${!var:-}" ] || printf -v "$var" '%s' "$(rand_password)"
  [[ ${!var} =~ ^[A-Za-z][A-Za-z0-9]*$ ]] || die "$var: use letters and digits only, starting with a letter"
  export -n "$var"
done
unset NATS_USER NATS_PASSWORD NATS_CREDS

mkdir -p data/logs
# For people: `source data/nats-ops.env`, then the nats CLI or scripts/bus.py.
OPS_ENV=data/nats-ops.env
(umask 077 && cat >"$OPS_ENV" <<ENV
# The NATS ops user of the platform that scripts/run.sh is running (removed
# when it stops; the password is new each run). Read by the nats CLI and bus.py.
export NATS_USER=ops
export NATS_PASSWORD=$OPS_NATS_PASSWORD
ENV
)
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
  rm -f "$OPS_ENV"
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
# (Passwords go in the environment, never on a command line.)
GIFTCODE_NATS_PASSWORD=$GIFTCODE_NATS_PASSWORD WALLET_NATS_PASSWORD=$WALLET_NATS_PASSWORD \
GATEWAY_NATS_PASSWORD=$GATEWAY_NATS_PASSWORD OPS_NATS_PASSWORD=$OPS_NATS_PASSWORD \
  setsid "$NATS_SERVER_BIN" -c nats.conf >data/logs/nats.log 2>&1 &
pids+=($!)
wait_url "http://127.0.0.1:8222/healthz?js-enabled-only=true" nats-server

NATS_USER=giftcode NATS_PASSWORD=$GIFTCODE_NATS_PASSWORD \
  setsid ./target/release/giftcode-svc >data/logs/giftcode-svc.log 2>&1 &
pids+=($!)
NATS_USER=wallet NATS_PASSWORD=$WALLET_NATS_PASSWORD \
  setsid ./target/release/wallet-svc >data/logs/wallet-svc.log 2>&1 &
pids+=($!)
wait_url "http://127.0.0.1:8082/readyz" giftcode-svc
wait_url "http://127.0.0.1:8081/readyz" wallet-svc

# The admin token: yours if GATEWAY_ADMIN_TOKEN is set, else a fresh one.
export GATEWAY_ADMIN_TOKEN="${GATEWAY_ADMIN_TOKEN:-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')}"
NATS_USER=gateway NATS_PASSWORD=$GATEWAY_NATS_PASSWORD \
  setsid ./target/release/gateway-svc >data/logs/gateway-svc.log 2>&1 &
pids+=($!)
wait_url "http://127.0.0.1:8080/readyz" gateway-svc

cat <<TXT

  The platform is up (logs in data/logs/, data in data/):
    gateway-svc   http://127.0.0.1:8080/api/v1   (ready: http://127.0.0.1:8080/readyz)
    console       http://127.0.0.1:8080/console/ (sign in with the admin token)
    giftcode-svc  NATS service 'giftcode'        health http://127.0.0.1:8082/readyz
    wallet-svc    NATS service 'wallet'          health http://127.0.0.1:8081/readyz
    nats-server   nats://127.0.0.1:4222          monitoring http://127.0.0.1:8222

  Admin token: $GATEWAY_ADMIN_TOKEN
  NATS: users giftcode, wallet, gateway (one per service) and ops (for you),
        ops password $OPS_NATS_PASSWORD (new each run; anonymous clients are refused)

  Try it:
    export TOKEN=$GATEWAY_ADMIN_TOKEN
    curl -s -X POST localhost:8080/api/v1/gift-groups -H "Authorization: Bearer \$TOKEN" \\
         -H 'Content-Type: application/json' -d '{"name":"Launch","kind":"unique","amount":500,"count":3}'
    curl -s -X POST localhost:8080/api/v1/redemptions -H 'Content-Type: application/json' \\
         -d '{"code":"<a code from above>","phone":"+14155552671"}'

  Watch the bus as ops (the nats CLI and scripts/bus.py read NATS_USER/NATS_PASSWORD):
    source $OPS_ENV
    nats sub 'giftcode.events.>'     or  python3 scripts/bus.py sub 'giftcode.events.>'
    nats micro ls                    or  python3 scripts/bus.py micro

  Ctrl-C stops everything.
TXT
wait -n "${pids[@]}" || true
say "a process exited unexpectedly; see data/logs/ (stopping the rest)"
exit 1
