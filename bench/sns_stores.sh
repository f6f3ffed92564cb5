#!/usr/bin/env bash
# Benchmarks new SNS notifications (each verified, claimed and durably audited before its answer) with each audit
# store, one after the other in one run: SQLite with one process, PostgreSQL with one process, and PostgreSQL
# with three replicas sharing the database (three wrk processes, one per replica, each sending a disjoint slice of
# the messages, together the same connections as one). Then the Node peer (bench/sns.sh) with the same load, and
# the ratios. Prints requests per second and p99 for each.
# Usage: bench/sns_stores.sh [DURATION_SECS] [CONNECTIONS]. Needs what bench/sns.sh needs, and a PostgreSQL
# server at BENCH_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432/postgres) where it may create a
# database (dropped at the end).
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/sns_lib.sh
ADMIN_URL=${BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}
DB="reflex_bench_$$"
psql -q "$ADMIN_URL" -c "CREATE DATABASE $DB"
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; rm -rf "$RUN"; psql -q "$ADMIN_URL" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)"' EXIT
PG_URL="${ADMIN_URL%/*}/$DB"

stop_all() {
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
    PIDS=()
}

echo "== SQLite, one process"
start_reflex "sqlite://$RUN/audit.db"
load "$PORT" 0; SQLITE=$RATE; SQLITE_P99=$P99
stop_all

echo "== PostgreSQL, one process"
start_reflex "$PG_URL"
load "$PORT" 0; PG1=$RATE; PG1_P99=$P99
stop_all
psql -q "$PG_URL" -c "TRUNCATE audit_entries, deliveries"

echo "== PostgreSQL, three replicas"
PORTS=()
for _ in 1 2 3; do start_reflex "$PG_URL"; PORTS+=("$PORT"); done
FULL=$CONNECTIONS
CONNECTIONS=$(( (FULL + 2) / 3 ))
LOADS=()
for i in 0 1 2; do
    ( SLICE="$i/3" load "${PORTS[$i]}" 0 > "$RUN/replica-$i.out"; echo "$RATE $P99" > "$RUN/replica-$i" ) &
    LOADS+=($!)
done
wait "${LOADS[@]}"
for i in 0 1 2; do echo "   replica $((i + 1)):"; sed 's/^/ /' "$RUN/replica-$i.out"; done
CONNECTIONS=$FULL
stop_all
read -r PG3 PG3_P99 < <(python3 - "$RUN" <<'PY'
import pathlib, re, sys
def ms(text):
    value, unit = re.match(r"([\d.]+)(us|ms|s)", text).groups()
    return float(value) * {"us": 0.001, "ms": 1, "s": 1000}[unit]
rows = [pathlib.Path(sys.argv[1], f"replica-{i}").read_text().split() for i in range(3)]
print(sum(float(rate) for rate, _ in rows), f"{max(ms(p99) for _, p99 in rows):.2f}ms")
PY
)
echo "   audit records: $(psql -tA "$PG_URL" -c "SELECT outcome || ' ' || COUNT(*) FROM audit_entries GROUP BY outcome" | tr '\n' ' ')"

PEER_PORT=$(free_port)
NODE_PATH="$PWD/$PEER/node_modules" node bench/sns_peer.js "$PEER_PORT" "$WORK/certs" &
PIDS+=($!)
wait_ready "$PEER_PORT" /
echo "== peer ($PEER_PACKAGE behind node:http): new notifications"
load "$PEER_PORT" 0; PEER=$RATE; PEER_P99=$P99

python3 - "$SQLITE" "$SQLITE_P99" "$PG1" "$PG1_P99" "$PG3" "$PG3_P99" "$PEER" "$PEER_P99" <<'PY'
import sys
a = sys.argv[1:]
peer = float(a[6])
for name, rate, p99 in [("SQLite, 1 process", a[0], a[1]), ("PostgreSQL, 1 process", a[2], a[3]),
                        ("PostgreSQL, 3 replicas", a[4], a[5]), ("peer", a[6], a[7])]:
    print(f"== {name:24} {float(rate):8.0f} req/s  p99 {p99:>9}  {float(rate) / peer:.2f}x the peer")
PY
