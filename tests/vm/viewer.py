"""Test-only viewer, run inside the VM with the station's venv (aiohttp + aiortc).

    viewer.py PASSWORD KIOSK_KEY [BASE_URL]

Logs in as a user, joins the station's room (which rings the station), answers with
the kiosk's key (the kiosk session's `call answer`), takes the station peer's offer
with aiortc and decodes video and audio frames. Prints one JSON line with what it saw.
"""

import asyncio
import json
import sys
import time
from typing import Any

import aiohttp
from aiortc import RTCPeerConnection, RTCSessionDescription


async def expect(ws: Any, kind: str, timeout: float = 30, **match: Any) -> dict[str, Any]:
    while True:
        msg = await asyncio.wait_for(ws.receive(), timeout)
        if msg.type != aiohttp.WSMsgType.TEXT:
            raise RuntimeError(f"socket closed while waiting for {kind}: {msg}")
        data = json.loads(msg.data)
        if data["type"] == kind and all(data.get(k) == v for k, v in match.items()):
            return dict(data)


async def main(password: str, kiosk_key: str, base: str) -> dict[str, Any]:
    origin = {"Origin": base}
    out: dict[str, Any] = {}
    # unsafe=True: aiohttp keeps no cookies for IP addresses otherwise.
    jars = aiohttp.CookieJar(unsafe=True), aiohttp.CookieJar(unsafe=True)
    async with (
        aiohttp.ClientSession(base, cookie_jar=jars[0]) as user,
        aiohttp.ClientSession(base, cookie_jar=jars[1]) as kiosk,
    ):
        resp = await user.post("/api/auth/login", json={"password": password}, headers=origin)
        assert resp.status == 200, await resp.text()
        resp = await kiosk.post("/api/auth/kiosk", json={"key": kiosk_key}, headers=origin)
        assert resp.status == 200, await resp.text()
        ws = await user.ws_connect("/ws/", headers=origin)
        await ws.send_json({"type": "join", "version": 1, "room": "station", "name": "VM viewer"})
        welcome = await expect(ws, "welcome")
        out["screen_in_room"] = any(p.get("kind") == "screen" for p in welcome["peers"])
        ringing = await expect(ws, "call-state")
        out["rang"] = ringing["call"]["state"]
        kws = await kiosk.ws_connect("/ws/", headers=origin)
        await kws.send_json({"type": "join", "version": 1, "room": "station", "name": "kiosk"})
        await expect(kws, "welcome")
        started = time.monotonic()
        await kws.send_json({"type": "call", "action": "answer"})
        await expect(ws, "connect", peer_id="station")
        offer = await expect(ws, "signal", timeout=60)
        pc = RTCPeerConnection()
        frames: dict[str, list[Any]] = {"video": [], "audio": []}
        done = asyncio.Event()
        pumps: set[asyncio.Future[None]] = set()

        @pc.on("track")
        def on_track(track: Any) -> None:
            async def pump() -> None:
                while True:  # every frame until the call ends (the last 500 kept)
                    frames[track.kind].append(await track.recv())
                    del frames[track.kind][:-500]
                    if all(len(v) >= 20 for v in frames.values()):
                        done.set()

            pumps.add(asyncio.ensure_future(pump()))

        await pc.setRemoteDescription(RTCSessionDescription(**offer["description"]))
        await pc.setLocalDescription(await pc.createAnswer())
        await ws.send_json(
            {"type": "signal", "to": "station",
             "description": {"type": "answer", "sdp": pc.localDescription.sdp}}
        )  # fmt: skip
        await asyncio.wait_for(done.wait(), 120)
        out["seconds_to_media"] = round(time.monotonic() - started, 1)
        video = frames["video"][-1]
        audio = frames["audio"][-1]
        out["video"] = {"width": video.width, "height": video.height}
        # The test pattern moves: two decoded frames differ. Compared within one size: on
        # a starved VM the station may move this viewer to its low rung mid-call.
        by_size: dict[tuple[int, int], list[Any]] = {}
        for frame in frames["video"][2:]:
            by_size.setdefault((frame.width, frame.height), []).append(frame)
        out["video_sizes"] = sorted(f"{w}x{h}" for w, h in by_size)
        most = max(by_size.values(), key=len)
        first = most[0].to_ndarray(format="gray")
        last = most[-1].to_ndarray(format="gray")
        out["video_changes"] = bool((first != last).any())
        out["video_mean"] = float(last.mean())
        out["audio"] = {"sample_rate": audio.sample_rate, "samples": audio.samples}
        # What the station captures while in the call (camera and microphone sources):
        # the microphone may stand in with the test tone while PipeWire is still starting,
        # and a starved arm64 VM can stall pw-record for 2 s ("unavailable: pulse ...",
        # re-opened in the background): wait for the source to be capturing, not named.
        while True:
            resp = await user.get("/api/health/")
            out["health_in_call"] = await resp.json()
            if str(out["health_in_call"].get("microphone")).startswith("pulse "):
                break
            if time.monotonic() - started > 150:
                break
            await asyncio.sleep(0.5)
        out["seconds_to_microphone"] = round(time.monotonic() - started, 1)
        # What the viewer hears from then on: the room (silence on the VM's loopback
        # card), not the tone (peak 8191) -- once what it has decoded catches up (the
        # viewer itself runs in the VM: seconds behind under arm64 emulation)
        switched = time.monotonic()
        while True:
            await asyncio.sleep(0.5)
            heard = frames["audio"][-25:]
            peak = max(int(abs(frame.to_ndarray()).max()) for frame in heard)
            if peak < 1000 or time.monotonic() - switched > 30:
                break
        out["audio_peak_after_microphone"] = peak
        out["seconds_to_quiet"] = round(time.monotonic() - switched, 1)
        try:
            await kws.send_json({"type": "call", "action": "hangup"})
        except (aiohttp.ClientError, ConnectionError):  # the kiosk's socket was closed
            kws = await kiosk.ws_connect("/ws/", headers=origin)
            await kws.send_json({"type": "join", "version": 1, "room": "station", "name": "kiosk"})
            await expect(kws, "welcome")
            await kws.send_json({"type": "call", "action": "hangup"})
        for task in pumps:
            task.cancel()
        await pc.close()
        await ws.close()
        await kws.close()
    return out


if __name__ == "__main__":
    base_url = sys.argv[3] if len(sys.argv) > 3 else "http://127.0.0.1:8080"
    print(json.dumps(asyncio.run(main(sys.argv[1], sys.argv[2], base_url))))
