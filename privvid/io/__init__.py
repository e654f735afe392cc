"""Video reading/writing (PyAV, streaming), dataset discovery, hashing."""

from privvid.io.discover import ClipSource, Discovery, content_hash, discover
from privvid.io.video import VideoInfo, VideoWriter, output_size, probe, read_frames

__all__ = [
    "ClipSource", "Discovery", "VideoInfo", "VideoWriter",
    "content_hash", "discover", "output_size", "probe", "read_frames",
]
