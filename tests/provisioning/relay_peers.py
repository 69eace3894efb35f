"""The ends around the relay, run inside their network namespaces by test_relay.py
(``ip netns exec <ns> python -m tests.provisioning.relay_peers <command> ...``): a test
process cannot enter a namespace itself, so each end is a small process printing one
line of JSON.

- ``station CERT KEY ADDRESS LOG``: station A's TLS server on ADDRESS:443 (it answers
  ``station-a`` and logs every accepted connection to LOG) and its HTTP server on
  ADDRESS:80 (it answers an ACME challenge path with ``token-for-<path>``).
- ``tls HOST SNI CAFILE``: a TLS client to HOST:443 naming SNI, verifying the station's
  certificate for that name against CAFILE: ``{"ok": true, "answer": ...}`` or the error.
- ``http HOST HOSTHEADER PATH``: one plain HTTP/1.0 request: the status line, or
  ``closed`` when the connection ends with no answer.
- ``turn SERVER PORT USER PASSWORD PEER SINK``: a TURN allocation with REST credentials;
  for each comma-separated PEER address the CreatePermission status (200 or coturn's
  error code); then data sent through the relay to SINK (an address of this namespace,
  which listens there): ``"delivered"`` with the relayed source, or ``"lost"``.
"""

from __future__ import annotations

import asyncio
import http.server
import json
import socket
import ssl
import sys
import threading
from pathlib import Path

from aioice import stun
from aioice.turn import UDP_TRANSPORT, TurnClientUdpProtocol


def station(cert: str, key: str, address: str, log: str) -> None:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)

    class Challenge(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = f"token-for-{self.path}".encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            with open(log, "a") as handle:
                handle.write(f"http {self.headers.get('Host')} {self.path}\n")

        def log_message(self, format: str, *args: object) -> None:
            pass

    web = http.server.HTTPServer((address, 80), Challenge)
    threading.Thread(target=web.serve_forever, daemon=True).start()
    with socket.create_server((address, 443)) as listener:
        print(json.dumps({"listening": address}), flush=True)
        while True:
            conn, peer = listener.accept()
            with open(log, "a") as handle:
                handle.write(f"tls {peer[0]}\n")
            try:
                with context.wrap_socket(conn, server_side=True) as tls:
                    tls.settimeout(5)
                    tls.sendall(b"station-a\n")
            except (OSError, ssl.SSLError):
                conn.close()


def tls(host: str, sni: str, cafile: str) -> dict[str, object]:
    context = ssl.create_default_context(cafile=cafile)
    try:
        with (
            socket.create_connection((host, 443), timeout=5) as raw,
            context.wrap_socket(raw, server_hostname=sni) as conn,
        ):
            return {"ok": True, "answer": conn.recv(100).decode()}
    except (OSError, ssl.SSLError) as exc:
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}


def http_get(host: str, host_header: str, path: str) -> dict[str, object]:
    with socket.create_connection((host, 80), timeout=5) as conn:
        conn.sendall(f"GET {path} HTTP/1.0\r\nHost: {host_header}\r\n\r\n".encode())
        data = b""
        while chunk := conn.recv(4096):
            data += chunk
    if not data:
        return {"status": "closed"}
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
    return {"status": lines[0], "location": headers.get("Location"), "body": body.decode()}


async def turn(
    server: str, port: int, user: str, password: str, peers: list[str], sink: str
) -> dict[str, object]:
    loop = asyncio.get_running_loop()
    _, client = await loop.create_datagram_endpoint(
        lambda: TurnClientUdpProtocol(
            (server, port), username=user, password=password, lifetime=600,
            channel_refresh_time=500,
        ),
        remote_addr=(server, port),
    )  # fmt: skip
    result: dict[str, object] = {}
    try:
        allocate = stun.Message(
            message_method=stun.Method.ALLOCATE, message_class=stun.Class.REQUEST
        )
        allocate.attributes["LIFETIME"] = 600
        allocate.attributes["REQUESTED-TRANSPORT"] = UDP_TRANSPORT
        response, _ = await asyncio.wait_for(client.request_with_retry(allocate), 10)
        result["relayed"] = list(response.attributes["XOR-RELAYED-ADDRESS"])
        codes: dict[str, int] = {}
        for peer in peers:
            request = stun.Message(
                message_method=stun.Method.CREATE_PERMISSION, message_class=stun.Class.REQUEST
            )
            request.attributes["XOR-PEER-ADDRESS"] = (peer, 9)
            try:
                await asyncio.wait_for(client.request_with_retry(request), 10)
                codes[peer] = 200
            except stun.TransactionFailed as exc:
                codes[peer] = int(exc.response.error_code or 0)
        result["permissions"] = codes
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as listener:
            listener.bind((sink, 0))
            listener.settimeout(5)
            await asyncio.wait_for(client.send_data(b"through", listener.getsockname()), 10)
            try:
                data, source = await asyncio.to_thread(listener.recvfrom, 100)
                result["sink"] = {"data": data.decode(), "source": list(source)}
            except TimeoutError:
                result["sink"] = "lost"
        await asyncio.wait_for(client.delete(), 10)
    finally:
        client.transport.close()
    return result


def main(argv: list[str]) -> None:
    command, args = argv[0], argv[1:]
    if command == "station":
        station(*args)
    elif command == "tls":
        print(json.dumps(tls(*args)))
    elif command == "http":
        print(json.dumps(http_get(*args)))
    elif command == "turn":
        server, port, user, password, peers, sink = args
        print(
            json.dumps(asyncio.run(turn(server, int(port), user, password, peers.split(","), sink)))
        )
    else:
        raise SystemExit(f"unknown command {command} ({Path(__file__).name})")


if __name__ == "__main__":
    main(sys.argv[1:])
