#!/usr/bin/env bash
# The reliability suite on its own (issue 5, RELIABILITY.md):
#   ./scripts/reliability.sh            CI size (what ./scripts/test.sh runs)
#   ./scripts/reliability.sh full       the sizes of the issue (a few minutes)
#   ./scripts/reliability.sh full kill9 one scenario (a test-name filter)
# Builds the service binaries the scenarios start, installs nats-server and
# PostgreSQL when missing, and prints each scenario's figures (also written to
# target/tmp/reliability-<scenario>.txt).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

scale="${1:-ci}"
case "$scale" in
  ci|full) ;;
  *) die "usage: $0 [ci|full] [test-name filter]" ;;
esac
shift || true
command -v cargo >/dev/null || die "cargo not found: install the Rust toolchain (https://rustup.rs)"
ensure_nats_server
ensure_postgres
say "building the services"
cargo build --workspace --quiet
say "reliability suite at $scale size"
RELIABILITY_SCALE="$scale" cargo test -p reliability --test faults -- --nocapture "$@"
