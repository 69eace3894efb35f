"""Security properties that cut across modules: fuzzed input never crashes anything,
and guest tokens and secrets never reach the logs."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from appliance import protocol
from appliance.errors import SignalingError

from ..conftest import PASSWORD, ServiceHarness, http_json, login_cookie, start_live, stop_live

# Text includes lone surrogates ("\ud800" in JSON), which are not valid UTF-8.
TEXT = st.text(max_size=20) | st.text(
    st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF) | st.characters(), max_size=6
)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=12,
)
FIELDS = (
    "version",
    "room",
    "name",
    "to",
    "description",
    "candidate",
    "restart",
    "action",
    "audio",
    "video",
)
TYPES = st.sampled_from(["join", "signal", "call", "media", "leave", "ping", "x", ""])


@st.composite
def messages(draw: st.DrawFn) -> str:
    """Frames shaped like signaling messages, with every field possibly wrong."""
    body = draw(
        st.dictionaries(
            st.sampled_from([*FIELDS, "type"]),
            JSON,
            max_size=5,
        )
    )
    if draw(st.booleans()):
        body["type"] = draw(TYPES)
    return json.dumps(body)


@settings(max_examples=400, deadline=None)
@given(frame=st.one_of(messages(), st.text(max_size=200), TEXT))
def test_the_codec_only_ever_raises_signaling_errors(frame: str) -> None:
    try:
        message = protocol.parse(frame)
    except SignalingError:
        return
    assert isinstance(
        message,
        protocol.Join
        | protocol.Signal
        | protocol.Call
        | protocol.Media
        | protocol.Leave
        | protocol.Ping,
    )


def random_frames(count: int, seed: int = 7) -> list[str]:
    """Message-shaped frames with random (often wrong) fields, the same on every run."""
    rng = random.Random(seed)
    values: list[Any] = [
        None,
        True,
        0,
        -1,
        2**40,
        1.5,
        "",
        "x" * 70,
        "station",
        "p1",
        [],
        {},
        {"type": "offer", "sdp": "v=0"},
        {"candidate": 5},
        [1, [2, [3]]],
    ]
    keys = list(FIELDS)
    frames = []
    for _ in range(count):
        body = {k: rng.choice(values) for k in rng.sample(keys, rng.randint(0, 4))}
        # ("leave" closes the socket, as it should; "ping" would end the read loop early)
        body["type"] = rng.choice(["join", "signal", "call", "media", "x", 3])
        frames.append(json.dumps(body))
    return frames


async def test_fuzzed_signaling_never_breaks_the_hub(station: ServiceHarness) -> None:
    """Generated frames over one real socket: each is answered or accepted, the socket
    stays open, and the service stays healthy."""
    frames = random_frames(150)
    client = await station.user()
    ws = await client.ws_connect("/ws/")
    await ws.send_json({"type": "join", "version": 1, "room": "station", "name": "Fuzz"})
    for i, frame in enumerate(frames):
        await ws.send_str(frame)
        if i % 50 == 49:  # a valid message now and then: 100 errors in a row is a flood
            await ws.send_json({"type": "media", "audio": False, "video": False})
    await ws.send_json({"type": "ping"})
    errors = 0
    while True:  # everything before our ping was handled
        msg = await ws.receive(timeout=10)
        assert msg.type.name == "TEXT", msg
        answer = json.loads(msg.data)
        errors += answer["type"] == "error"
        if answer["type"] == "pong":
            break
    assert not ws.closed
    assert errors >= 100, "most random frames are wrong and must each get an error"
    health = await (await (await station.client()).get("/api/health/")).json()
    assert health["status"] == "ok"


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    body=JSON,
    path=st.sampled_from(
        [
            "/api/auth/login",
            "/api/auth/guest",
            "/api/auth/kiosk",
            "/api/rooms",
            "/api/rooms/station/generate-guest-link",
            "/api/kiosk/guest-link",
        ]
    ),
)
def test_fuzzed_bodies_get_json_answers_never_500(live: Any, body: Any, path: str) -> None:
    status, payload, _ = http_json(live.base_url + path, body, cookie=live.cookie)
    assert status < 500, payload
    if status >= 400:
        assert set(payload["error"]) == {"code", "message"}


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One running station, logged in as the user, for the body fuzzer."""
    station = start_live(tmp_path_factory.mktemp("fuzz"))
    station.cookie = login_cookie(station.base_url)  # type: ignore[attr-defined]
    yield station
    stop_live(station)


def test_guest_tokens_and_secrets_never_reach_the_log(tmp_path: Path) -> None:
    live = start_live(tmp_path, "--log-level", "DEBUG")
    try:
        url = live.guest_link(label="Grandma")
        token = url.split("guest_token=")[1]
        guest = f"{live.base_url}/api/auth/guest"
        assert http_json(guest, {"guest_token": token})[0] == 200
        for bad in (token + "x", token[:-5]):
            assert http_json(guest, {"guest_token": bad})[0] == 401
    finally:
        stop_live(live)
    log = live.log_path.read_text()
    assert "shutting down" in log  # the log was written
    secrets = [
        token,
        token.split(".")[2],
        (live.state_dir / "kiosk.key").read_text().strip(),
        (live.state_dir / "secret.key").read_text().strip(),
        PASSWORD,
    ]
    for secret in secrets:
        assert secret not in log
