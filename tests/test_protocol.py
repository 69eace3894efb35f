"""The signaling codec without sockets (appliance/protocol.py): every client message
parsed into its dataclass, every bad frame refused with a signaling error, and every
server message serialised the one way (docs/signaling.md)."""

from __future__ import annotations

import json

import pytest

from appliance import protocol
from appliance.errors import MalformedMessage, MessageTooLarge, UnknownMessageType

# --- client -> server ---------------------------------------------------------------


def test_codec_parses_every_client_message() -> None:
    assert protocol.parse(
        '{"type":"join","version":1,"room":"r","name":" A  B "}'
    ) == protocol.Join(1, "r", "A B")
    # a page on a finished call's card rejoins without ringing (issue 24, item 6)
    assert protocol.parse(
        '{"type":"join","version":1,"room":"r","name":"A","ring":false}'
    ) == protocol.Join(1, "r", "A", ring=False)
    sig = protocol.parse(
        '{"type":"signal","to":"p1","candidate":{"candidate":"c","sdpMid":"0","sdpMLineIndex":0}}'
    )
    assert sig == protocol.Signal("p1", protocol.Candidate("c", "0", 0))
    assert protocol.parse('{"type":"signal","to":"p1","candidate":null}') == protocol.Signal(
        "p1", protocol.EndOfCandidates()
    )
    assert protocol.parse('{"type":"signal","to":"station","restart":true}') == protocol.Signal(
        "station", protocol.Restart()
    )
    assert protocol.parse('{"type":"call","action":"answer"}') == protocol.Call("answer")
    assert protocol.parse('{"type":"media","audio":true,"video":false}') == protocol.Media(
        True, False
    )
    assert protocol.parse('{"type":"leave"}') == protocol.Leave()
    assert protocol.parse('{"type":"ping"}') == protocol.Ping()


@pytest.mark.parametrize(
    ("frame", "error"),
    [
        ("nope", MalformedMessage),
        ("[]", MalformedMessage),
        ('{"type": 5}', MalformedMessage),
        ('{"type":"warp"}', UnknownMessageType),
        ('{"type":"join","room":"r"}', MalformedMessage),
        ('{"type":"join","version":true,"room":"r"}', MalformedMessage),
        ('{"type":"join","version":1,"room":"' + "r" * 65 + '"}', MalformedMessage),
        ('{"type":"join","version":1,"room":"r","name":"' + "n" * 41 + '"}', MalformedMessage),
        ('{"type":"join","version":1,"room":"r","ring":"no"}', MalformedMessage),
        ('{"type":"signal","to":"p"}', MalformedMessage),
        ('{"type":"signal","to":"p","description":{"type":"offer"}}', MalformedMessage),
        ('{"type":"signal","to":"p","description":{"type":"bogus","sdp":"x"}}', MalformedMessage),
        (
            '{"type":"signal","to":"p","description":{"type":"offer","sdp":"x"},"candidate":null}',
            MalformedMessage,
        ),
        ('{"type":"signal","to":"p","candidate":{"candidate":1}}', MalformedMessage),
        (
            '{"type":"signal","to":"p","candidate":{"candidate":"c","sdpMLineIndex":-1}}',
            MalformedMessage,
        ),
        (
            '{"type":"signal","to":"p","candidate":{"candidate":"c","usernameFragment":5}}',
            MalformedMessage,
        ),
        ('{"type":"signal","to":"p","restart":false}', MalformedMessage),
        ('{"type":"call","action":"explode"}', MalformedMessage),
        ('{"type":"media","audio":"yes","video":true}', MalformedMessage),
        ("x" * (protocol.MAX_FRAME_BYTES + 1), MessageTooLarge),
        ("[" * 100000 + "]" * 100000, MessageTooLarge),
        ("[" * 30000 + "]" * 30000, MalformedMessage),
    ],
)
def test_codec_refuses_bad_frames(frame: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        protocol.parse(frame)


def test_codec_refuses_binary() -> None:
    with pytest.raises(MalformedMessage):
        protocol.parse(b"\x00\x01")


def test_signal_payloads_are_typed() -> None:
    assert protocol.parse_payload({"restart": True}) == protocol.Restart()
    assert protocol.parse_payload(
        {"candidate": {"candidate": "c", "sdpMid": None, "sdpMLineIndex": 1}}
    ) == protocol.Candidate("c", None, 1, None)
    assert protocol.parse_payload({"description": {"type": "rollback"}}) == protocol.Description(
        "rollback", ""
    )
    for bad in ({}, {"restart": True, "candidate": None}, {"description": "answer"}):
        with pytest.raises(MalformedMessage):
            protocol.parse_payload(bad)


# --- server -> client ---------------------------------------------------------------


def test_server_messages_serialise_as_documented() -> None:
    def wire(message: protocol.ServerMessage) -> dict[str, object]:
        out: dict[str, object] = json.loads(protocol.encode(message))
        return out

    assert wire(protocol.Bye("revoked")) == {"type": "bye", "reason": "revoked"}
    assert wire(protocol.Error("not_connected", "No.")) == {
        "type": "error",
        "code": "not_connected",
        "message": "No.",
    }
    assert wire(protocol.Error("forbidden", "No.", "call"))["ref"] == "call"
    assert wire(protocol.Disconnect("station")) == {"type": "disconnect", "peer_id": "station"}
    assert wire(protocol.Relayed("pA", protocol.EndOfCandidates())) == {
        "type": "signal",
        "from": "pA",
        "candidate": None,
    }
    assert wire(protocol.Relayed("pA", protocol.Candidate("c", "0", 0, "u"))) == {
        "type": "signal",
        "from": "pA",
        "candidate": {"candidate": "c", "sdpMid": "0", "sdpMLineIndex": 0, "usernameFragment": "u"},
    }
    welcome = wire(
        protocol.Welcome(
            peer_id="pA",
            role="guest",
            room={"id": "station", "name": "Station", "is_station": True},
            ice_servers=[],
            peers=[],
            call=None,
            station_name="Front door",
        )
    )
    assert welcome == {
        "type": "welcome",
        "version": protocol.VERSION,
        "peer_id": "pA",
        "role": "guest",
        "room": {"id": "station", "name": "Station", "is_station": True},
        "ice_servers": [],
        "peers": [],
        "call": None,
        "station": {"name": "Front door"},
    }
