"""The station's camera and microphone as one object the peers draw tracks from.

Nothing is opened until the first track is asked for, and both devices close
``linger`` seconds after the last track has ended::

    media = StationMedia(config.camera, config.microphone)
    video, audio = media.video_track(), media.audio_track()
    media.status()    # {"camera": "test-pattern 1280x720@30", "microphone": "test-tone 440 Hz"}
    await media.close()

The fan-outs (and with them PyAV, numpy and aiortc) are made on first use, not at
start-up: until the first call the idle service does not hold the media stack.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..config import CameraConfig, MicrophoneConfig

if TYPE_CHECKING:
    from .audio import AudioFanout, AudioFanoutTrack
    from .video import EncodedVideoTrack, RawVideoTrack, VideoFanout

IDLE_VIDEO_COUNTERS = (
    "camera_frames",
    "camera_open",
    "encoded_h264",
    "encoded_vp8",
    "keyframes_h264",
    "keyframes_vp8",
    "video_viewers",
    "video_packets_dropped",
    "encoded_low",
    "viewers_low",
    "rung_switches",
)
"""VideoFanout's counters that are zero before the camera was ever opened."""


class StationMedia:
    """Owns the shared camera encoder and microphone capture."""

    def __init__(
        self, camera: CameraConfig, microphone: MicrophoneConfig, *, linger: float = 5.0
    ) -> None:
        self.camera = camera
        self.microphone = microphone
        self.linger = linger
        self._video: VideoFanout | None = None
        self._audio: AudioFanout | None = None
        self._audio_muted = self._video_blanked = False

    @property
    def video(self) -> VideoFanout:
        """The camera's shared encoder (made, and the media stack imported, on first use)."""
        if self._video is None:
            from .video import VideoFanout

            self._video = VideoFanout(self.camera, linger=self.linger)
            self._video.blanked = self._video_blanked
        return self._video

    @property
    def audio(self) -> AudioFanout:
        """The microphone's fan-out (made on first use)."""
        if self._audio is None:
            from .audio import AudioFanout

            self._audio = AudioFanout(self.microphone, linger=self.linger)
            self._audio.muted = self._audio_muted
        return self._audio

    def video_track(self) -> EncodedVideoTrack | RawVideoTrack:
        """A new viewer of the camera (starts capture; asks for a keyframe): of the
        shared encoder, or (``camera.encoding = "per-peer"``) raw pictures its sender
        encodes."""
        if self.camera.encoding == "per-peer":
            return self.video.raw_track()
        return self.video.track()

    def audio_track(self) -> AudioFanoutTrack:
        """A new listener of the microphone (starts capture)."""
        return self.audio.track()

    def set_muted(self, *, audio: bool, video: bool) -> None:
        """The kiosk's mute and camera-off: silence / black to every viewer from the
        next frame on. Never opens a device: outside a call nothing is captured."""
        self._audio_muted, self._video_blanked = audio, video
        if self._audio is not None:
            self._audio.muted = audio
        if self._video is not None:
            self._video.blanked = video

    def take_level(self) -> float | None:
        """The level (dBFS) of the sound sent since the last call (see AudioFanout)."""
        return self._audio.take_level() if self._audio is not None else None

    @property
    def capturing(self) -> bool:
        """True while the camera or the microphone is open."""
        return any(f is not None and f.capturing for f in (self._video, self._audio))

    async def close(self) -> None:
        """End every track and close both devices now. Idempotent."""
        if self._video is not None:
            await self._video.close()
        if self._audio is not None:
            await self._audio.close()

    def status(self) -> dict[str, str]:
        """What is captured, e.g. ``{"camera": "v4l2 /dev/video0 (mjpeg)",
        "microphone": "pulse default"}``; ``"off"`` while idle, ``"unavailable: ..."``
        while a failed device is being re-opened."""
        return {
            "camera": self._video.description if self._video is not None else "off",
            "microphone": self._audio.description if self._audio is not None else "off",
        }

    def states(self) -> dict[str, str]:
        """Each device as a call would find it: ``device``, ``stand_in`` (the test
        pattern or tone), ``none`` (unavailable), or ``unknown`` (not opened since
        the service started: devices are opened only for calls)."""
        return {
            "camera": _state(self._video.found if self._video is not None else ""),
            "microphone": _state(self._audio.found if self._audio is not None else ""),
        }

    def encoders(self) -> list[dict[str, Any]]:
        """The video encoders running now (codec, rung, FFmpeg encoder, size)."""
        return self._video.encoders() if self._video is not None else []

    def counters(self) -> dict[str, int]:
        """Frames captured and encoded per codec, keyframes, viewers (for metrics)."""
        video = (
            self._video.counters()
            if self._video is not None
            else {
                **dict.fromkeys(IDLE_VIDEO_COUNTERS, 0),
                "high_bitrate": self.camera.bitrate,
                "low_bitrate": self.camera.low_bitrate,
            }
        )
        audio = self._audio
        return {
            **video,
            "microphone_frames": audio.frames if audio is not None else 0,
            "audio_listeners": audio.subscribers if audio is not None else 0,
        }


STAND_INS = ("test-pattern", "test-tone")


def _state(found: str) -> str:
    """A device's state (:meth:`StationMedia.states`) from what it was last seen as::

    >>> [_state(d) for d in ("", "test-pattern 640x360@15", "unavailable: gone", "v4l2 x")]
    ['unknown', 'stand_in', 'none', 'device']
    """
    if not found:
        return "unknown"
    if found.startswith(STAND_INS):
        return "stand_in"
    return "none" if found.startswith("unavailable") else "device"
