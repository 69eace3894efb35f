"""A phone for the network test bed: an aiortc viewer run inside a namespace.

``ip netns exec netph1 python -m tests.net.phone http://198.18.0.2:8080 PASSWORD 40``
logs in, joins the station's room (the station auto-answers users), answers the
station peer's offer with the ICE servers the station handed out, and prints one JSON
line a second: frames decoded, picture size, the longest gap between frames and the
time spent frozen (a gap longer than max(3 x the mean frame interval, mean + 150 ms),
as Chromium's ``freezeCount`` counts them), the connection state and the candidate
types of the pair in use. Ends with a ``{"done": ...}`` line.

aiortc instead of Chromium: Chromium inside a namespace needs a display-less sandbox
set-up per namespace; aiortc runs the same ICE/TURN/RTCP (REMB from abs-send-time,
receiver reports, NACK, PLI) the station adapts to.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import os
import sys
import time
from typing import Any

import aiohttp
from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCSessionDescription

from appliance.media.ice import keep_the_best_nominated_pair

# A browser, as the controlled ICE agent, moves to a pair the station nominates only if
# it ranks higher (libwebrtc compares them); aioice takes whichever came last. The
# phone stands in for a browser, so it follows the browser's rule.
keep_the_best_nominated_pair()


def emit(**fields: Any) -> None:
    print(json.dumps(fields), flush=True)


def pair_types(pc: RTCPeerConnection) -> list[str]:
    """The local and remote candidate types of the nominated ICE pair."""
    for transceiver in pc.getTransceivers():
        ice = transceiver.receiver.transport.transport
        connection = getattr(ice, "_connection", None)
        nominated = getattr(connection, "_nominated", {}) if connection else {}
        for pair in nominated.values():
            return [pair.local_candidate.type, pair.remote_candidate.type]
    return []


async def run(base: str, password: str, seconds: float) -> None:
    headers = {"Origin": base}
    # unsafe: the station is reached by IP address, whose cookies aiohttp drops otherwise
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(headers=headers, cookie_jar=jar) as http:
        resp = await http.post(f"{base}/api/auth/login", json={"password": password})
        if resp.status != 200:
            emit(error=f"login: {resp.status}")
            return
        ws = await http.ws_connect(f"{base}/ws/")
        await ws.send_json({"type": "join", "version": 1, "room": "station", "name": "Phone"})
        ice: list[RTCIceServer] = []
        pc: RTCPeerConnection | None = None
        frames: list[tuple[float, int, int]] = []
        states: list[str] = []
        pumps: set[asyncio.Future[None]] = set()
        deadline = time.monotonic() + seconds

        async def pump(track: Any) -> None:
            while True:
                try:
                    frame = await track.recv()
                except Exception:
                    return
                frames.append((time.monotonic(), frame.width, frame.height))

        async def reader() -> None:
            nonlocal pc, ice
            async for msg in ws:
                data = json.loads(msg.data)
                kind = data.get("type")
                if kind == "welcome":
                    ice = [
                        RTCIceServer(s["urls"], s.get("username"), s.get("credential"))
                        for s in data.get("ice_servers", [])
                    ]
                elif kind == "error":
                    emit(signaling_error=data)
                elif kind == "signal" and data.get("from") == "station" and "description" in data:
                    pc = RTCPeerConnection(RTCConfiguration(iceServers=ice or None))
                    connection = pc

                    @connection.on("track")
                    def on_track(track: Any) -> None:
                        if track.kind == "video":
                            pumps.add(asyncio.ensure_future(pump(track)))

                    @connection.on("connectionstatechange")
                    def on_state(connection: RTCPeerConnection = connection) -> None:
                        states.append(connection.connectionState)
                        emit(state=connection.connectionState, pair=pair_types(connection))

                    await pc.setRemoteDescription(RTCSessionDescription(**data["description"]))
                    await pc.setLocalDescription(await pc.createAnswer())
                    local = pc.localDescription
                    await ws.send_json(
                        {
                            "type": "signal",
                            "to": "station",
                            "description": {"type": local.type, "sdp": local.sdp},
                        }
                    )

        task = asyncio.ensure_future(reader())
        last = 0
        start = time.monotonic()
        while time.monotonic() < deadline:
            await asyncio.sleep(1.0)
            window = [f for f in frames[last:]]
            last = len(frames)
            pair = pair_types(pc) if pc else []
            emit(t=round(time.monotonic() - start, 1), pair=pair, **summary(window, frames))
        metrics = await (await http.get(f"{base}/api/metrics/")).text()
        relayed = [line for line in metrics.splitlines() if "viewer_relayed{" in line]
        emit(done=True, states=states, pair=pair_types(pc) if pc else [], station=relayed)
        task.cancel()
        if pc is not None:
            await pc.close()
        await ws.close()


def summary(
    window: list[tuple[float, int, int]], every: list[tuple[float, int, int]]
) -> dict[str, Any]:
    """Frames, size and freezes in ``window`` (gaps measured against the frame before)."""
    if not window:
        return {"frames": 0, "size": None, "frozen": 1.0}
    index = len(every) - len(window)
    times = [every[index - 1][0]] if index > 0 else []
    times += [f[0] for f in window]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    mean = sum(gaps) / len(gaps) if gaps else 0.0
    frozen = sum(g for g in gaps if g > max(3 * mean, mean + 0.15))
    return {
        "frames": len(window),
        "size": [window[-1][1], window[-1][2]],
        "max_gap": round(max(gaps), 3) if gaps else None,
        "frozen": round(frozen, 3),
    }


if __name__ == "__main__":
    if os.environ.get("NET_PHONE_DEBUG"):
        level = logging.DEBUG if os.environ["NET_PHONE_DEBUG"] == "2" else logging.INFO
        logging.basicConfig(level=level, stream=sys.stderr)
    asyncio.run(run(sys.argv[1], sys.argv[2], float(sys.argv[3])))
