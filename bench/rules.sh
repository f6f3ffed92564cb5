#!/usr/bin/env bash
# Times rule matching on the path of every alert: 100 rules with CEL conditions (half with `match` shorthands
# too) and an alert none of them matches, so that every condition is evaluated; in the release build; then as many
# rules on text methods (`startsWith`), and as many whose `when` only CEL can decide (it compares two fields).
# Usage: bench/rules.sh [RULES] [ALERTS]. Target: under 50 us per alert for 100 rules.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo run --release --quiet --example rule_match -- "${1:-100}" "${2:-20000}"
