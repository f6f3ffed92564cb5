#!/usr/bin/env python3
"""Measures start-to-ready (spawn until GET /readyz answers 200) and idle RSS of `reflex serve`.

Usage: startup.py BINARY CONFIG PORT [RUNS]
"""
import http.client
import statistics
import subprocess
import sys
import time

binary, config, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
runs = int(sys.argv[4]) if len(sys.argv) > 4 else 5
times, rss = [], []
for _ in range(runs):
    started = time.perf_counter()
    proc = subprocess.Popen([binary, "serve", "--config", config], stderr=subprocess.DEVNULL)
    while True:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            conn.request("GET", "/readyz")
            if conn.getresponse().status == 200:
                break
        except OSError:
            time.sleep(0.001)
    times.append((time.perf_counter() - started) * 1000)
    time.sleep(1)
    with open(f"/proc/{proc.pid}/status") as status:
        rss.append(next(int(line.split()[1]) for line in status if line.startswith("VmRSS")) / 1024)
    proc.terminate()
    proc.wait()
print(f"start-to-ready: median {statistics.median(times):.1f} ms (min {min(times):.1f}, max {max(times):.1f}, {runs} runs)")
print(f"idle RSS: median {statistics.median(rss):.1f} MiB")
