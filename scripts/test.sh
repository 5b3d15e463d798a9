#!/usr/bin/env bash
# The whole test suite: formatting, lints, every test of every crate, then
# schemathesis against the API's own OpenAPI document (scripts/fuzz-api.sh).
# Installs nats-server (>= 2.12), PostgreSQL, Chromium (with chromedriver,
# for the console's browser test) and schemathesis when missing;
# the tests start private instances of everything, so nothing needs to be
# running.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

command -v cargo >/dev/null || die "cargo not found: install the Rust toolchain (https://rustup.rs)"
ensure_nats_server
ensure_postgres
ensure_chromium
say "nats-server: $("$NATS_SERVER_BIN" --version) ($NATS_SERVER_BIN)"
say "PostgreSQL: $("$PG_BIN_DIR/postgres" --version)"
say "Chromium: $(/usr/bin/chromedriver --version | cut -d' ' -f1-2) (screenshots: target/console-screenshots/)"

ensure_compose_checker
say "docker-compose.yml against the Compose Specification"
NODE_PATH="$TOOLS/compose/node_modules" node scripts/check-compose.js docker-compose.yml

# One-shot builds gain nothing from incremental caches, which were a quarter
# of target/ (1.5 GiB of 6); set CARGO_INCREMENTAL=1 to keep them.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
ensure_disk_space 2

say "cargo fmt --check"
cargo fmt --all -- --check
say "cargo clippy"
cargo clippy --workspace --all-targets --quiet -- -D warnings
say "cargo test"
cargo test --workspace "$@"
say "the HTTP API against its own OpenAPI document (schemathesis)"
./scripts/fuzz-api.sh
