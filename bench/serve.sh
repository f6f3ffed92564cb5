#!/usr/bin/env bash
# Benchmarks the release build on loopback against a local moto server: GET /healthz and authenticated
# POST /remediate dry runs (requests/s, p50/p99), the share of a dry run spent waiting for the emulator's reads,
# start-to-ready time and idle RSS. Usage: bench/serve.sh [DURATION_SECS]. Needs wrk and moto[server].
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-5}
command -v wrk >/dev/null || { echo "bench: wrk is missing (apt-get install wrk)"; exit 1; }
cargo build --release --quiet
RUN=$(mktemp -d)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
MOTO_PORT=$(free_port)
PORT=$(free_port)
TOKEN=bench-token-0123456789abcdef
moto_server -H 127.0.0.1 -p "$MOTO_PORT" >/dev/null 2>&1 &
MOTO=$!
trap 'kill $MOTO ${PID:-} 2>/dev/null; wait 2>/dev/null; rm -rf "$RUN"' EXIT
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$MOTO_PORT/moto-api/" >/dev/null && break; sleep 0.1; done
python3 scripts/demo-fleet.py "http://127.0.0.1:$MOTO_PORT" >/dev/null
cat > "$RUN/reflex.toml" <<TOML
[server]
listen = "127.0.0.1:$PORT"
[aws]
endpoint_url = "http://127.0.0.1:$MOTO_PORT"
access_key_id = "testing"
secret_access_key = "testing"
[audit]
url = "sqlite://$RUN/audit.db"
[remediation]
grace_period_secs = 0
[[targets]]
load_balancer = "web-elb"
[manual]
tokens = ["$TOKEN"]
TOML
echo "== start-to-ready and idle RSS (release build)"
python3 bench/startup.py target/release/reflex "$RUN/reflex.toml" "$PORT" 5

RUST_LOG=warn target/release/reflex serve --config "$RUN/reflex.toml" 2>"$RUN/reflex.log" &
PID=$!
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$PORT/readyz" >/dev/null && break; sleep 0.05; done
echo "== GET /healthz (wrk, 2 threads, 64 connections)"
wrk -t2 -c64 -d"${DURATION}s" --latency "http://127.0.0.1:$PORT/healthz" | grep -E "Requests/sec|  50%|  99%"
echo "== POST /remediate dry run against moto (wrk, 1 connection: no queueing)"
TOKEN=$TOKEN wrk -t1 -c1 -d"${DURATION}s" --latency -s bench/remediate_post.lua "http://127.0.0.1:$PORT/remediate" \
    | tee "$RUN/wrk.txt" | grep -E "Requests/sec|  50%|  99%|Non-2xx"
curl -fs "http://127.0.0.1:$PORT/metrics" > "$RUN/metrics.txt"
python3 - "$RUN/metrics.txt" "$RUN/wrk.txt" <<'PY'
import re, sys
metrics = open(sys.argv[1]).read()
def value(series):
    m = re.search(re.escape(series) + r" ([0-9.e+-]+)", metrics)
    return float(m.group(1)) if m else 0.0
runs = value('reflex_remediation_runs_total{outcome="completed",dry_run="true"}')
aws = sum(value(f'reflex_aws_call_duration_seconds_sum{{operation="{op}"}}') for op in ("DescribeInstanceHealth", "DescribeInstances"))
rps = float(re.search(r"Requests/sec:\s+([0-9.]+)", open(sys.argv[2]).read()).group(1))
per_request = 1000 / rps
emulator = 1000 * aws / runs
print(f"dry run: {per_request:.2f} ms per request, of which {emulator:.2f} ms waiting for the emulator's reads "
      f"(DescribeInstanceHealth + DescribeInstances): {per_request / emulator:.2f}x the emulator's own time")
PY
