# Shared by bench/sns.sh and bench/sns_stores.sh (sourced, after `cd` to the repository): settings, the release
# build, the signed messages, the pinned peer, and helpers to start reflex and drive wrk.
DURATION=${1:-5}
CONNECTIONS=${2:-64}
# Enough distinct messages that no wrk thread runs out in the default 5 s at 40,000 requests a second (a
# thread that does falls back to GET /healthz, and the run says so).
COUNT=${COUNT:-250000}
PEER_PACKAGE="sns-validator@0.3.5"
TOPIC="arn:aws:sns:us-east-1:123456789012:bench-alarms"
command -v wrk >/dev/null || { echo "bench: wrk is missing (apt-get install wrk)"; exit 1; }
if [ -z "${REFLEX_BIN:-}" ]; then
    cargo build --release --quiet
    REFLEX_BIN=target/release/reflex
fi
# REFLEX_PREVIOUS: an older reflex binary (the previous release) measured in the same run, beside this one.
BINS=("$REFLEX_BIN")
if [ -n "${REFLEX_PREVIOUS:-}" ]; then BINS+=("$REFLEX_PREVIOUS"); fi
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

# Runs one wrk load; prints its summary lines and leaves the request rate in $RATE and the p99 in $P99.
# SLICE=i/n (default 0/1) sends only the i-th of n disjoint slices of the messages (one wrk per replica).
load() {
    local port=$1 repeat=$2 out
    out=$(MESSAGES="$WORK/messages.txt" THREADS=2 REPEAT=$repeat SLICE="${SLICE:-0/1}" wrk -t2 \
        -c"$CONNECTIONS" -d"${DURATION}s" --latency -s bench/sns_post.lua "http://127.0.0.1:$port")
    echo "$out" | grep -E "Requests/sec|  50%|  99%|non-2xx|WARNING|Socket errors" | sed 's/^/   /'
    RATE=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
    P99=$(echo "$out" | awk '$1 == "99%" {print $2}')
}

# Starts reflex (the binary $2, default $REFLEX_BIN) on a free port with its audit store at $1; leaves the port
# in $PORT and the pid in PIDS.
start_reflex() {
    local store=$1 bin=${2:-$REFLEX_BIN} dir
    PORT=$(free_port)
    dir=$(mktemp -d -p "$RUN")
    cat > "$dir/reflex.toml" <<TOML
[server]
listen = "127.0.0.1:$PORT"
[aws]
endpoint_url = "http://127.0.0.1:9"
account_id = "123456789012"
access_key_id = "bench"
secret_access_key = "bench"
[audit]
url = "$store"
[[targets]]
load_balancer = "web-elb"
[sns]
topic_arns = ["$TOPIC"]
cert_dir = "$PWD/$WORK/certs"
TOML
    # No AWS to learn the account from; a release from before aws.account_id does not know the key.
    "$bin" check-config --config "$dir/reflex.toml" >/dev/null 2>&1 || sed -i '/^account_id/d' "$dir/reflex.toml"
    RUST_LOG=warn "$bin" serve --config "$dir/reflex.toml" 2>"$dir/reflex.log" &
    PIDS+=($!)
    wait_ready "$PORT" /readyz
}

