#!/usr/bin/python3
"""Test-only command agent baked into the VM test images (never into a station).

Listens on TCP 7000 inside the VM; QEMU's user network forwards one host loopback
port to it, and the VM has no other network. One JSON request per connection:
{"argv": [...], "stdin": "...", "timeout": N} -> {"rc", "stdout", "stderr"}.
"""

import json
import socketserver
import subprocess


class Handler(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        request = json.loads(self.rfile.readline())
        try:
            done = subprocess.run(
                request["argv"],
                input=request.get("stdin", ""),
                capture_output=True,
                text=True,
                timeout=request.get("timeout", 60),
            )
            answer = {"rc": done.returncode, "stdout": done.stdout, "stderr": done.stderr}
        except subprocess.TimeoutExpired as exc:
            answer = {"rc": -1, "stdout": str(exc.stdout or ""), "stderr": "timeout"}
        except OSError as exc:
            answer = {"rc": -2, "stdout": "", "stderr": str(exc)}
        self.wfile.write(json.dumps(answer).encode() + b"\n")


class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


if __name__ == "__main__":
    with Server(("0.0.0.0", 7000), Handler) as server:  # noqa: S104 (inside the VM only)
        server.serve_forever()
