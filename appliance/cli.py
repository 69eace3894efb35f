"""The ``videostation`` command: serve, set-password, guest-link, kiosk-url, kiosk-watch,
metrics-token, doctor."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import html
import logging
import os
import sqlite3
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from . import __version__, qr
from .config import Config, load
from .errors import ConfigError, VideoStationError

log = logging.getLogger(__name__)


def _common(parser: argparse.ArgumentParser, *, address: bool = False) -> None:
    parser.add_argument(
        "--config",
        type=Path,
        metavar="PATH",
        help="TOML config file (default: /etc/videostation/config.toml)",
    )
    parser.add_argument("--state-dir", metavar="DIR", help="state directory (database, keys)")
    if address:
        parser.add_argument("--host", help="address to listen on (default 127.0.0.1)")
        parser.add_argument("--port", type=int, help="TCP port (default 8080)")
        parser.add_argument(
            "--public-url",
            metavar="URL",
            help="base URL of guest links, e.g. https://door.example.net",
        )
        parser.add_argument("--cert", metavar="PEM", help="TLS certificate chain")
        parser.add_argument("--key", metavar="PEM", help="TLS private key")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="videostation",
        description="Video Station: a video-call appliance for a Raspberry Pi.",
    )
    parser.add_argument("--version", action="version", version=f"videostation {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    serve = sub.add_parser("serve", help="run the station service")
    _common(serve, address=True)
    serve.add_argument(
        "--camera", choices=["auto", "picamera2", "v4l2", "test"], help="camera source"
    )
    serve.add_argument(
        "--microphone", choices=["auto", "pulse", "alsa", "test"], help="microphone source"
    )
    serve.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])

    pw = sub.add_parser("set-password", help="set the master password")
    _common(pw)
    pw.add_argument(
        "--stdin",
        action="store_true",
        help="read the password from standard input instead of a prompt",
    )

    link = sub.add_parser("guest-link", help="make a guest link and print it with its QR code")
    _common(link, address=True)
    link.add_argument("room", nargs="?", help="room id (default: the station's room)")
    link.add_argument("--ttl", type=int, metavar="SECONDS", help="lifetime (default from config)")
    link.add_argument("--label", default="", help="who the link is for, e.g. Grandma")
    link.add_argument("--max-uses", type=int, metavar="N", help="how often it may be used")
    link.add_argument("--no-qr", action="store_true", help="print only the URL")

    kiosk = sub.add_parser("kiosk-url", help="print the URL of the station's own screen")
    _common(kiosk, address=True)
    kiosk.add_argument(
        "--page",
        type=Path,
        metavar="FILE",
        help="instead, write a page (mode 0600) that opens that URL, and print its file:// "
        "URL: the kiosk session opens it, so the key never is on a command line",
    )

    watch = sub.add_parser(
        "kiosk-watch",
        help="exit 1 when the kiosk's screen is not in the station room (the kiosk "
        "session restarts the screen then)",
    )
    _common(watch, address=True)
    watch.add_argument(
        "--grace", type=float, default=180, help="seconds the screen has to join (default 180)"
    )
    watch.add_argument(
        "--lost", type=float, default=60, help="seconds a lost screen has to return (default 60)"
    )
    watch.add_argument("--every", type=float, default=5, help="seconds between checks")
    token = sub.add_parser(
        "metrics-token",
        help="print the token Prometheus reads /api/metrics/ with (made on first use)",
    )
    _common(token)
    token.add_argument(
        "--rotate",
        action="store_true",
        help="make a new token; the previous one keeps working until the next rotation",
    )
    doctor = sub.add_parser("doctor", help="check the station and say what is wrong")
    _common(doctor, address=True)
    doctor.add_argument(
        "--make-cert",
        action="store_true",
        help="make a self-signed TLS certificate in the state dir",
    )
    doctor.add_argument(
        "--audio",
        action="store_true",
        help="only the audio check: play a test sound, record it through the echo canceller",
    )
    return parser


def load_config(args: argparse.Namespace) -> Config:
    overrides: dict[str, Any] = {"server.state_dir": getattr(args, "state_dir", None)}
    for flag, key in (
        ("host", "server.host"),
        ("port", "server.port"),
        ("public_url", "station.public_url"),
        ("cert", "server.cert"),
        ("key", "server.key"),
        ("camera", "camera.source"),
        ("microphone", "microphone.source"),
    ):
        overrides[key] = getattr(args, flag, None)
    return load(args.config, overrides)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = load_config(args)
    except ConfigError as exc:
        print(f"videostation: configuration error: {exc}", file=sys.stderr)
        return 2
    handler = COMMANDS[args.command]
    try:
        return int(handler(config, args))
    except KeyboardInterrupt:
        return 130
    except sqlite3.Error as exc:  # a full or read-only card: one line, not a traceback
        print(f"videostation: the state dir {config.state_path} cannot be written: {exc}",
              file=sys.stderr)  # fmt: skip
        return 1


# -- commands ------------------------------------------------------------------------


def cmd_serve(config: Config, args: argparse.Namespace) -> int:
    from .app import serve
    from .systemd import setup_logging

    setup_logging(level=getattr(logging, args.log_level))
    try:
        asyncio.run(serve(config))
    except VideoStationError as exc:
        print(f"videostation: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(
            f"videostation: cannot listen on {config.server.host}:{config.server.port}: "
            f"{exc.strerror or exc}",
            file=sys.stderr,
        )
        return 1
    return 0


def _auth(config: Config) -> Any:
    from .auth import Auth
    from .store import Store

    state = config.state_path
    state.mkdir(parents=True, exist_ok=True, mode=0o700)
    store = Store(state / "station.db")
    store.ensure_station_room(config.station.room_id, config.station.name_or_default)
    return Auth(store, state, station_room=config.station.room_id)


def cmd_set_password(config: Config, args: argparse.Namespace) -> int:
    if args.stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass("New master password: ")
        if getpass.getpass("Repeat it: ") != password:
            print("videostation: the passwords differ; nothing changed.", file=sys.stderr)
            return 1
    try:
        auth = _auth(config)
        replaced = auth.password_set
        auth.set_password(password)
    except ValueError as exc:
        print(f"videostation: {exc}", file=sys.stderr)
        return 1
    if replaced:
        print(f"Master password changed in {config.state_path}. Every user session was logged out.")
    else:
        print(f"Master password set in {config.state_path}.")
    return 0


def cmd_guest_link(config: Config, args: argparse.Namespace) -> int:
    auth = _auth(config)
    room = args.room or config.station.room_id
    try:
        auth.store.get_room(room)
    except LookupError:
        print(
            f"videostation: no room {room!r}. Rooms: "
            + ", ".join(r.id for r in auth.store.list_rooms()),
            file=sys.stderr,
        )
        return 1
    ttl = args.ttl or config.auth.guest_link_ttl_seconds
    if ttl < 60:
        print("videostation: --ttl must be at least 60 seconds.", file=sys.stderr)
        return 1
    issued = auth.make_guest_link(room, ttl=ttl, label=args.label, max_uses=args.max_uses)
    url = f"{config.base_url}/#/room/{room}?guest_token={issued.token}"
    if not args.no_qr:
        print(qr.terminal_text(url))
    print(url)
    return 0


def kiosk_url(config: Config, key: str) -> str:
    return f"{config.kiosk_base_url}/#/kiosk?key={key}"


def kiosk_page(url: str) -> str:
    """A page that opens ``url`` at once, without a script (a meta refresh).

    The kiosk session hands Chromium this file instead of the URL, which carries the
    kiosk key: a command line is readable by every local account (``ps``), a file
    of mode 0600 in the session's runtime dir only by the service user, who can read
    ``kiosk.key`` anyway. The kiosk page then drops the key from its address.

    >>> print(kiosk_page("http://127.0.0.1:8080/#/kiosk?key=a&b"))
    <!doctype html>
    <meta charset="utf-8">
    <meta http-equiv="refresh" content="0;url=http://127.0.0.1:8080/#/kiosk?key=a&amp;b">
    <title>Video Station</title>
    """
    return (
        "<!doctype html>\n"
        '<meta charset="utf-8">\n'
        f'<meta http-equiv="refresh" content="0;url={html.escape(url)}">\n'
        "<title>Video Station</title>"
    )


def write_private_file(path: Path, text: str) -> None:
    """Write ``path`` whole with mode 0600: a fresh file renamed over it, so a reader
    never sees half of it and an existing file or symlink there is replaced, not
    followed (in a sticky /tmp, another user's file is not replaced: an error)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # mode 0600
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text + "\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def cmd_kiosk_url(config: Config, args: argparse.Namespace) -> int:
    from .http.local import is_loopback

    url = kiosk_url(config, _auth(config).kiosk_key)
    if not is_loopback(urlsplit(config.kiosk_base_url).hostname):
        print(
            f"videostation: warning: {config.kiosk_base_url} is not a loopback address; the "
            "kiosk key is taken only over loopback, so this screen will not pair "
            "(under TLS, set server.kiosk_port)",
            file=sys.stderr,
        )
    if args.page is None:
        print(url)
        return 0
    try:
        write_private_file(args.page, kiosk_page(url))
    except OSError as exc:
        print(f"videostation: cannot write {args.page}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    print(args.page.absolute().as_uri())
    return 0


def cmd_kiosk_watch(config: Config, args: argparse.Namespace) -> int:
    from .kioskwatch import watch

    key = _auth(config).kiosk_key
    return watch(config, key, grace=args.grace, lost=args.lost, every=args.every)


def cmd_metrics_token(config: Config, args: argparse.Namespace) -> int:
    from .scrape import metrics_token

    try:
        print(metrics_token(config.state_path, rotate=args.rotate))
    except OSError as exc:
        print(f"videostation: cannot write the token: {exc.strerror or exc}", file=sys.stderr)
        return 1
    return 0


def cmd_doctor(config: Config, args: argparse.Namespace) -> int:
    from .doctor import run_doctor

    return run_doctor(config, make_cert=args.make_cert, audio=args.audio)


COMMANDS: dict[str, Callable[[Config, argparse.Namespace], int]] = {
    "serve": cmd_serve,
    "set-password": cmd_set_password,
    "guest-link": cmd_guest_link,
    "kiosk-url": cmd_kiosk_url,
    "kiosk-watch": cmd_kiosk_watch,
    "metrics-token": cmd_metrics_token,
    "doctor": cmd_doctor,
}
"""What each sub-command of ``build_parser`` runs."""


if __name__ == "__main__":
    sys.exit(main())
