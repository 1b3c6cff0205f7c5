#!/usr/bin/env bash
# couponrush demo: replays the incident's event on this machine and shows that Redis and MySQL
# agree afterwards. The demo itself is `cargo xtask demo` (crates/xtask/src/demo); this entry
# point only makes sure a fresh Debian machine can build it (rustup, C build dependencies).
#
#   scripts/demo.sh                                  full size: 5,000 coupons, 50,000 users
#   DEMO_STOCK=500 DEMO_USERS=5000 DEMO_RETRIES=500 scripts/demo.sh      a quick run
#   scripts/demo.sh --help                           every setting
#
# Settings (environment or the matching --flag, all optional):
#   DEMO_STOCK=5000 DEMO_USERS=50000 DEMO_RETRIES=5000 DEMO_VUS=200
#   DEMO_DATABASE=couponrush_demo      dropped and recreated each run (must contain "demo")
#   DEMO_HTTP_BIND=127.0.0.1:18080     issuer-api address (not 8080: leaves a dev API alone)
#   DEMO_CONSUMERS=3 DEMO_PARTITIONS=3 coupon-consumer processes; partitions of the demo topic
#   DEMO_READY_TIMEOUT=60 DEMO_PERSIST_TIMEOUT=180 DEMO_POLL_MS=150
#   DEMO_KEEP=0                        1: keep this run's Redis keys and topics
#   DEMO_DIR=<repo>/.stack/demo        logs (replaced each run) and the demo's stack state
#   DEMO_RUST_LOG=info                 RUST_LOG of the demo's processes
#   STACK_*, CARGO_TARGET_DIR          passed on (scripts/stack.sh, cargo)
# Exit status: 0 iff the verdict is CONSISTENT, every accepted reservation reached MySQL and,
# when users outnumber the stock, exactly the stock was sold.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LOG_TAG=demo
# shellcheck source=scripts/lib/tools.sh
source "$ROOT/scripts/lib/tools.sh"

ensure_cargo
ensure_build_deps
cd "$ROOT"
exec cargo xtask demo "$@"
