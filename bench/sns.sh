#!/usr/bin/env bash
# Benchmarks POST /sns on loopback with wrk, reflex beside the most used Node validator (npm sns-validator behind
# node:http, bench/sns_peer.js), one after the other in one run, with the same signed messages and the same wrk
# settings: new notifications (reflex verifies, claims and durably audits each before its answer) and
# redeliveries of one notification (reflex verifies, answers from the first delivery, audits). Prints the ratios.
# Usage: bench/sns.sh [DURATION_SECS] [CONNECTIONS]. Needs wrk (apt-get install wrk), node and npm, and
# python3-cryptography. REFLEX_BIN runs another reflex binary instead of this tree's; REFLEX_PREVIOUS measures an
# older one (the previous release) too, in the same run, against the same peer figures.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/sns_lib.sh

NEW=(); AGAIN=()
for bin in "${BINS[@]}"; do
    rm -f "$RUN/audit.db"*
    start_reflex "sqlite://$RUN/audit.db" "$bin"
    echo "== reflex ($bin): new notifications (each verified, claimed and durably audited before its answer)"
    load "$PORT" 0; NEW+=("$RATE")
    echo "== reflex ($bin): redeliveries of one notification (answered from the first delivery, audited)"
    load "$PORT" 1; AGAIN+=("$RATE")
    kill -TERM "${PIDS[-1]}"; wait "${PIDS[-1]}" || true
    echo "   audit records: $(sqlite3 "$RUN/audit.db" 'SELECT outcome, COUNT(*) FROM audit_entries GROUP BY outcome' | tr '\n' ' ')"
done

PEER_PORT=$(free_port)
NODE_PATH="$PWD/$PEER/node_modules" node bench/sns_peer.js "$PEER_PORT" "$WORK/certs" &
PIDS+=($!)
wait_ready "$PEER_PORT" /
echo "== peer ($PEER_PACKAGE behind node:http): new notifications"
load "$PEER_PORT" 0; PEER_NEW=$RATE
echo "== peer: redeliveries of one notification"
load "$PEER_PORT" 1; PEER_AGAIN=$RATE

for i in "${!BINS[@]}"; do
    python3 - "${BINS[$i]}" "${NEW[$i]}" "$PEER_NEW" "${AGAIN[$i]}" "$PEER_AGAIN" <<'PY'
import sys
name = sys.argv[1]
reflex_new, peer_new, reflex_again, peer_again = map(float, sys.argv[2:])
print(f"== {name}")
print(f"   ratio, new notifications: reflex {reflex_new:.0f} req/s / peer {peer_new:.0f} req/s = {reflex_new / peer_new:.2f}x")
print(f"   ratio, redeliveries:      reflex {reflex_again:.0f} req/s / peer {peer_again:.0f} req/s = {reflex_again / peer_again:.2f}x")
PY
done
