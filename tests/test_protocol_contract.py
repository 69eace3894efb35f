"""One owner for the wire vocabulary: what appliance/protocol.py declares, the service
sends, docs/signaling.md documents and the pages (web/js) understand are the same
words. A reason, code or message added on one side only fails here."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from appliance import errors, protocol
from appliance.protocol import (
    BYE_REASONS,
    ERROR_CODES,
    RETRIED_BYE_REASONS,
    Bye,
    CallState,
    Connect,
    Disconnect,
    Error,
    IceServers,
    MicLevel,
    PeerJoined,
    PeerLeft,
    PeerUpdated,
    Pong,
    Relayed,
    ServerMessage,
    Station,
    Welcome,
)

ROOT = Path(__file__).resolve().parent.parent
DOC = (ROOT / "docs" / "signaling.md").read_text()
WEB = ROOT / "web" / "js"
PROTOCOL_JS = (WEB / "protocol.js").read_text()
# error.* keys that are the page's own texts, not codes the service sends.
CLIENT_ONLY_ERROR_KEYS = {"network", "unexpected", "other"}
# Codes the pages make up for their own reportError() (never sent by the service).
CLIENT_ONLY_CODES = {"negotiation", "candidate", "internal"}

PEER: protocol.PeerObject = {
    "id": "p1",
    "name": "Grandma",
    "role": "guest",
    "kind": "remote",
    "participant": "p1",
    "sends": ["audio", "video"],
    "receives": ["audio", "video"],
    "muted": {"audio": False, "video": False},
}
CALL: protocol.CallObject = {
    "state": "idle",
    "callers": [],
    "in_call": [],
    "knocking": [],
    "live": False,
    "unreached": [],
    "since": 0.0,
    "ring_timeout_at": None,
    "auto_answer_at": None,
    "ended": None,
    "quiet": False,
    "quiet_until": None,
    "audio_muted": False,
    "video_muted": False,
}
# One of every message the service sends (a new one must be added here).
SAMPLES: list[ServerMessage] = [
    Welcome("p1", "guest", {"id": "r", "name": "R", "is_station": True}, [], [PEER], CALL, "S"),
    PeerJoined(PEER),
    PeerUpdated(PEER),
    PeerLeft("p1"),
    Connect("station", polite=True, send=False),
    Disconnect("station"),
    Relayed("station", protocol.Description("offer", "v=0"), session=1),
    CallState(CALL),
    Error("forbidden", "No.", "call"),
    Bye("revoked"),
    Pong(),
    MicLevel(-20.0, muted=False),
    IceServers([{"urls": ["stun:stun.example.net"]}]),
    Station("Dacha", "ru"),
]


def js_set(source: str, name: str) -> set[str]:
    """The strings of ``const NAME = new Set([...])`` in a JS file."""
    match = re.search(rf"const {name} = new Set\(\[([^\]]*)\]\)", source)
    assert match, f"{name} not found"
    return set(re.findall(r"'([a-z_]+)'", match.group(1)))


def documented(word: str) -> bool:
    return f"`{word}`" in DOC


def test_every_server_message_type_is_sampled_documented_and_handled_by_the_pages() -> None:
    union = set(ServerMessage.__args__)  # type: ignore[attr-defined]
    assert {type(m) for m in SAMPLES} == union, "add a sample of the new message"
    types = {protocol.to_wire(m)["type"] for m in SAMPLES}
    assert len(types) == len(SAMPLES)
    server_table = DOC[DOC.index("## Server → client") : DOC.index("### The call object")]
    for kind in types:
        assert f"| `{kind}` |" in server_table, f"{kind} is not in docs/signaling.md"
        assert f"case '{kind}'" in PROTOCOL_JS, f"web/js/protocol.js ignores {kind}"


def test_encode_is_compact_json_of_the_wire_object() -> None:
    for message in SAMPLES:
        text = protocol.encode(message)
        assert json.loads(text) == protocol.to_wire(message)
        assert ", " not in text.replace('", "', "")  # compact separators
    assert json.loads(protocol.encode(SAMPLES[6])) == {
        "type": "signal",
        "from": "station",
        "description": {"type": "offer", "sdp": "v=0"},
        "session": 1,
    }


def test_a_relayed_signal_carries_what_arrived() -> None:
    """What the hub relays between browsers is the parsed payload, field for field."""
    for frame in (
        '{"type":"signal","to":"p2","description":{"type":"answer","sdp":"v=0"}}',
        '{"type":"signal","to":"p2","description":{"type":"rollback"}}',
        '{"type":"signal","to":"p2","candidate":{"candidate":"candidate:1 1 udp 1 1.2.3.4 5 '
        'typ host","sdpMid":"0","sdpMLineIndex":0,"usernameFragment":"u"}}',
        '{"type":"signal","to":"p2","candidate":null}',
    ):
        sent = json.loads(frame)
        signal = protocol.parse(frame)
        assert isinstance(signal, protocol.Signal)
        out = protocol.to_wire(Relayed("p1", signal.payload))
        expected = {k: v for k, v in sent.items() if k not in ("type", "to")}
        if "description" in expected:
            expected["description"].setdefault("sdp", "")
        assert out == {"type": "signal", "from": "p1", **expected}


def test_every_bye_reason_and_error_code_is_documented() -> None:
    missing = [w for w in (*BYE_REASONS, *ERROR_CODES) if not documented(w)]
    assert missing == [], f"not in docs/signaling.md: {missing}"
    bye_row = next(line for line in DOC.splitlines() if line.startswith("| `bye` |"))
    listed = set(re.findall(r"`([a-z_]+)`", bye_row.split("|")[2])) - {"reason"}
    assert listed == set(BYE_REASONS)


def test_the_pages_know_every_final_bye_reason() -> None:
    assert js_set(PROTOCOL_JS, "RETRIED_BYE") == set(RETRIED_BYE_REASONS)
    assert js_set(PROTOCOL_JS, "FINAL_BYE") == set(BYE_REASONS) - set(RETRIED_BYE_REASONS)


def _error_classes() -> list[type[errors.VideoStationError]]:
    found: list[type[errors.VideoStationError]] = []
    todo: list[type[errors.VideoStationError]] = [errors.VideoStationError]
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo += cls.__subclasses__()
    return found


def test_every_error_code_is_one_an_error_class_or_the_service_sends() -> None:
    from_classes = {cls.code for cls in _error_classes() if cls.__module__ == errors.__name__}
    assert from_classes <= set(ERROR_CODES)
    # The two the service sends without an error class: the hub's version check and
    # the REST middleware's fallback for an aiohttp HTTP error without a code of its own.
    assert set(ERROR_CODES) - from_classes == {"unsupported_version", "http_error"}
    sources = (ROOT / "appliance" / "signaling.py").read_text() + (
        ROOT / "appliance" / "http" / "jsonerrors.py"
    ).read_text()
    assert '"unsupported_version"' in sources and '"http_error"' in sources


def _page_sources() -> dict[str, str]:
    return {
        str(p.relative_to(WEB)): p.read_text()
        for p in sorted(WEB.rglob("*.js"))
        if p.parent.name != "i18n"
    }


def test_every_code_the_pages_translate_is_one_the_service_sends() -> None:
    for lang in ("en", "ru"):
        text = (WEB / "i18n" / f"{lang}.js").read_text()
        keys = set(re.findall(r'^  "error\.([a-z_]+)":', text, re.M))
        assert keys, lang
        stale = keys - set(ERROR_CODES) - CLIENT_ONLY_ERROR_KEYS
        assert stale == set(), f"{lang}.js translates codes the service never sends: {stale}"


def test_every_code_and_reason_the_pages_compare_with_is_on_the_wire() -> None:
    known_codes = set(ERROR_CODES) | CLIENT_ONLY_CODES
    for name, source in _page_sources().items():
        codes = set(re.findall(r"\bcode (?:===|!==) '([a-z_]+)'", source))
        assert codes <= known_codes, f"{name} compares with unknown codes {codes - known_codes}"
        reasons = set(re.findall(r"\breason (?:===|!==) '([a-z_]+)'", source))
        assert reasons <= set(BYE_REASONS), f"{name}: unknown bye reasons {reasons}"
    fatal = js_set(PROTOCOL_JS, "FATAL_JOIN_ERRORS")
    assert fatal <= set(ERROR_CODES), fatal - set(ERROR_CODES)


def test_the_scan_catches_a_stale_code() -> None:
    """The checks above read the files with regular expressions: they must see a code."""
    sample = "if (code === 'token_revoked') x(); else if (reason !== 'gone') y();"
    assert re.findall(r"\bcode (?:===|!==) '([a-z_]+)'", sample) == ["token_revoked"]
    assert re.findall(r"\breason (?:===|!==) '([a-z_]+)'", sample) == ["gone"]
    assert js_set("const FINAL_BYE = new Set(['a', 'b_c']);", "FINAL_BYE") == {"a", "b_c"}


@pytest.mark.parametrize("reason", BYE_REASONS)
def test_every_bye_reason_has_a_page_outcome(reason: str) -> None:
    """room.js either shows a state for the reason, reconnects, or finishes with it."""
    room = (WEB / "views" / "room.js").read_text()
    finish = re.search(r"const key = \[([^\]]*)\]\.includes\(reason\)", room)
    assert finish
    handled = (
        set(re.findall(r"reason === '([a-z_]+)'", room))
        | set(re.findall(r"'([a-z_]+)'", finish.group(1)))
        | set(RETRIED_BYE_REASONS)
    )
    # `expired` ends on the generic finished page ("The call has ended").
    assert reason in handled or reason == "expired"
