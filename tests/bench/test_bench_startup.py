"""Start-up: how soon `videostation serve` answers /api/health/, against a bare aiohttp
server started the same way in the same run (the reference)."""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import free_port, start_live, stop_live, wait_healthy

pytestmark = pytest.mark.bench

BARE = """
import sys
from aiohttp import web
async def health(request):
    return web.json_response({"status": "ok"})
app = web.Application()
app.router.add_get("/api/health/", health)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None)
"""


def bare_server_seconds() -> float:
    port = free_port()
    start = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-c", BARE, str(port)])
    try:
        wait_healthy(f"http://127.0.0.1:{port}", proc=proc)
        return time.monotonic() - start
    finally:
        proc.terminate()
        proc.wait()


def test_startup_to_health(tmp_path: Path) -> None:
    ours, bare = [], []
    for i in range(5):
        bare.append(bare_server_seconds())
        live = start_live(tmp_path / str(i))
        ours.append(live.startup_seconds)  # from spawning `serve` to the first healthy answer
        stop_live(live)
    print("\nstart-up to first healthy /api/health/ (median of 5):")
    print(f"  bare aiohttp server      {statistics.median(bare) * 1000:7.0f} ms")
    print(f"  videostation serve       {statistics.median(ours) * 1000:7.0f} ms")
    print(f"  ratio                    {statistics.median(ours) / statistics.median(bare):7.2f}x")
    assert ours and bare
