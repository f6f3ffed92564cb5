#!/usr/bin/env bash
# Benchmarks POST /sns on loopback with wrk: new notifications (each verified, claimed and durably audited before
# the answer) and redeliveries of one notification (verified, answered from the first, audited).
# Usage: bench/sns.sh [DURATION_SECS] [CONNECTIONS]. Needs wrk (apt-get install wrk) and python3-cryptography.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-5}
CONNECTIONS=${2:-64}
COUNT=${COUNT:-80000}
TOPIC="arn:aws:sns:us-east-1:123456789012:bench-alarms"
command -v wrk >/dev/null || { echo "bench: wrk is missing (apt-get install wrk)"; exit 1; }
cargo build --release --quiet
WORK=target/bench-sns
mkdir -p "$WORK"
if [ ! -s "$WORK/messages.txt" ] || [ "$(wc -l < "$WORK/messages.txt")" -lt "$COUNT" ] \
   || [ -n "$(find "$WORK/messages.txt" -mmin +50)" ]; then
    echo "bench: signing $COUNT notifications..."
    python3 bench/sns_messages.py "$WORK" "$COUNT" "$TOPIC"
fi
RUN=$(mktemp -d)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
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
RUST_LOG=warn target/release/reflex serve --config "$RUN/reflex.toml" 2>"$RUN/reflex.log" &
PID=$!
trap 'kill $PID 2>/dev/null; wait $PID 2>/dev/null; rm -rf "$RUN"' EXIT
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$PORT/readyz" >/dev/null && break; sleep 0.05; done

echo "== new notifications (each one verified, claimed and durably audited before its answer)"
MESSAGES="$WORK/messages.txt" THREADS=2 wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" --latency \
    -s bench/sns_post.lua "http://127.0.0.1:$PORT" | grep -E "Requests/sec|50%|99%|non-2xx|WARNING|Latency"
echo "== redeliveries of one notification (answered from the first delivery, audited)"
MESSAGES="$WORK/messages.txt" REPEAT=1 wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" --latency \
    -s bench/sns_post.lua "http://127.0.0.1:$PORT" | grep -E "Requests/sec|50%|99%|non-2xx|WARNING|Latency"
kill -TERM $PID; wait $PID || true
echo "== audit records written: $(sqlite3 "$RUN/audit.db" 'SELECT outcome, COUNT(*) FROM audit_records GROUP BY outcome' | tr '\n' ' ')"
