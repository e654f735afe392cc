"""Small deterministic stand-ins used by unit tests (never by the product).

``ColorKeyDetector`` finds "people" painted pure magenta in generated clips, so pipeline
tests know exactly which pixels must disappear. It is loaded through the registry's
``module:attr`` form (``fakes:ColorKeyDetector``), which also works in spawned workers.
"""

from __future__ import annotations

from pathlib import Path

import av
import cv2
import numpy as np

from privvid.detect.base import Detections

MAGENTA = np.array([255, 0, 255], dtype=np.uint8)


class ColorKeyDetector:
    name = "colorkey"

    def __init__(self, cfg=None) -> None:  # noqa: ANN001 - DetectConfig
        self.cfg = cfg

    def reset(self) -> None:
        pass

    def __call__(self, frame: np.ndarray) -> Detections:
        diff = np.abs(frame.astype(np.int16) - MAGENTA).sum(axis=2)
        person = diff < 90
        count, labels, stats, _ = cv2.connectedComponentsWithStats(person.astype(np.uint8))
        h, w = person.shape
        masks, boxes = [], []
        for i in range(1, count):
            x, y, bw, bh, area = stats[i]
            if area < 4:
                continue
            masks.append(labels == i)
            boxes.append([x, y, x + bw, y + bh])
        if not masks:
            return Detections.empty(h, w)
        return Detections(np.stack(masks), np.asarray(boxes, np.float32), np.ones(len(masks), np.float32))

    def info(self) -> dict:
        return {"name": self.name}


class FailingDetector(ColorKeyDetector):
    """Raises on the 5th frame of a clip: the pipeline must quarantine the clip."""

    name = "failing"

    def reset(self) -> None:
        self.seen = 0

    def __call__(self, frame: np.ndarray) -> Detections:
        self.seen = getattr(self, "seen", 0) + 1
        if self.seen == 5:
            raise RuntimeError("injected backend failure")
        return super().__call__(frame)


def moving_square_frames(n: int = 30, width: int = 96, height: int = 64, size: int = 16) -> list[np.ndarray]:
    """A textured static background with a magenta square walking left to right."""
    rng = np.random.default_rng(1)
    background = cv2.GaussianBlur(rng.integers(0, 255, (height, width, 3), dtype=np.uint8), (7, 7), 0)
    frames = []
    for i in range(n):
        frame = background.copy()
        x = int(4 + (width - size - 8) * i / max(1, n - 1))
        y = height // 2 - size // 2
        frame[y:y + size, x:x + size] = MAGENTA
        frames.append(frame)
    return frames


def write_video(path: Path, frames: list[np.ndarray], fps: int = 24, codec: str = "libx264",
                audio: bool = False, metadata: dict | None = None) -> Path:
    """Encode frames losslessly enough for tests (crf 0 / yuv444 keeps magenta exact)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    container = av.open(str(path), "w")
    if metadata:
        container.metadata.update(metadata)
    stream = container.add_stream(codec, rate=fps)
    stream.height, stream.width = frames[0].shape[:2]
    stream.pix_fmt = "yuv444p" if codec == "libx264" else "yuv420p"
    if codec == "libx264":
        stream.options = {"crf": "0"}
    audio_stream = container.add_stream("aac", rate=44100) if audio else None
    for frame in frames:
        for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    if audio_stream is not None:
        samples = np.zeros((1, 1024 * 20), dtype=np.float32)
        audio_frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
        audio_frame.sample_rate = 44100
        for packet in audio_stream.encode(audio_frame):
            container.mux(packet)
        for packet in audio_stream.encode():
            container.mux(packet)
    container.close()
    return path


class SlowDetector(ColorKeyDetector):
    """Takes 0.05 s a frame: slow enough for a clip timeout to fire or a kill to land mid-clip."""

    name = "slow"

    def __call__(self, frame: np.ndarray) -> Detections:
        import time

        time.sleep(0.05)
        return super().__call__(frame)


class WrongShapeInpainter:
    """Returns frames of the wrong size: the pipeline must refuse to write them."""

    name = "wrong-shape"
    context = 0

    def __init__(self, cfg=None) -> None:  # noqa: ANN001
        pass

    def reset(self) -> None:
        pass

    def __call__(self, frames: np.ndarray, masks: np.ndarray, core: slice | None = None) -> np.ndarray:
        return frames[:, :-2]

    def info(self) -> dict:
        return {"name": self.name}


class CrashingDetector(ColorKeyDetector):
    """Kills its own process with SIGSEGV on a frame 80 px wide (a native crash stand-in): any other clip
    is processed like ColorKeyDetector does."""

    name = "crashing"

    def __call__(self, frame: np.ndarray) -> Detections:
        if frame.shape[1] == 80:
            import os
            import signal

            os.kill(os.getpid(), signal.SIGSEGV)
        return super().__call__(frame)


class SwallowingSlowDetector(ColorKeyDetector):
    """Slow, and catches every ``Exception`` raised while it works and carries on, as a part that drops
    what it cannot do (a body it cannot fit) does: a clip timeout must still end the clip."""

    name = "swallowing-slow"

    def __init__(self, cfg=None) -> None:  # noqa: ANN001 - DetectConfig
        super().__init__(cfg)
        self.swallowed = 0

    def __call__(self, frame: np.ndarray) -> Detections:
        import time

        try:
            time.sleep(0.05)
        except Exception:  # noqa: BLE001 - on purpose
            self.swallowed += 1
        return super().__call__(frame)


class HangOnInterruptDetector(SlowDetector):
    """Slow, and hangs for good once Ctrl-C reaches it, as a worker stopped inside a lock it holds would:
    a run stopped with Ctrl-C must still end."""

    name = "hang-on-interrupt"

    def __call__(self, frame: np.ndarray) -> Detections:
        import time

        try:
            return super().__call__(frame)
        except KeyboardInterrupt:
            time.sleep(3600)
            raise


def write_slow_then_fast(path: Path, width: int = 64, height: int = 48) -> Path:
    """A variable-rate mp4: ten frames 100 ms apart, then twenty 25 ms apart (about 1.5 s); frame i is grey at
    8 * i."""
    from fractions import Fraction

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=20)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.time_base = Fraction(1, 1000)
        stream.options = {"bf": "0"}
        for i in range(30):
            frame = av.VideoFrame.from_ndarray(np.full((height, width, 3), 8 * i, np.uint8), format="rgb24")
            frame.pts, frame.time_base = (100 * i if i < 10 else 1000 + 25 * (i - 10)), Fraction(1, 1000)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def write_when(job: tuple[str, str]) -> str:
    """An executor job for tests: wait (up to a minute) until the file ``job[1]`` exists, then create ``job[0]``."""
    import time

    path, go = job
    deadline = time.time() + 60
    while not Path(go).exists() and time.time() < deadline:
        time.sleep(0.05)
    Path(path).write_text("written")
    return path
