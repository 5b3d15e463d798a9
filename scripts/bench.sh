#!/usr/bin/env bash
# The redeem benchmark (BENCHMARKS.md): builds the release binaries, then runs
# the platform as shipped against a same-run baseline at concurrency 1, 16, 64
# and 256, and writes the figures to target/bench/redeem.{md,json}.
# Arguments go to the benchmark: ./scripts/bench.sh --help
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

command -v cargo >/dev/null || die "cargo not found: install the Rust toolchain (https://rustup.rs)"
ensure_nats_server
say "nats-server: $("$NATS_SERVER_BIN" --version) ($NATS_SERVER_BIN)"
say "cargo build --release (the services and the benchmark)"
cargo build --release --quiet --bins -p giftcode-svc -p wallet-svc -p gateway-svc -p bench
exec ./target/release/bench "$@"
