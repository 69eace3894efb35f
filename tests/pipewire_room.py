"""A private PipeWire 0.3 daemon with a virtual room, for the audio system tests.

The room: a null sink ``room`` is the air in front of the station (the loudspeaker
plays into it, and so does a person standing there); a filter-chain convolves its
monitor with a small room impulse response (30 ms to the microphone, -6 dB, a
diffuse tail of RT60 0.25 s) and offers the result as the source ``room-mic``, the
station's microphone. The role's own echo-cancel drop-in is symlinked (not copied)
into the daemon's ``pipewire.conf.d``, so the tests exercise the shipped file.
WirePlumber (Debian's 0.4.13, on a private D-Bus session bus) links the streams as it
does on a station::

    with PipeWireRoom(tmp_path) as room:
        room.play(far_wav, "echo-cancel-sink")    # the caller, through the speaker
        room.env                                  # XDG_RUNTIME_DIR for clients

Every PipeWire tool call is wrapped in ``timeout`` (an unbounded ``pw-cli`` can
hang forever on a daemon that is going away).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import wave
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DROP_IN = ROOT / "ansible/roles/videostation/files/60-videostation-echo-cancel.conf"
RATE = 48000
PROGRAMS = ("pipewire", "wireplumber", "pw-play", "pw-record", "pw-dump", "dbus-daemon")
PACKAGES = "pipewire pipewire-bin wireplumber dbus-daemon"

DAEMON_CONF = """\
context.properties = {
    core.daemon = true
    core.name = pipewire-0
    link.max-buffers = 16
    default.clock.rate = 48000
    default.clock.allowed-rates = [ 48000 ]
}
context.spa-libs = {
    audio.convert.* = audioconvert/libspa-audioconvert
    support.* = support/libspa-support
}
context.modules = [
    # real-time data threads when allowed (root or rtkit): CI machines are busy
    { name = libpipewire-module-rt args = { nice.level = -11 } flags = [ ifexists nofail ] }
    { name = libpipewire-module-protocol-native }
    { name = libpipewire-module-profiler }
    { name = libpipewire-module-metadata }
    { name = libpipewire-module-spa-node-factory }
    { name = libpipewire-module-client-node }
    { name = libpipewire-module-access args = { } }
    { name = libpipewire-module-adapter }
    { name = libpipewire-module-link-factory }
]
context.objects = [
    { factory = spa-node-factory
      args = { factory.name = support.node.driver node.name = Dummy-Driver
               node.group = pipewire.dummy priority.driver = 20000 } }
    { factory = spa-node-factory
      args = { factory.name = support.node.driver node.name = Freewheel-Driver
               priority.driver = 19000 node.group = pipewire.freewheel node.freewheel = true } }
    { factory = adapter
      args = { factory.name = support.null-audio-sink node.name = room
               node.description = "The room (loudspeaker and air)" media.class = Audio/Sink
               audio.position = [ MONO ]
               adapter.auto-port-config = { mode = dsp monitor = true position = preserve } } }
]
"""

ROOM_CONF = """\
context.modules = [
  { name = libpipewire-module-filter-chain
    args = {
      node.description = "Room microphone"
      media.name = "Room microphone"
      audio.rate = 48000
      audio.channels = 1
      audio.position = [ MONO ]
      filter.graph = {
        nodes = [ { type = builtin name = air label = convolver
                    config = { filename = "%(ir)s" } } ]
      }
      capture.props = { node.name = "room-air" target.object = "room"
                        stream.capture.sink = true node.passive = true }
      playback.props = { node.name = "room-mic" node.description = "Room microphone"
                         media.class = Audio/Source }
    }
  }
]
"""


def missing_programs() -> list[str]:
    return [p for p in PROGRAMS if shutil.which(p) is None]


def write_wav(path: Path, samples: np.ndarray[Any, Any], rate: int = RATE) -> None:
    pcm = np.clip(samples, -32768, 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())


def room_impulse_response(path: Path) -> None:
    """30 ms direct path at -6 dB, then a diffuse tail (RT60 0.25 s), seeded."""
    rng = np.random.default_rng(7)
    n = int(0.4 * RATE)
    t = np.arange(n) / RATE
    direct = int(0.030 * RATE)
    ir = rng.standard_normal(n) * np.exp(-6.9 * t / 0.25) * 0.08
    ir[: direct + 48] = 0.0
    ir[direct] = 0.5
    write_wav(path, ir * 32767)


def speech(path: Path, text: str, *, voice: str, seconds: float) -> None:
    """``text`` spoken by espeak-ng, as 48 kHz mono s16 trimmed to ``seconds``,
    normalised to -3 dBFS (sox)."""
    raw = path.with_suffix(".22k.wav")
    subprocess.run(
        ["espeak-ng", "-v", voice, "-s", "160", "-w", str(raw), text], check=True, timeout=60
    )
    sox = ["sox", str(raw), "-r", str(RATE), "-c", "1", "-b", "16", str(path)]
    subprocess.run([*sox, "trim", "0", f"{seconds:g}", "norm", "-3"], check=True, timeout=60)
    raw.unlink()


class PipeWireRoom:
    """Starts the private daemon and WirePlumber; stops them on exit."""

    def __init__(self, base: Path, *, drop_in: Path | None = DROP_IN) -> None:
        self.base = base
        self.drop_in = drop_in
        self.runtime = base / "run"
        self.conf = base / "conf"
        self.env = {**os.environ, "XDG_RUNTIME_DIR": str(self.runtime)}
        self.env.pop("PIPEWIRE_CONFIG_DIR", None)  # clients read the system client.conf
        self.env.pop("PIPEWIRE_REMOTE", None)
        self._procs: list[subprocess.Popen[bytes]] = []

    def __enter__(self) -> PipeWireRoom:
        self.runtime.mkdir(mode=0o700, parents=True)
        (self.conf / "pipewire.conf.d").mkdir(parents=True)
        (self.conf / "pipewire.conf").write_text(DAEMON_CONF)
        ir = self.base / "room-ir.wav"
        room_impulse_response(ir)
        (self.conf / "pipewire.conf.d/10-room.conf").write_text(ROOM_CONF % {"ir": ir})
        if self.drop_in is not None:
            (self.conf / "pipewire.conf.d" / DROP_IN.name).symlink_to(self.drop_in)
        try:
            daemon_env = {**self.env, "PIPEWIRE_CONFIG_DIR": str(self.conf)}
            self._spawn(["pipewire"], daemon_env, "pipewire.log")
            self._wait(lambda: (self.runtime / "pipewire-0").exists(), "the PipeWire socket")
            # WirePlumber needs a session bus; a private one we can stop ourselves
            bus = self.runtime / "bus"
            self._spawn(
                [
                    "dbus-daemon",
                    "--session",
                    "--nofork",
                    "--nopidfile",
                    f"--address=unix:path={bus}",
                ],
                self.env,
                "dbus.log",
            )
            self._wait(bus.exists, "the session bus")
            self.env["DBUS_SESSION_BUS_ADDRESS"] = f"unix:path={bus}"
            self._spawn(["wireplumber"], self.env, "wireplumber.log")
            self._wait(lambda: "room-mic" in self.node_names(), "the room's microphone")
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        for proc in reversed(self._procs):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)
        self._procs.clear()

    def _spawn(self, argv: list[str], env: dict[str, str], log: str) -> subprocess.Popen[bytes]:
        out = open(self.base / log, "wb")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
        out.close()
        self._procs.append(proc)
        return proc

    def _wait(self, ready: Any, what: str, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if ready():
                return
            for proc in self._procs:
                if proc.poll() is not None:
                    raise RuntimeError(f"{proc.args[0]} exited: {self.logs()}")
            time.sleep(0.2)
        raise TimeoutError(f"no {what} after {timeout:g} s: {self.logs()}")

    def logs(self) -> str:
        return " | ".join(
            f"{p.name}: {p.read_text(errors='replace')[-800:]}" for p in self.base.glob("*.log")
        )

    def dump(self) -> list[dict[str, Any]]:
        """``pw-dump``'s objects (bounded by ``timeout``)."""
        out = subprocess.run(
            ["timeout", "10", "pw-dump"], env=self.env, capture_output=True, timeout=15
        )
        # pw-dump may print a second array of updates: later objects replace earlier
        text, decoder, at = out.stdout.decode(errors="replace"), json.JSONDecoder(), 0
        objects: dict[int, dict[str, Any]] = {}
        while (at := _skip_space(text, at)) < len(text):
            try:
                batch, at = decoder.raw_decode(text, at)
            except json.JSONDecodeError:
                break
            for obj in batch:
                if obj.get("info") is None:
                    objects.pop(obj.get("id", -1), None)
                else:
                    objects[obj["id"]] = obj
        return list(objects.values())

    def nodes(self) -> dict[int, dict[str, Any]]:
        return {
            o["id"]: o["info"]["props"]
            for o in self.dump()
            if o.get("type") == "PipeWire:Interface:Node" and o.get("info")
        }

    def node_names(self) -> set[str]:
        return {props.get("node.name", "") for props in self.nodes().values()}

    def links(self) -> list[tuple[str, str]]:
        """(output node name, input node name) of every link."""
        objects = self.dump()
        names = {
            o["id"]: o["info"]["props"].get("node.name", "")
            for o in objects
            if o.get("type") == "PipeWire:Interface:Node" and o.get("info")
        }
        return [
            (
                names.get(o["info"]["output-node-id"], "?"),
                names.get(o["info"]["input-node-id"], "?"),
            )
            for o in objects
            if o.get("type") == "PipeWire:Interface:Link" and o.get("info")
        ]

    def play(self, wav: Path, target: str) -> subprocess.Popen[bytes]:
        """Play ``wav`` into the node ``target`` (pw-play); returns the process."""
        proc = subprocess.Popen(
            ["pw-play", "--target", target, str(wav)],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self._procs.append(proc)
        return proc


def _skip_space(text: str, at: int) -> int:
    while at < len(text) and text[at].isspace():
        at += 1
    return at
