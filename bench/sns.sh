#!/usr/bin/env bash
# Benchmarks POST /sns on loopback with wrk, reflex beside the most used Node validator (npm sns-validator behind
# node:http, bench/sns_peer.js), one after the other in one run, with the same signed messages and the same wrk
# settings: new notifications (reflex verifies, claims and durably audits each before its answer) and
# redeliveries of one notification (reflex verifies, answers from the first delivery, audits). Prints the ratios.
# Usage: bench/sns.sh [DURATION_SECS] [CONNECTIONS]. Needs wrk (apt-get install wrk), node and npm, and
# python3-cryptography. REFLEX_BIN runs another reflex binary (e.g. an older build) instead of this tree's.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/sns_lib.sh

start_reflex "sqlite://$RUN/audit.db"
echo "== reflex: new notifications (each verified, claimed and durably audited before its answer)"
load "$PORT" 0; REFLEX_NEW=$RATE
echo "== reflex: redeliveries of one notification (answered from the first delivery, audited)"
load "$PORT" 1; REFLEX_AGAIN=$RATE
kill -TERM "${PIDS[0]}"; wait "${PIDS[0]}" || true
echo "   audit records: $(sqlite3 "$RUN/audit.db" 'SELECT outcome, COUNT(*) FROM audit_entries GROUP BY outcome' | tr '\n' ' ')"

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
