"""Streaming video reading and writing.

Readers yield one RGB uint8 frame (H, W, 3) at a time, so memory stays flat
however long a clip is. The writer encodes H.264 (yuv420p, even size) with no
audio track and no container metadata, into a temporary file that becomes the
output only on :meth:`VideoWriter.commit` (atomic rename): a crash or an
:meth:`VideoWriter.abort` leaves nothing under the final name.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import uuid
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Iterator

import av
import av.bitstream
import numpy as np

from privvid.errors import BadInput

MAX_SIDE = 3840  # larger inputs are scaled down to fit (memory and time stay bounded); --resize at most this

VIDEO_EXTENSIONS = {
    ".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg", ".flv", ".wmv", ".ts", ".3gp",
}
IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}
DEFAULT_FRAMES_FPS = 24.0  # DAVIS-style frame folders carry no rate; DAVIS was shot at 24 fps


@dataclass(frozen=True)
class VideoInfo:
    path: Path
    width: int
    height: int
    fps: float
    frames: int          # exact for frame folders, container estimate for files (0 = unknown)
    codec: str
    rotation: int = 0    # degrees the display matrix asks for (applied by the reader)
    has_audio: bool = False
    variable_rate: bool = False
    is_frame_folder: bool = False
    dropped: tuple[str, ...] = ()   # what else the file holds that no output keeps (subtitles, chapters, ...)

    @property
    def display_size(self) -> tuple[int, int]:
        """(width, height) after rotation is applied."""
        if self.rotation % 180:
            return self.height, self.width
        return self.width, self.height


def list_frame_files(folder: Path) -> list[Path]:
    """The image files of a frame folder in name order, numbers by their value (``2.png`` before ``10.png``):
    regular files only (a FIFO named .jpg would block)."""
    return sorted((p for p in folder.iterdir()
                   if p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".") and p.is_file()),
                  key=natural_order)


def natural_order(path: Path) -> tuple[tuple[tuple[int, int | str], ...], str]:
    """Sort key: the name's ASCII digit runs by value, the rest as text; the name itself breaks ties
    (``1.png`` / ``01.png``), so the order never depends on the folder's listing order."""
    parts = tuple((0, int(part)) if part.isascii() and part.isdigit() else (1, part)
                  for part in re.split(r"([0-9]+)", path.name) if part)
    return parts, path.name


def _mp4_without_index(path: Path) -> bool:
    """Whether the file is an ISO media file (MP4, MOV: an ``ftyp`` box first) whose top-level boxes, read as
    far as they go, hold frames (``mdat``) and no ``moov`` box: the index a camera or a copy writes last."""
    import struct

    size = path.stat().st_size
    seen: list[bytes] = []
    with open(path, "rb") as f:
        at = 0
        while at + 8 <= size and len(seen) < 4096:
            f.seek(at)
            head = f.read(16)
            length, kind = struct.unpack(">I4s", head[:8])
            if length == 1 and len(head) == 16:
                length = struct.unpack(">Q", head[8:16])[0]
            elif length == 0:
                length = size - at
            if length < 8:
                return False   # not box structure
            seen.append(kind)
            at += length
    return bool(seen) and seen[0] == b"ftyp" and b"mdat" in seen and b"moov" not in seen


def probe(path: str | os.PathLike[str]) -> VideoInfo:
    """Inspect a video file or frame folder; raise :class:`BadInput` with a one-line reason."""
    path = Path(path)
    if path.is_dir():
        return _probe_frames(path)
    if not path.exists():
        raise BadInput(f"no such file: {path}")
    if path.stat().st_size == 0:
        raise BadInput("empty file (0 bytes)")
    try:
        container = av.open(str(path))
    except av.error.InvalidDataError:
        if _mp4_without_index(path):
            raise BadInput("an MP4 / MOV file with no index (its 'moov' box is missing): the recording or the copy "
                           "was cut off before it finished, so the frames cannot be located") from None
        raise BadInput("not a video container ffmpeg can read (corrupt or wrong file type)") from None
    except av.FFmpegError as exc:
        raise BadInput(f"cannot open video: {exc}") from None
    with container:
        if not container.streams.video:
            raise BadInput("file has no video stream")
        stream = container.streams.video[0]
        ctx = stream.codec_context
        if ctx is None or not ctx.name:
            raise BadInput("unsupported video codec")
        width, height = ctx.width, ctx.height
        if not width or not height:
            raise BadInput("video stream has no frame size (unsupported codec or corrupt header)")
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        fps = float(rate) if rate else 0.0
        if not math.isfinite(fps) or fps <= 0:
            fps = 25.0
        frames = int(stream.frames or 0)
        if not frames and stream.duration and stream.time_base:
            frames = int(round(float(stream.duration * stream.time_base) * fps))
        base = float(stream.base_rate) if stream.base_rate else fps
        variable = bool(stream.average_rate and base and abs(base - fps) / max(fps, 1e-6) > 0.01)
        rotation = _stream_rotation(container)
        has_audio, codec, counted_in_header = bool(container.streams.audio), ctx.name, bool(stream.frames)
        dropped = _other_contents(container)
        seconds = _stream_seconds(stream)
    if counted_in_header and abs(base - fps) > 1e-3 * base:
        # the mean rate ffmpeg gives is frames / duration, and a last frame shown shorter (or longer) moves it
        # (92 frames 1/29.978 s apart read as 30.14 fps): the packets' own times say whether the rate is even
        counted = _count_packets(path)
        if counted is not None:
            _, fps, variable = counted
    if not counted_in_header:   # no frame count in the header (Matroska, WebM, ...): count the packets' times
        counted = _count_packets(path)
        if counted is not None:
            frames, measured, uneven = counted
            if uneven or abs(measured - fps) / max(fps, 1e-6) > 0.01:
                fps, variable = measured, variable or uneven or abs(measured - base) / max(base, 1e-6) > 0.01
            # a file cut short keeps the video stream's duration its header gives: that is the length it
            # declares, as a count in the header would be (the run notes a truncated input when it decodes fewer)
            if frames < 0.95 * seconds * fps - 1:
                frames = int(round(seconds * fps))
    return VideoInfo(
        path=path,
        width=width,
        height=height,
        fps=fps,
        frames=frames,
        codec=codec,
        rotation=rotation,
        has_audio=has_audio,
        variable_rate=variable,
        dropped=dropped,
    )


def _other_contents(container: Any) -> tuple[str, ...]:
    """What a file holds besides its first video stream and its audio that the output does not keep (only that
    stream's frames are read and written): further video streams, subtitles, data streams, attachments,
    chapters and tags. Said in the clip's notes, as the audio is: they can name people too."""
    found = []
    streams = container.streams
    for kind, count in (("further video stream", len(streams.video) - 1), ("subtitle stream", len(streams.subtitles)),
                        ("data stream", len(streams.data)), ("attachment", len(getattr(streams, "attachments", ())))):
        if count > 0:
            found.append(f"{count} {kind}{'s' if count > 1 else ''}")
    try:
        chapters = len(container.chapters())
    except Exception:  # noqa: BLE001 - an older PyAV or a container without chapters
        chapters = 0
    if chapters:
        found.append(f"{chapters} chapter{'s' if chapters > 1 else ''}")
    tags = sorted(k.lower() for k in (container.metadata or {}) if k.lower() not in _STRUCTURAL_TAGS)
    if tags:
        found.append("tags " + ", ".join(tags))
    return tuple(found)


# container tags that say how the file was made, not what it shows
_STRUCTURAL_TAGS = {"encoder", "major_brand", "minor_version", "compatible_brands", "creation_time", "handler_name",
                    "vendor_id", "duration", "software"}


def _stream_seconds(stream: Any) -> float:
    """The video stream's own duration as the header states it (Matroska's per-stream ``DURATION`` tag), or 0
    when it states none. Not the container's duration, nor the stream's ``duration`` ffmpeg derives from it:
    that spans the longest stream (a longer audio track) from time 0 (a video that starts late)."""
    tag = str((stream.metadata or {}).get("DURATION", ""))
    match = re.fullmatch(r"(\d+):(\d{2}):(\d{2}(?:\.\d+)?)", tag.strip())
    seconds = int(match[1]) * 3600 + int(match[2]) * 60 + float(match[3]) if match else 0.0
    return seconds if math.isfinite(seconds) and seconds > 0 else 0.0


def _count_packets(path: Path) -> tuple[int, float, bool] | None:
    """Frames, mean rate and whether the frame times are uneven (a variable rate), from the video packets'
    presentation times (demuxed, not decoded). None, and the header's rate stays, where the times cannot
    be trusted: a packet without one, two at the same time or a jump of ten steps and more (timestamps that
    restart or skip, as in joined transport streams), or a mean rate outside 0.01-1000."""
    times: list[float] = []
    missing = 0
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        base = stream.time_base
        try:
            for packet in container.demux(stream):
                if not packet.size:
                    continue
                if packet.pts is None or base is None:
                    missing += 1
                else:
                    times.append(float(packet.pts * base))
        except av.FFmpegError:
            pass   # a damaged tail: the times read so far
    if missing or len(times) < 2:
        return None
    times.sort()
    steps = np.diff(times)
    median = float(np.median(steps))
    if median <= 0 or steps.min() <= 0.01 * median or steps.max() >= 10 * median:
        return None
    mean = (times[-1] - times[0]) / (len(times) - 1)
    if not 0.01 <= 1.0 / mean <= 1000:
        return None
    uneven = bool(np.abs(steps - mean).max() > 0.01 * mean + 1e-3)
    return len(times), 1.0 / mean, uneven


def _stream_rotation(container: av.container.InputContainer) -> int:
    """Rotation from the first decoded frame's display matrix (0 when absent)."""
    try:
        frame = next(container.decode(video=0))
    except (StopIteration, av.FFmpegError):
        raise BadInput("video stream has no decodable frame (truncated or corrupt)") from None
    return int(round(getattr(frame, "rotation", 0) or 0)) % 360


def _probe_frames(folder: Path) -> VideoInfo:
    files = list_frame_files(folder)
    if not files:
        raise BadInput("folder holds no image frames")
    first = _read_image(files[0])
    return VideoInfo(
        path=folder,
        width=first.shape[1],
        height=first.shape[0],
        fps=DEFAULT_FRAMES_FPS,
        frames=len(files),
        codec="images",
        is_frame_folder=True,
    )


def _read_image(path: Path) -> np.ndarray:
    import cv2

    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise BadInput(f"unreadable image frame: {path.name}")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def output_size(info: VideoInfo, resize: tuple[int, int] | None) -> tuple[int, int]:
    """The (width, height) privvid writes: the requested size, else the input's, scaled to
    fit :data:`MAX_SIDE` and rounded down to even numbers (yuv420p needs even sizes)."""
    if resize is not None:
        width, height = resize
        in_w, in_h = info.display_size
        if width == -2:    # keep the aspect ratio, width follows the height (ffmpeg's scale=-2:H)
            width = max(2, round(in_w * height / max(in_h, 1) / 2) * 2)
        elif height == -2:
            height = max(2, round(in_h * width / max(in_w, 1) / 2) * 2)
        if max(width, height) > MAX_SIDE:
            raise BadInput(f"--resize {resize[0]}x{resize[1]} gives {width}x{height} for this "
                           f"{in_w}x{in_h} clip, over the largest side privvid writes ({MAX_SIDE} px)")
    else:
        width, height = info.display_size
        scale = min(1.0, MAX_SIDE / max(width, height))
        width, height = int(width * scale), int(height * scale)
    asked = f"{width}x{height}"
    width, height = width - width % 2, height - height % 2
    if width < 2 or height < 2:
        raise BadInput(f"frame size {asked} is too small to encode (H.264 needs even sides of at least 2 px; "
                       "--resize sets a larger size)")
    return width, height


def working_shape(shape: tuple[int, int], lines: int) -> tuple[int, int] | None:
    """The (height, width) a frame of ``shape`` is worked on when its shorter side is bounded by ``lines``
    (a portrait frame is scaled as its landscape twin), or None where it needs no scaling (``lines`` 0:
    never scaled)."""
    h, w = shape
    if lines <= 0 or min(h, w) <= lines:
        return None
    scale = lines / min(h, w)
    return max(1, int(round(h * scale))), max(1, int(round(w * scale)))


def read_frames(
    path: str | os.PathLike[str],
    size: tuple[int, int] | None = None,
    fps: float | None = None,
    info: VideoInfo | None = None,
) -> Iterator[np.ndarray]:
    """Yield RGB uint8 frames of a video file or frame folder, one at a time.

    ``size`` (width, height) resizes each frame; ``fps`` resamples a video file's frame rate by
    timestamps (frames are dropped or repeated; a variable-rate clip by each frame's own time). A frame
    folder has no rate of its own: every frame is yielded, ``fps`` is the rate it is shown at. Rotation
    metadata is applied.
    """
    info = info or probe(path)
    report = DecodeReport()
    return resample(decode_frames(path, size, info, report), info, fps, report)


@dataclass
class DecodeReport:
    """What a decode saw that the frames themselves do not say, filled in as the frames are read."""

    frames: int = 0                  # frames decoded so far
    damaged: int = 0                 # video file: frames the decoder flagged corrupt (it conceals the damage)
    other_size: int = 0              # frame folder: frames not of the first frame's size (resized to it)
    gaps: list[tuple[str, str]] | None = None   # frame folder: numbering jumps (name before, name after)
    # video file: each decoded frame's presentation time in seconds (None where the frame has none), known
    # when the frame is yielded
    times: list[float | None] = field(default_factory=list)
    last_duration: float | None = None   # video file: how long the last decoded frame is shown (s), where known

    def notes(self) -> list[str]:
        notes = []
        if self.damaged:
            notes.append(f"damaged input: the decoder flagged {self.damaged} frame(s) as corrupt and concealed the "
                         "damage (they may show smeared or frozen blocks)")
        if self.other_size:
            notes.append(f"{self.other_size} frame file(s) of another size than the folder's first, resized to it")
        if self.gaps:
            first = ", ".join(f"{a} -> {b}" for a, b in self.gaps[:3])
            more = f" and {len(self.gaps) - 3} more" if len(self.gaps) > 3 else ""
            notes.append(f"frame numbering has {len(self.gaps)} gap(s): {first}{more} (frames missing from the folder?)")
        return notes


def decode_frames(path: str | os.PathLike[str], size: tuple[int, int] | None = None,
                  info: VideoInfo | None = None, report: DecodeReport | None = None) -> Iterator[np.ndarray]:
    """Every frame of the clip as decoded (resized to ``size``), at its own rate; ``report`` hears what the
    decode saw (damaged frames, a frame folder's odd sizes and numbering gaps)."""
    path = Path(path)
    info = info or probe(path)
    report = report if report is not None else DecodeReport()
    if info.is_frame_folder:
        return _read_frame_folder(path, size, report)
    return _read_video_file(path, size, info, report)


def numbering_gaps(files: list[Path]) -> list[tuple[str, str]]:
    """Where a frame folder's numbering jumps by more than its usual step (the last digit run of each name,
    names otherwise alike; a folder of every 5th frame steps by 5)."""
    steps = []
    for a, b in zip(files, files[1:]):
        ma, mb = re.search(r"([0-9]+)(\D*)$", a.name), re.search(r"([0-9]+)(\D*)$", b.name)
        if ma and mb and a.name[:ma.start()] == b.name[:mb.start()]:
            steps.append((int(mb.group(1)) - int(ma.group(1)), a.name, b.name))
    if not steps:
        return []
    values = [step for step, *_ in steps]
    usual = max(set(values), key=lambda v: (values.count(v), -v))   # the most common step (the smaller on a tie)
    return [(a, b) for step, a, b in steps if step > max(usual, 1)]


def resample(frames: Iterator[np.ndarray], info: VideoInfo, fps: float | None,
             report: DecodeReport | None = None) -> Iterator[np.ndarray]:
    """``frames`` of the clip ``info`` describes at ``fps`` (see :func:`read_frames`): as they are for a frame
    folder, with no ``fps`` or at the clip's own. A variable-rate clip whose decode ``report`` gives the frames'
    times is resampled by those times (a stretch shot at a higher rate keeps its real length); other clips take
    their frames as evenly spaced at the clip's rate."""
    if fps is None or info.is_frame_folder:
        return frames
    if info.variable_rate and report is not None:
        return _resample_by_time(frames, report, info.fps, fps)
    if abs(fps - info.fps) < 1e-6:
        return frames
    return _resample_by_time(frames, DecodeReport(), info.fps, fps)   # no times: evenly spaced at the clip's rate


def _read_frame_folder(folder: Path, size: tuple[int, int] | None, report: DecodeReport) -> Iterator[np.ndarray]:
    import cv2

    files = list_frame_files(folder)
    report.gaps = numbering_gaps(files)
    first: tuple[int, ...] | None = None
    for file in files:
        image = _read_image(file)
        first = first or image.shape[:2]
        if image.shape[:2] != first:
            report.other_size += 1
            if size is None:
                size = (first[1], first[0])   # one clip has one size: the first frame's
        if size is not None and (image.shape[1], image.shape[0]) != size:
            image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        report.frames += 1
        yield image


def _read_video_file(path: Path, size: tuple[int, int] | None, info: VideoInfo,
                     report: DecodeReport) -> Iterator[np.ndarray]:
    rotation = info.rotation
    # decode at the size before rotation, then rotate: a 90-degree turn swaps the axes
    if size is not None and rotation % 180:
        decode_size: tuple[int, int] | None = (size[1], size[0])
    else:
        decode_size = size
    try:
        container = av.open(str(path))
    except av.FFmpegError as exc:
        raise BadInput(f"cannot open video: {exc}") from None
    with container:
        stream = container.streams.video[0]
        if _CODEC_THREADS:
            stream.codec_context.thread_count = _CODEC_THREADS
        else:
            stream.thread_type = "AUTO"
        try:
            for frame in container.decode(stream):
                report.frames += 1
                report.damaged += frame.is_corrupt
                report.times.append(frame.time)
                duration = getattr(frame, "duration", None)
                report.last_duration = float(duration * frame.time_base) if duration and frame.time_base else None
                array: np.ndarray
                if decode_size is not None:
                    array = frame.to_ndarray(format="rgb24", width=decode_size[0], height=decode_size[1])
                else:
                    array = frame.to_ndarray(format="rgb24")
                if rotation:
                    # the display matrix rotates counter-clockwise by `rotation` degrees
                    array = np.ascontiguousarray(np.rot90(array, k=rotation // 90))
                yield array
        except av.FFmpegError as exc:
            raise BadInput(f"decoding failed (truncated or corrupt video): {exc}") from None


_BT601 = (0, 2, 5, 6)  # AVColorSpace: RGB/unspecified, unspecified, BT470BG, SMPTE170M


def frame_rgb(frame: av.VideoFrame, width: int, height: int) -> np.ndarray:
    """A decoded frame as RGB uint8 (height, width, 3). Limited-range BT.601 4:2:0 frames (what x264 and most
    web video hold) convert with OpenCV, 3x faster than swscale here (mean difference ~1 grey level, from the
    chroma upsampling), and resize with area averaging (down) or bilinear (up); others go through swscale.
    The engine's clip loader decodes with it; ``read_frames`` (what anonymize reads) still uses swscale."""
    import cv2

    if (frame.format.name == "yuv420p" and frame.colorspace in _BT601 and frame.color_range in (0, 1)
            and frame.width % 2 == 0 and frame.height % 2 == 0):
        rgb = cv2.cvtColor(frame.to_ndarray(format="yuv420p"), cv2.COLOR_YUV2RGB_I420)
        if (width, height) != (frame.width, frame.height):
            shrink = width < frame.width and height < frame.height
            rgb = cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
        return rgb
    return frame.to_ndarray(width=width, height=height, format="rgb24")


GAP_CAP_S = 5.0   # the longest a frame is held by resampling by time: a jump in a clip's times (a broken or
                  # restarted timestamp) must not make an output of hours


def _resample_by_time(frames: Iterator[np.ndarray], report: DecodeReport, src_fps: float,
                      dst_fps: float) -> Iterator[np.ndarray]:
    """Constant-rate resampling of frames with their own times (``report.times[i]`` is frame i's, filled in as
    the frames come): output frame k shows the frame on screen at time k / dst_fps from the first frame. A frame
    is shown until the next one's time (at most ``GAP_CAP_S``), the last for its own duration where the
    decoder gives one, else one step of the mean rate ``src_fps``; a frame without a time, or with one before
    its predecessor's, follows that one by a mean step."""
    mean_step = 1.0 / src_fps
    origin: float | None = None
    shown: tuple[np.ndarray, float] | None = None
    k = 0
    for index, frame in enumerate(frames):
        raw = report.times[index] if index < len(report.times) else None
        guess = 0.0 if shown is None else shown[1] + mean_step
        if raw is not None and origin is None:
            origin = raw - guess   # frames before the first with a time were a mean step apart
        at = raw - origin if raw is not None and origin is not None else guess
        if shown is not None:
            if at <= shown[1]:
                at = guess
            at = min(at, shown[1] + GAP_CAP_S)
            while k / dst_fps < at - 1e-9:
                yield shown[0]
                k += 1
        shown = (frame, at)
    if shown is not None:
        last = report.last_duration if report.last_duration and report.last_duration > 0 else mean_step
        while k / dst_fps < shown[1] + min(last, GAP_CAP_S) - 1e-9:
            yield shown[0]
            k += 1


def temp_path(final: Path, suffix: str | None = None) -> Path:
    """A hidden sibling of ``final`` for writing before an atomic rename."""
    suffix = suffix if suffix is not None else final.suffix
    name = final.name
    if len(name.encode()) > 120:  # keep the temp name well inside the 255-byte limit of a file name
        name = name.encode()[:60].decode("utf-8", "ignore") + "~" + hashlib.sha1(name.encode()).hexdigest()[:8]
    return final.with_name(f".{name}.{uuid.uuid4().hex[:8]}.partial{suffix}")


# decoder threads: 0 lets FFmpeg use the machine (one clip at a time); a worker of a parallel run sets 1
# (``set_codec_threads``), since its neighbours already use the other cores (the encoder always has one)
_CODEC_THREADS = 0


def set_codec_threads(threads: int) -> None:
    """Threads each decoder of this process may use (0: FFmpeg's own choice)."""
    global _CODEC_THREADS
    _CODEC_THREADS = max(0, int(threads))


class VideoWriter:
    """H.264 mp4 writer: yuv420p, even size, no audio, no metadata; atomic commit."""

    def __init__(self, path: str | os.PathLike[str], width: int, height: int, fps: float,
                 crf: int = 18, preset: str = "veryfast", gop: int = 16) -> None:
        if width % 2 or height % 2:
            raise ValueError(f"H.264 yuv420p needs an even frame size, got {width}x{height}")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.width, self.height = width, height
        self.frames = 0
        self._tmp = temp_path(self.path)
        # bitexact: no encoder/muxer version tags; the container gets no metadata at all
        self._container = av.open(str(self._tmp), mode="w", format="mp4",
                                  options={"fflags": "+bitexact", "movflags": "+faststart"})
        rate = Fraction(fps).limit_denominator(1001)
        self._stream = self._container.add_stream("libx264", rate=rate)
        self._stream.width, self._stream.height = width, height
        self._stream.pix_fmt = "yuv420p"
        # mbtree off: x264's macroblock-tree pass gives different streams for identical frames depending
        # on what the process's memory held before (its assembly; asm=0 is stable too); without it an
        # encode is a function of the frames alone, at about the same size and quality at crf 18
        self._stream.options = {"crf": str(crf), "preset": preset, "x264-params": "mbtree=0"}
        # short key-frame intervals: training loaders seek to a sampled clip and decode from the
        # previous key frame, so a long GOP makes every sampled clip decode most of the video
        self._stream.codec_context.gop_size = max(1, gop)
        self._stream.codec_context.flags |= av.codec.context.Flags.bitexact
        # one encoder thread, always: x264's output depends on its thread count (which "auto" takes from the
        # machine's cores), so a fixed count makes the file a function of the frames on any machine and with
        # any --workers; at the sizes privvid writes one thread encodes far faster than the pipeline runs
        self._stream.codec_context.thread_count = 1
        # x264 writes its version and every setting into an SEI unit of the first frame: drop SEI units
        self._strip = av.bitstream.BitStreamFilterContext("filter_units=remove_types=6", self._stream)
        self._closed = False

    def _mux(self, packets: Any) -> None:
        for packet in packets:
            for clean in self._strip.filter(packet):
                clean.stream = self._stream
                self._container.mux(clean)

    def write(self, frame: np.ndarray) -> None:
        if frame.shape != (self.height, self.width, 3) or frame.dtype != np.uint8:
            raise ValueError(
                f"frame must be uint8 ({self.height}, {self.width}, 3), got {frame.dtype} {frame.shape}"
            )
        video_frame = av.VideoFrame.from_ndarray(frame, format="rgb24")
        self._mux(self._stream.encode(video_frame))
        self.frames += 1

    def commit(self) -> Path:
        """Flush, close and move the finished file into place."""
        if self.frames == 0:
            self.abort()
            raise ValueError("refusing to write a video with no frames")
        self._mux(self._stream.encode())
        for clean in self._strip.filter(None):
            clean.stream = self._stream
            self._container.mux(clean)
        self._container.close()
        self._closed = True
        os.replace(self._tmp, self.path)
        return self.path

    def abort(self) -> None:
        """Drop everything written so far."""
        if not self._closed:
            try:
                self._container.close()
            except Exception:  # noqa: BLE001 - the file is being thrown away anyway
                pass
            self._closed = True
        self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, exc_type: object, *_: object) -> None:
        if not self._closed:
            self.abort() if exc_type else self.commit()
