"""Runs moto_server on a free loopback port for one test process.

Prints "READY <port>" once the server answers, then serves until its standard input closes, which happens
when the test process that started it exits, however it exits. Extra KEY=VALUE arguments are set in the
environment before moto starts (e.g. INITIAL_NO_AUTH_ACTION_COUNT).
"""
import os
import shutil
import socket
import sys
import tempfile
import time
import urllib.request

for arg in sys.argv[1:]:
    key, _, value = arg.partition("=")
    os.environ[key] = value
# moto's request recorder (tests that count AWS calls use it) writes here, not into the working directory.
recordings = tempfile.mkdtemp(prefix="moto-")
os.environ.setdefault("MOTO_RECORDER_FILEPATH", os.path.join(recordings, "recording"))

from moto.server import ThreadedMotoServer  # noqa: E402  (after the environment is set)

with socket.socket() as probe:
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]

server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
server.start()
deadline = time.monotonic() + 30
while True:
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/moto-api/", timeout=1).read()
        break
    except Exception:
        if time.monotonic() > deadline:
            raise
        time.sleep(0.05)
print(f"READY {port}", flush=True)
sys.stdin.read()
server.stop()
shutil.rmtree(recordings, ignore_errors=True)
