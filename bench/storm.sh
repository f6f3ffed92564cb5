#!/usr/bin/env bash
# The alert storm: a moto fleet whose balancer web-elb has a broken instance, and reflex (release build, cooldown
# 600 s) receiving alerts for it as fast as wrk sends them for DURATION seconds (manual requests and Alertmanager
# notifications, alternating). Prints how many alerts were answered, p50/p99, and how many DescribeInstanceHealth
# and TerminateInstances calls moto itself recorded: at most one describe per cooldown window is the goal.
# Usage: bench/storm.sh [DURATION_SECS] [CONNECTIONS]. Needs wrk and moto[server].
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-10}
CONNECTIONS=${2:-32}
command -v wrk >/dev/null || { echo "bench: wrk is missing (apt-get install wrk)"; exit 1; }
# REFLEX_BIN runs another reflex binary (e.g. an older build) instead of this tree's release build.
if [ -z "${REFLEX_BIN:-}" ]; then
    cargo build --release --quiet
    REFLEX_BIN=target/release/reflex
fi
RUN=$(mktemp -d)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
MOTO_PORT=$(free_port)
PORT=$(free_port)
TOKEN=bench-token-0123456789abcdef
AM_TOKEN=bench-alertmanager-0123456789
MOTO_URL="http://127.0.0.1:$MOTO_PORT"
MOTO_RECORDER_FILEPATH="$RUN/moto-recording" moto_server -H 127.0.0.1 -p "$MOTO_PORT" >/dev/null 2>&1 &
MOTO=$!
trap 'kill $MOTO ${PID:-} 2>/dev/null; wait 2>/dev/null; rm -rf "$RUN"' EXIT
for _ in $(seq 100); do curl -fs "$MOTO_URL/moto-api/" >/dev/null && break; sleep 0.1; done
python3 scripts/demo-fleet.py "$MOTO_URL" >/dev/null
cat > "$RUN/reflex.toml" <<TOML
[server]
listen = "127.0.0.1:$PORT"
max_in_flight = 1024
[aws]
endpoint_url = "$MOTO_URL"
access_key_id = "testing"
secret_access_key = "testing"
[audit]
url = "sqlite://$RUN/audit.db"
[remediation]
grace_period_secs = 0
cooldown_secs = 600
[[targets]]
load_balancer = "web-elb"
[manual]
tokens = ["$TOKEN"]
[alertmanager]
tokens = ["$AM_TOKEN"]
TOML
RUST_LOG=warn "$REFLEX_BIN" serve --config "$RUN/reflex.toml" 2>"$RUN/reflex.log" &
PID=$!
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$PORT/readyz" >/dev/null && break; sleep 0.05; done
# moto's own record of every request it receives from here on.
curl -fs -X POST "$MOTO_URL/moto-api/recorder/reset-recording" >/dev/null
curl -fs -X POST "$MOTO_URL/moto-api/recorder/start-recording" >/dev/null
echo "== storm: ${DURATION}s of alerts for web-elb, $CONNECTIONS connections"
TOKEN=$TOKEN AM_TOKEN=$AM_TOKEN wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" --latency -s bench/storm_post.lua \
    "http://127.0.0.1:$PORT" | tee "$RUN/wrk.txt" | grep -E "requests in|Requests/sec|  50%|  99%|Non-2xx"
curl -fs -X POST "$MOTO_URL/moto-api/recorder/stop-recording" >/dev/null
curl -fs "$MOTO_URL/moto-api/recorder/download-recording" > "$RUN/recording.jsonl"
python3 - "$RUN/recording.jsonl" <<'PY'
import base64, collections, json, sys, urllib.parse
calls = collections.Counter()
for line in open(sys.argv[1]):
    if not line.strip():
        continue
    entry = json.loads(line)
    body = entry.get("body") or ""
    if entry.get("body_encoded"):
        body = base64.b64decode(body).decode("utf-8", "replace")
    calls[urllib.parse.parse_qs(body).get("Action", ["other"])[0]] += 1
print("== AWS calls moto recorded during the storm:", dict(calls))
print(f"== DescribeInstanceHealth: {calls['DescribeInstanceHealth']} (cooldown window 600 s)")
PY
