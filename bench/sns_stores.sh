#!/usr/bin/env bash
# Benchmarks new SNS notifications (each verified, claimed and durably audited before its answer) with each audit
# store, one after the other in one run: SQLite with one process, PostgreSQL with one process, and PostgreSQL
# with three replicas sharing the database (three wrk processes, one per replica, each sending a disjoint slice of
# the messages, together the same connections as one). Then the Node peer (bench/sns.sh) with the same load, and
# the ratios. Prints requests per second and p99 for each.
# REFLEX_PREVIOUS measures an older binary (the previous release) the same way in the same run.
# Usage: bench/sns_stores.sh [DURATION_SECS] [CONNECTIONS]. Needs what bench/sns.sh needs, and a PostgreSQL
# server at BENCH_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432/postgres) where it may create a
# database (dropped at the end).
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/sns_lib.sh
ADMIN_URL=${BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}
DB="reflex_bench_$$"
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; rm -rf "$RUN"; psql -q "$ADMIN_URL" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)"' EXIT
PG_URL="${ADMIN_URL%/*}/$DB"

stop_all() {
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
    PIDS=()
}

# Measures one binary with each store; appends "NAME RATE P99" lines to $RUN/results.
measure() {
    local bin=$1
    echo "== $bin: SQLite, one process"
    rm -f "$RUN/audit.db"*
    start_reflex "sqlite://$RUN/audit.db" "$bin"
    load "$PORT" 0; echo "$bin|SQLite, 1 process|$RATE|$P99" >> "$RUN/results"
    stop_all

    echo "== $bin: PostgreSQL, one process"
    psql -q "$ADMIN_URL" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB"
    start_reflex "$PG_URL" "$bin"
    load "$PORT" 0; echo "$bin|PostgreSQL, 1 process|$RATE|$P99" >> "$RUN/results"
    stop_all
    psql -q "$PG_URL" -c "TRUNCATE audit_entries, deliveries"

    echo "== $bin: PostgreSQL, three replicas"
    local ports=() loads=() full=$CONNECTIONS
    for _ in 1 2 3; do start_reflex "$PG_URL" "$bin"; ports+=("$PORT"); done
    CONNECTIONS=$(( (full + 2) / 3 ))
    for i in 0 1 2; do
        ( SLICE="$i/3" load "${ports[$i]}" 0 > "$RUN/replica-$i.out"; echo "$RATE $P99" > "$RUN/replica-$i" ) &
        loads+=($!)
    done
    wait "${loads[@]}"
    for i in 0 1 2; do echo "   replica $((i + 1)):"; sed 's/^/ /' "$RUN/replica-$i.out"; done
    CONNECTIONS=$full
    stop_all
    python3 - "$RUN" "$bin" >> "$RUN/results" <<'PY'
import pathlib, re, sys
def ms(text):
    value, unit = re.match(r"([\d.]+)(us|ms|s)", text).groups()
    return float(value) * {"us": 0.001, "ms": 1, "s": 1000}[unit]
rows = [pathlib.Path(sys.argv[1], f"replica-{i}").read_text().split() for i in range(3)]
print(f"{sys.argv[2]}|PostgreSQL, 3 replicas|{sum(float(rate) for rate, _ in rows)}|{max(ms(p99) for _, p99 in rows):.2f}ms")
PY
    echo "   audit records: $(psql -tA "$PG_URL" -c "SELECT outcome || ' ' || COUNT(*) FROM audit_entries GROUP BY outcome" | tr '\n' ' ')"
}

for bin in "${BINS[@]}"; do measure "$bin"; done

PEER_PORT=$(free_port)
NODE_PATH="$PWD/$PEER/node_modules" node bench/sns_peer.js "$PEER_PORT" "$WORK/certs" &
PIDS+=($!)
wait_ready "$PEER_PORT" /
echo "== peer ($PEER_PACKAGE behind node:http): new notifications"
load "$PEER_PORT" 0; echo "peer|$PEER_PACKAGE|$RATE|$P99" >> "$RUN/results"

python3 - "$RUN/results" <<'PY'
import sys
rows = [line.strip().split("|") for line in open(sys.argv[1]) if line.strip()]
peer = float(rows[-1][2])
for bin, name, rate, p99 in rows:
    print(f"== {bin:28} {name:24} {float(rate):8.0f} req/s  p99 {p99:>9}  {float(rate) / peer:.2f}x the peer")
PY
