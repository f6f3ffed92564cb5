#!/usr/bin/env bash
# The audit page on a large trail: a SQLite store seeded with COUNT records over the last 30 days (most of them
# page views and logins, as a busy trail is; examples/seed_trail.rs), reflex (release build) serving it, and
# the time each page takes to answer, as curl measures it over ROUNDS requests: the timeline (runs only, the
# default, and with the access records), and a target's page (health, runs by outcome and budget use) over the
# last 24 hours, 7 days and 30 days. The goal is under 200 ms each.
# Usage: bench/ui.sh [COUNT] [ROUNDS]. Needs moto[server].
set -euo pipefail
cd "$(dirname "$0")/.."
COUNT=${1:-100000}
ROUNDS=${2:-20}
if [ -z "${REFLEX_BIN:-}" ]; then
    cargo build --release --quiet
    REFLEX_BIN=target/release/reflex
fi
cargo build --release --quiet --example seed_trail
SEED="${CARGO_TARGET_DIR:-target}/release/examples/seed_trail"
RUN=$(mktemp -d)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
MOTO_PORT=$(free_port)
PORT=$(free_port)
TOKEN=bench-audit-token-0123456789
MOTO_URL="http://127.0.0.1:$MOTO_PORT"
moto_server -H 127.0.0.1 -p "$MOTO_PORT" >/dev/null 2>&1 &
MOTO=$!
trap 'kill $MOTO ${PID:-} 2>/dev/null; wait 2>/dev/null; rm -rf "$RUN"' EXIT
for _ in $(seq 100); do curl -fs "$MOTO_URL/moto-api/" >/dev/null && break; sleep 0.1; done
echo "== seeding $COUNT records"
start=$(date +%s.%N)
"$SEED" "sqlite://$RUN/audit.db" "$COUNT" bench-elb 123456789012 us-east-1
echo "seeded in $(python3 -c "print(round($(date +%s.%N) - $start, 1))") s"
cat > "$RUN/reflex.toml" <<TOML
[server]
listen = "127.0.0.1:$PORT"
[aws]
endpoint_url = "$MOTO_URL"
access_key_id = "testing"
secret_access_key = "testing"
[audit]
url = "sqlite://$RUN/audit.db"
tokens = ["$TOKEN"]
[[targets]]
load_balancer = "bench-elb"
TOML
RUST_LOG=warn "$REFLEX_BIN" serve --config "$RUN/reflex.toml" 2>"$RUN/reflex.log" &
PID=$!
for _ in $(seq 600); do curl -fs "http://127.0.0.1:$PORT/readyz" >/dev/null && break; sleep 0.05; done
BASE="http://127.0.0.1:$PORT"
JAR="$RUN/cookies"
csrf=$(curl -fs -c "$JAR" "$BASE/ui/login" | python3 -c 'import re,sys; print(re.search(r"name=\"csrf\" value=\"([^\"]+)\"", sys.stdin.read()).group(1))')
curl -fs -b "$JAR" -c "$JAR" -o /dev/null --data-urlencode "token=$TOKEN" --data-urlencode "csrf=$csrf" "$BASE/ui/login"
grep -q reflex_session "$JAR" || { echo "bench: login failed"; exit 1; }
TARGET_PAGE="/ui/targets/123456789012%3Aus-east-1%3Abench-elb"
echo "== $ROUNDS requests each (ms: median, p95, max)"
for path in "/ui/" "/ui/?access=on" "$TARGET_PAGE?range=24h" "$TARGET_PAGE?range=7d" "$TARGET_PAGE?range=30d"; do
    status=$(curl -s -b "$JAR" -o /dev/null -w '%{http_code}' "$BASE$path")
    [ "$status" = 200 ] || { echo "bench: $path answered $status"; exit 1; }
    for _ in $(seq "$ROUNDS"); do
        curl -s -b "$JAR" -o /dev/null -w '%{time_total}\n' "$BASE$path"
    done | python3 -c '
import sys, statistics
path = sys.argv[1]
times = sorted(float(t) * 1000 for t in sys.stdin)
p95 = times[max(0, int(round(0.95 * len(times))) - 1)]
print(f"{path:55s} {statistics.median(times):7.1f} {p95:7.1f} {times[-1]:7.1f}")
' "$path"
done
