"""The station's camera and microphone as one object the peers draw tracks from.

Nothing is opened until the first track is asked for, and both devices close
``linger`` seconds after the last track has ended::

    media = StationMedia(config.camera, config.microphone)
    video, audio = media.video_track(), media.audio_track()
    media.status()    # {"camera": "test-pattern 1280x720@30", "microphone": "test-tone 440 Hz"}
    await media.close()
"""

from __future__ import annotations

from ..config import CameraConfig, MicrophoneConfig
from .audio import AudioFanout, AudioFanoutTrack
from .video import EncodedVideoTrack, VideoFanout


class StationMedia:
    """Owns the shared camera encoder and microphone capture."""

    def __init__(
        self, camera: CameraConfig, microphone: MicrophoneConfig, *, linger: float = 5.0
    ) -> None:
        self.camera = camera
        self.microphone = microphone
        self.video = VideoFanout(camera, linger=linger)
        self.audio = AudioFanout(microphone, linger=linger)

    def video_track(self) -> EncodedVideoTrack:
        """A new viewer of the camera (starts capture; asks for a keyframe)."""
        return self.video.track()

    def audio_track(self) -> AudioFanoutTrack:
        """A new listener of the microphone (starts capture)."""
        return self.audio.track()

    def set_muted(self, *, audio: bool, video: bool) -> None:
        """The kiosk's mute and camera-off: silence / black to every viewer from the
        next frame on. Never opens a device: outside a call nothing is captured."""
        self.audio.muted = audio
        self.video.blanked = video

    def take_level(self) -> float | None:
        """The level (dBFS) of the sound sent since the last call (see AudioFanout)."""
        return self.audio.take_level()

    @property
    def capturing(self) -> bool:
        """True while the camera or the microphone is open."""
        return self.video.capturing or self.audio.capturing

    async def close(self) -> None:
        """End every track and close both devices now. Idempotent."""
        await self.video.close()
        await self.audio.close()

    def status(self) -> dict[str, str]:
        """What is captured, e.g. ``{"camera": "v4l2 /dev/video0 (mjpeg)",
        "microphone": "pulse default"}``; ``"off"`` while idle, ``"unavailable: ..."``
        while a failed device is being re-opened."""
        return {"camera": self.video.description, "microphone": self.audio.description}

    def counters(self) -> dict[str, int]:
        """Frames captured and encoded per codec, keyframes, viewers (for metrics)."""
        return {
            **self.video.counters(),
            "microphone_frames": self.audio.frames,
            "audio_listeners": self.audio.subscribers,
        }
