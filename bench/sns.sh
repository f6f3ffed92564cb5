#!/usr/bin/env bash
# Benchmarks POST /sns on loopback with wrk, reflex beside the most used Node validator (npm sns-validator behind
# node:http, bench/sns_peer.js), one after the other in one run, with the same signed messages and the same wrk
# settings: new notifications (reflex verifies, claims and durably audits each before its answer) and
# redeliveries of one notification (reflex verifies, answers from the first delivery, audits). Prints the ratios.
# Usage: bench/sns.sh [DURATION_SECS] [CONNECTIONS]. Needs wrk (apt-get install wrk), node and npm, and
# python3-cryptography. REFLEX_BIN runs another reflex binary (e.g. an older build) instead of this tree's.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-5}
CONNECTIONS=${2:-64}
COUNT=${COUNT:-80000}
PEER_PACKAGE="sns-validator@0.3.5"
TOPIC="arn:aws:sns:us-east-1:123456789012:bench-alarms"
command -v wrk >/dev/null || { echo "bench: wrk is missing (apt-get install wrk)"; exit 1; }
if [ -z "${REFLEX_BIN:-}" ]; then
    cargo build --release --quiet
    REFLEX_BIN=target/release/reflex
fi
WORK=target/bench-sns
mkdir -p "$WORK"
if [ ! -s "$WORK/messages.txt" ] || [ "$(wc -l < "$WORK/messages.txt")" -lt "$COUNT" ] \
   || [ -n "$(find "$WORK/messages.txt" -mmin +50)" ]; then
    echo "bench: signing $COUNT notifications..."
    python3 bench/sns_messages.py "$WORK" "$COUNT" "$TOPIC"
fi
PEER="$WORK/peer"
if [ "$(cat "$PEER/.installed" 2>/dev/null)" != "$PEER_PACKAGE" ]; then
    echo "bench: installing $PEER_PACKAGE"
    rm -rf "$PEER" && mkdir -p "$PEER"
    npm install --prefix "$PEER" --no-audit --no-fund --silent "$PEER_PACKAGE"
    echo "$PEER_PACKAGE" > "$PEER/.installed"
fi

RUN=$(mktemp -d)
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; rm -rf "$RUN"' EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_ready() { for _ in $(seq 200); do curl -s -o /dev/null "http://127.0.0.1:$1$2" && return; sleep 0.05; done; }

# Runs one wrk load; prints its summary lines and leaves the request rate in $RATE.
load() {
    local port=$1 repeat=$2 out
    out=$(MESSAGES="$WORK/messages.txt" THREADS=2 REPEAT=$repeat wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" \
        --latency -s bench/sns_post.lua "http://127.0.0.1:$port")
    echo "$out" | grep -E "Requests/sec|  50%|  99%|non-2xx|WARNING|Socket errors" | sed 's/^/   /'
    RATE=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
}

PORT=$(free_port)
cat > "$RUN/reflex.toml" <<TOML
[server]
listen = "127.0.0.1:$PORT"
[aws]
endpoint_url = "http://127.0.0.1:9"
access_key_id = "bench"
secret_access_key = "bench"
[audit]
url = "sqlite://$RUN/audit.db"
[[targets]]
load_balancer = "web-elb"
[sns]
topic_arns = ["$TOPIC"]
cert_dir = "$PWD/$WORK/certs"
TOML
RUST_LOG=warn "$REFLEX_BIN" serve --config "$RUN/reflex.toml" 2>"$RUN/reflex.log" &
PIDS+=($!)
wait_ready "$PORT" /readyz
echo "== reflex: new notifications (each verified, claimed and durably audited before its answer)"
load "$PORT" 0; REFLEX_NEW=$RATE
echo "== reflex: redeliveries of one notification (answered from the first delivery, audited)"
load "$PORT" 1; REFLEX_AGAIN=$RATE
kill -TERM "${PIDS[0]}"; wait "${PIDS[0]}" || true
echo "   audit records: $(sqlite3 "$RUN/audit.db" 'SELECT outcome, COUNT(*) FROM audit_records GROUP BY outcome' | tr '\n' ' ')"

PEER_PORT=$(free_port)
NODE_PATH="$PWD/$PEER/node_modules" node bench/sns_peer.js "$PEER_PORT" "$WORK/certs" &
PIDS+=($!)
wait_ready "$PEER_PORT" /
echo "== peer ($PEER_PACKAGE behind node:http): new notifications"
load "$PEER_PORT" 0; PEER_NEW=$RATE
echo "== peer: redeliveries of one notification"
load "$PEER_PORT" 1; PEER_AGAIN=$RATE

python3 - "$REFLEX_NEW" "$PEER_NEW" "$REFLEX_AGAIN" "$PEER_AGAIN" <<'PY'
import sys
reflex_new, peer_new, reflex_again, peer_again = map(float, sys.argv[1:])
print(f"== ratio, new notifications: reflex {reflex_new:.0f} req/s / peer {peer_new:.0f} req/s = {reflex_new / peer_new:.2f}x")
print(f"== ratio, redeliveries:      reflex {reflex_again:.0f} req/s / peer {peer_again:.0f} req/s = {reflex_again / peer_again:.2f}x")
PY
