"""Video Station: a video-call appliance for a Raspberry Pi."""

__version__ = "0.1.0"
