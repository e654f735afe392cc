"""Labelled video sources and clip decoding for training.

A *source* is a list of ``(path, label)`` samples plus the class names. It comes from

* an mmaction-style list ``relative/path.mp4 3`` (space separated, label index or class name),
* a CSV ``path,label`` (a header row is skipped when its label column is not a known label), or
* a class-per-folder tree ``root/<class>/<clip>.mp4`` (what ``privvid anonymize`` writes), or
* privvid's WebDataset shards (``SHARDS``, ``SHARDS:train`` or one ``.tar``), read in place.

Relative paths are resolved against the list file's folder (or ``root``). Anything else that can
produce ``Sample`` rows plugs in through :func:`register_source`.

Decoding uses PyAV inside DataLoader workers and reads only the sampled frames' neighbourhood: it
seeks to the key frame before the first needed frame and stops after the last one; frames are
converted to RGB at the decode-time size by swscale. Items are uint8 ``(T, H, W, 3)`` tensors;
normalisation happens on the training device.
"""

from __future__ import annotations

import csv
import hashlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from privvid.engine.config import DataConfig, EngineError

VIDEO_EXTS = {".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v", ".mpg", ".mpeg"}
MEAN = torch.tensor([0.485, 0.456, 0.406]) * 255
STD = torch.tensor([0.229, 0.224, 0.225]) * 255


@dataclass(frozen=True)
class Sample:
    path: Path
    label: int
    offset: int = -1     # >= 0: the clip is ``size`` bytes at this offset of ``path`` (a member of a tar shard)
    size: int = 0


@dataclass
class Source:
    name: str
    samples: list[Sample]
    classes: list[str]

    @property
    def num_classes(self) -> int:
        return len(self.classes)


_SOURCES: dict[str, Callable[[Path, Path | None], Source]] = {}


def register_source(suffix: str, loader: Callable[[Path, Path | None], Source]) -> None:
    """Add a loader for paths ending in ``suffix`` (e.g. ``.tar`` for WebDataset shards)."""
    _SOURCES[suffix] = loader


def _source_name(path: Path) -> str:
    return path.stem if path.is_file() else path.name


def load_source(spec: str | Path, root: str | Path | None = None, name: str | None = None,
                check: bool = True, require_labels: bool = True) -> Source:
    """A source from a list, a class-per-folder tree, a privvid shard folder (``SHARDS`` = every split,
    ``SHARDS:train`` one split) or one shard ``.tar``."""
    path = Path(spec)
    text = str(spec)
    base, _, split = text.rpartition(":")
    src: Source | None = None
    if text.startswith("ppma:"):
        from privvid.engine.downstream import downstream_source

        src = downstream_source(text, root)
    elif not path.exists() and base and Path(base).is_dir() and (Path(base) / "manifest.json").is_file():
        src = _shard_source(Path(base), split)
    elif not path.exists() and base and (Path(base) / ".privvid").is_dir():
        src = _output_source(Path(base), split)
    elif path.is_dir() and (path / "manifest.json").is_file() and _is_shard_folder(path):
        src = _shard_source(path, None)
    elif path.is_dir() and (path / ".privvid").is_dir():
        src = _output_source(path, None)
    elif path.suffix == ".tar" and path.is_file() and _is_shard_folder(path.parent):
        src = _shard_source(path.parent, None, only=path.name)
    if src is not None:
        return _finish(src, name, check, require_labels)
    if not path.exists():
        raise EngineError(f"data source {path} does not exist (give a list .txt/.csv or a class-per-folder directory)")
    root_p = Path(root) if root is not None else None
    for suffix, loader in _SOURCES.items():
        if str(path).endswith(suffix):
            src = loader(path, root_p)
            break
    else:
        if path.is_dir():
            src = _folder_source(path)
        elif path.suffix.lower() == ".csv":
            src = _list_source(path, root_p, csv_format=True)
        else:
            src = _list_source(path, root_p, csv_format=False)
    return _finish(src, name, check, require_labels)


def _finish(src: Source, name: str | None, check: bool, require_labels: bool) -> Source:
    if name:
        src.name = name
    if check:
        validate_source(src, require_labels=require_labels)
    return src


def _is_shard_folder(folder: Path) -> bool:
    import json

    try:
        return json.loads((folder / "manifest.json").read_text(encoding="utf-8")).get("format") == "privvid-shards"
    except (OSError, ValueError, AttributeError):
        return False


def _shard_source(folder: Path, split: str | None, only: str | None = None) -> Source:
    """The clips of privvid's WebDataset shards, read in place: each sample is a byte range of its tar
    (found once from the tar's index), so DataLoader workers and DDP ranks seek to their clips directly."""
    import json
    import tarfile

    if not _is_shard_folder(folder):
        raise EngineError(f"{folder} is not a privvid shard folder (no privvid manifest.json)")
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    if split is not None and split not in manifest.get("splits", {}):
        raise EngineError(f"{folder} has no split {split!r}; it has: {', '.join(manifest.get('splits', {}))}")
    samples = []
    for shard in manifest["shards"]:
        if (split is not None and shard["split"] != split) or (only is not None and shard["file"] != only):
            continue
        path = folder / shard["file"]
        ranges: dict[str, tuple[int, int]] = {}
        labels: dict[str, int] = {}
        try:
            with tarfile.open(path) as tar:
                for member in tar:
                    key, _, suffix = member.name.partition(".")
                    if suffix == "mp4":
                        ranges[key] = (member.offset_data, member.size)
                    elif suffix == "json":
                        handle = tar.extractfile(member)
                        labels[key] = int(json.loads(handle.read() if handle else b"{}")["label_index"])
        except (tarfile.TarError, OSError, KeyError, ValueError) as exc:
            raise EngineError(f"shard {path} cannot be read ({exc}); run privvid shards verify {folder}") from None
        for key in sorted(ranges):
            if key not in labels:
                raise EngineError(f"shard {path}: sample {key!r} has no json")
            offset, size = ranges[key]
            samples.append(Sample(path, labels[key], offset, size))
    name = manifest.get("name") or folder.name
    return Source(f"{name}-{split}" if split else name, samples, list(manifest["classes"]))


def _output_source(root: Path, split: str | None) -> Source:
    """An output folder of privvid anonymize, through the dataset format's own scanner: the class and
    split of each clip are what :mod:`privvid.io.layout` says (``split/class/clip`` trees included)."""
    from privvid.io.layout import scan

    clips = scan(root)
    if split is not None:
        clips = [c for c in clips if c.split == split]
        if not clips:
            raise EngineError(f"{root} has no clips in a {split!r} split folder")
    classes = sorted({c.label for c in clips if c.label})
    index = {c: i for i, c in enumerate(classes)}
    samples = [Sample(c.video, index[c.label] if c.label else -1) for c in clips]   # -1: no class (MAE reads it)
    return Source(f"{root.name}-{split}" if split else root.name, samples, classes)


def _folder_source(root: Path) -> Source:
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    # videos beside the class folders have no class (-1): MAE reads a flat folder, supervised training refuses it
    samples = [Sample(f, -1) for f in sorted(root.iterdir()) if f.suffix.lower() in VIDEO_EXTS and f.is_file()]
    for i, cls in enumerate(classes):
        for f in sorted((root / cls).rglob("*")):
            if f.suffix.lower() in VIDEO_EXTS and f.is_file():
                samples.append(Sample(f, i))
    return Source(_source_name(root), samples, classes)


def _list_source(list_path: Path, root: Path | None, csv_format: bool) -> Source:
    base = root if root is not None else list_path.parent
    rows: list[tuple[str, str]] = []
    with open(list_path, newline="") as fh:
        if csv_format:
            reader = csv.reader(fh)
            header = next(reader, None)
            names = [h.strip().lower() for h in header] if header else []
            if "path" in names and "label" in names and names.index("path") != 0:
                # a CSV with named columns in any order (curate's subset.csv: label,key,path,...)
                ip, il = names.index("path"), names.index("label")
                rows += [(r[ip].strip(), r[il].strip()) for r in reader if len(r) > max(ip, il) and r[ip].strip()]
                reader = iter(())
            elif header is not None:
                reader = iter([header, *reader])
            for row in reader:
                if row and row[0].strip() and not row[0].startswith("#"):
                    if len(row) == 1 and ";" in row[0] and _is_int(row[0].rsplit(";", 1)[1].strip()):
                        row = row[0].rsplit(";", 1)  # PPMA's downstream lists: "path;label"
                    elif len(row) == 1 and len(row[0].split()) >= 2:  # VideoMAE's .csv lists: "path label"
                        row = row[0].rsplit(None, 1)
                    if len(row) < 2:
                        raise EngineError(f"{list_path}: row {row!r} has no label column (want path,label)")
                    rows.append((row[0].strip(), row[1].strip()))
        else:
            for line in fh:
                line = line.strip()
                if not line or line.startswith("#"):
                    continue
                parts = line.rsplit(";", 1) if ";" in line else line.rsplit(None, 1)
                if len(parts) != 2:
                    raise EngineError(f"{list_path}: line {line!r} is not 'path label'")
                rows.append((parts[0], parts[1]))
    if csv_format and rows and rows[0][0].lower() in ("path", "file", "filename", "video"):
        rows = rows[1:]  # header
    labels = [lab for _, lab in rows]
    if labels and all(_is_int(lab) for lab in labels):
        n = max(int(lab) for lab in labels) + 1
        classes = [str(i) for i in range(n)]
        index = {str(i): i for i in range(n)}
        ids = [int(lab) for lab in labels]
    else:
        classes = sorted(set(labels))
        index = {c: i for i, c in enumerate(classes)}
        ids = [index[lab] for lab in labels]
    samples = [Sample(_resolve(base, p), i) for (p, _), i in zip(rows, ids)]
    return Source(_source_name(list_path), samples, classes)


def _resolve(base: Path, p: str) -> Path:
    """A list entry: a video file or a frame folder, relative to ``base``; an entry without an extension
    (PPMA's UCF101 / HMDB51 lists) is the frame folder of that name, or the video with that stem."""
    q = Path(p.strip())
    q = q if q.is_absolute() else base / q
    if q.exists() or q.suffix.lower() in VIDEO_EXTS:
        return q
    for ext in sorted(VIDEO_EXTS):
        if q.with_name(q.name + ext).is_file():
            return q.with_name(q.name + ext)
    return q


def _is_int(s: str) -> bool:
    try:
        int(s)
        return True
    except ValueError:
        return False


def validate_source(src: Source, require_labels: bool = True) -> None:
    """Clear errors before training: empty, single-class, missing files."""
    if not src.samples:
        raise EngineError(f"dataset {src.name!r} is empty: no video files found")
    missing = [s.path for s in src.samples if not (s.path.is_file() or (s.path.is_dir() and s.offset < 0))]
    if missing:
        more = f" (and {len(missing) - 3} more)" if len(missing) > 3 else ""
        raise EngineError(f"dataset {src.name!r} names {len(missing)} missing file(s): "
                          f"{', '.join(map(str, missing[:3]))}{more}")
    if require_labels:
        unlabelled = sum(s.label < 0 for s in src.samples)
        if unlabelled:
            raise EngineError(f"dataset {src.name!r}: {unlabelled} of {len(src.samples)} clips have no class (a flat "
                              "dataset: IN/clip.mp4 instead of IN/class/clip.mp4); supervised training needs a class "
                              "per clip (MAE pre-training reads it as it is)")
        used = {s.label for s in src.samples}
        if len(used) < 2:
            raise EngineError(f"dataset {src.name!r} has a single class ({src.classes[next(iter(used))]!r}); "
                              "supervised training needs at least two")


# ----------------------------------------------------------------------------- decoding


def _frame_count(stream, container) -> tuple[int, float]:
    fps = float(stream.average_rate or stream.guessed_rate or 25)
    n = stream.frames
    if not n:
        dur = None
        if stream.duration is not None and stream.time_base is not None:
            dur = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            dur = container.duration / 1_000_000
        n = int(math.floor((dur or 0) * fps))
    return max(int(n), 1), fps


def clip_indices(n_frames: int, frames: int, stride: int, rng: np.random.Generator | None,
                 view: tuple[int, int] = (0, 1)) -> np.ndarray:
    """Frame indices of one clip: ``frames`` frames every ``stride``; random start if ``rng``, else clip
    ``view[0]`` of ``view[1]`` evenly spaced over the video (one view: centred)."""
    span = (frames - 1) * stride + 1
    if span <= n_frames:
        if rng is not None:
            start = int(rng.integers(0, n_frames - span + 1))
        elif view[1] <= 1:
            start = (n_frames - span) // 2
        else:
            start = int(round((n_frames - span) * view[0] / (view[1] - 1)))
        return start + np.arange(frames) * stride
    # too short: spread evenly over the whole video (frames repeat)
    return np.linspace(0, n_frames - 1, frames).round().astype(np.int64)


def decode_clip(path: Path, frames: int, stride: int, short_side: int,
                rng: np.random.Generator | None, threads: int | None = None,
                offset: int = -1, size: int = 0, view: tuple[int, int] = (0, 1)) -> np.ndarray:
    """Decode only the sampled frames (seeking), resized so the short side is ``short_side``.

    ``threads``: decoder threads; None = one inside DataLoader workers (the workers already fill
    the cores), FFmpeg's automatic choice in the main process.
    """
    import av

    from privvid.io.video import frame_rgb

    if offset < 0 and Path(path).is_dir():
        return _decode_frame_folder(Path(path), frames, stride, short_side, rng, view)
    try:
        if offset >= 0:  # a clip inside a tar shard: read its bytes, decode from memory
            import io

            with open(path, "rb") as handle:
                handle.seek(offset)
                data = handle.read(size)
            container = av.open(io.BytesIO(data))
        else:
            container = av.open(str(path))
    except Exception as exc:  # av raises several types
        raise EngineError(f"cannot open video {path}: {exc}") from None
    with container:
        stream = container.streams.video[0]
        if threads is None:
            from torch.utils.data import get_worker_info

            threads = 1 if get_worker_info() is not None else 0
        if threads != 1:
            stream.thread_type = "AUTO"
        stream.codec_context.thread_count = threads
        n, fps = _frame_count(stream, container)
        idx = clip_indices(n, frames, stride, rng, view)
        w, h = stream.codec_context.width, stream.codec_context.height
        if w <= h:
            ow, oh = short_side, int(round(h * short_side / w))
        else:
            oh, ow = short_side, int(round(w * short_side / h))
        tb = float(stream.time_base)
        # the first packet's time stamp is frame 0 (AVI streams often start at 1, not at start_time)
        origin = None
        for packet in container.demux(stream):
            if packet.pts is not None:
                origin = packet.pts
                break
        if origin is None:
            origin = stream.start_time or 0
        start_t = float(origin * stream.time_base)
        first, last = int(idx.min()), int(idx.max())
        container.seek(int(origin + first / fps / tb), stream=stream, backward=True, any_frame=False)
        wanted = set(idx.tolist())
        got: dict[int, np.ndarray] = {}
        prev = None
        i = -1
        for frame in container.decode(stream):
            # frames arrive in presentation order; anchor the first one after the seek by its time
            # stamp and count from there (AVI time stamps can be out of order or offset)
            if i < 0:
                i = 0 if frame.pts is None else max(0, int(round((frame.pts * tb - start_t) * fps)))
            else:
                i += 1
            if i > last:
                break
            if i in wanted or (i >= first and prev is None):
                arr = frame_rgb(frame, ow, oh)
                if i in wanted:
                    got[i] = arr
                prev = arr
    if not got:
        raise EngineError(f"no frames decoded from {path}")
    # fill frames missing after an inexact seek or a short stream with their nearest decoded neighbour
    have = np.array(sorted(got))
    out = [got[int(have[np.abs(have - i).argmin()])] for i in idx]
    return np.stack(out)


def _crop(video: torch.Tensor, size: int, rng: np.random.Generator | None, scale: tuple[float, float],
          flip: bool, crop: tuple[int, int] = (0, 1)) -> torch.Tensor:
    """video uint8 (T, H, W, 3) -> uint8 (T, size, size, 3). Test crops: square crop ``crop[0]`` of ``crop[1]``
    along the long side (one: centred; three: start, centre, end)."""
    t, h, w, _ = video.shape
    if rng is None:
        side = min(h, w)
        pos = 0.5 if crop[1] <= 1 else crop[0] / (crop[1] - 1)
        y0, x0 = int(round((h - side) * pos)), int(round((w - side) * pos))
        if h > w:
            x0 = (w - side) // 2
        else:
            y0 = (h - side) // 2
        ch = cw = side
    else:
        area = h * w * rng.uniform(*scale)
        ratio = math.exp(rng.uniform(math.log(3 / 4), math.log(4 / 3)))
        cw = int(round(min(w, math.sqrt(area * ratio))))
        ch = int(round(min(h, math.sqrt(area / ratio))))
        y0 = int(rng.integers(0, h - ch + 1))
        x0 = int(rng.integers(0, w - cw + 1))
    v = video[:, y0:y0 + ch, x0:x0 + cw]
    if (ch, cw) != (size, size):
        import cv2

        # area averaging when shrinking (anti-aliased), bilinear when enlarging; per frame on uint8
        # (10x faster than torch's anti-aliased float interpolation on these sizes)
        interp = cv2.INTER_AREA if ch > size and cw > size else cv2.INTER_LINEAR
        v = torch.from_numpy(np.stack([cv2.resize(np.ascontiguousarray(f), (size, size), interpolation=interp)
                                       for f in v.numpy()]))
    if rng is not None and flip and rng.random() < 0.5:
        v = v.flip(2)
    return v.contiguous()


def _erase(video: torch.Tensor, rng: np.random.Generator, p: float) -> torch.Tensor:
    """Random erasing: one box, the same over all frames, filled with noise."""
    if rng.random() >= p:
        return video
    t, h, w, c = video.shape
    for _ in range(10):
        area = h * w * rng.uniform(0.02, 1 / 3)
        ratio = math.exp(rng.uniform(math.log(0.3), math.log(1 / 0.3)))
        eh, ew = int(round(math.sqrt(area * ratio))), int(round(math.sqrt(area / ratio)))
        if eh < h and ew < w:
            y, x = int(rng.integers(0, h - eh)), int(rng.integers(0, w - ew))
            video = video.clone()
            noise = rng.integers(0, 256, size=(1, eh, ew, c), dtype=np.uint8)
            video[:, y:y + eh, x:x + ew] = torch.from_numpy(noise)
            return video
    return video


def item_key(seed: int, epoch: int, position: int, extra: int = 0) -> int:
    """A 63-bit per-sample seed, independent of workers, ranks and batch layout."""
    h = hashlib.blake2b(f"{seed}/{epoch}/{position}/{extra}".encode(), digest_size=8).digest()
    return int.from_bytes(h, "little") & 0x7FFF_FFFF_FFFF_FFFF


IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


def _decode_frame_folder(folder: Path, frames: int, stride: int, short_side: int,
                         rng: np.random.Generator | None, view: tuple[int, int] = (0, 1)) -> np.ndarray:
    """A rawframe clip (a folder of images in name order, mmaction2's RawframeDataset layout): read only the
    sampled frames, resized so the short side is ``short_side``."""
    import cv2

    from privvid.io.video import natural_order

    files = sorted((p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTS and not p.name.startswith(".")),
                   key=natural_order)   # img_2.jpg before img_10.jpg
    if not files:
        raise EngineError(f"frame folder {folder} holds no images")
    idx = clip_indices(len(files), frames, stride, rng, view)
    out, cache = [], {}
    for i in idx.tolist():
        if i not in cache:
            image = cv2.imread(str(files[i]), cv2.IMREAD_COLOR)
            if image is None:
                raise EngineError(f"cannot read frame {files[i]}")
            h, w = image.shape[:2]
            size = (short_side, int(round(h * short_side / w))) if w <= h else (int(round(w * short_side / h)), short_side)
            cache[i] = cv2.cvtColor(cv2.resize(image, size, interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB)
        out.append(cache[i])
    return np.stack(out)


class ClipDataset(Dataset):
    """Items are indexed by ``(sample index, key)`` pairs from :class:`EpochSampler`."""

    def __init__(self, source: Source, cfg: DataConfig, train: bool, view: int = 0) -> None:
        """``view``: at test, which of the ``clips_per_video x crops`` views this dataset yields."""
        self.source = source
        self.cfg = cfg
        self.train = train
        crops = max(1, cfg.crops)
        self.clip_view = (view // crops, max(1, cfg.clips_per_video))
        self.crop_view = (view % crops, crops)
        self._randaug = None
        if train and cfg.randaug_n > 0:
            from torchvision.transforms import v2

            self._randaug = v2.RandAugment(num_ops=cfg.randaug_n, magnitude=cfg.randaug_m)

    def __len__(self) -> int:
        return len(self.source.samples)

    def __getitem__(self, item: tuple[int, int] | int) -> dict[str, torch.Tensor]:
        index, key = item if isinstance(item, tuple) else (item, item_key(0, 0, item))
        s = self.source.samples[index]
        rng = np.random.default_rng(key) if self.train else None
        side = self.cfg.short_side if self.train else self.cfg.size
        video = torch.from_numpy(decode_clip(s.path, self.cfg.frames, self.cfg.stride, side, rng,
                                             offset=s.offset, size=s.size, view=self.clip_view))
        video = _crop(video, self.cfg.size, rng, self.cfg.scale, self.cfg.flip, self.crop_view)
        if self._randaug is not None and rng is not None:
            # one RandAugment draw for the whole clip (every frame gets the same operations), seeded by the key
            state = torch.get_rng_state()
            torch.manual_seed(key & 0x7FFF_FFFF_FFFF_FFFF)
            video = self._randaug(video.permute(0, 3, 1, 2)).permute(0, 2, 3, 1).contiguous()
            torch.set_rng_state(state)
        if rng is not None and self.cfg.erase > 0:
            video = _erase(video, rng, self.cfg.erase)
        return {"video": video, "label": torch.tensor(s.label), "key": torch.tensor(key), "index": torch.tensor(index)}


class EpochSampler(Sampler):
    """Deterministic per-epoch order; each DDP rank takes a strided share of every global batch.

    Yields ``(index, key)``: ``key`` seeds the item's augmentation and its MAE mask, so a clip gets
    the same crop and mask whether it lands on rank 0 or 1, in worker 0 or 3, before or after resume.
    """

    def __init__(self, n: int, global_batch: int, seed: int, shuffle: bool = True, rank: int = 0,
                 world: int = 1, drop_last: bool = True) -> None:
        if global_batch % world:
            raise EngineError(f"global batch {global_batch} is not divisible by {world} processes")
        self.n, self.global_batch, self.seed, self.shuffle = n, global_batch, seed, shuffle
        self.rank, self.world, self.drop_last = rank, world, drop_last
        self.epoch = 0
        self.skip_batches = 0

    def set_epoch(self, epoch: int, skip_batches: int = 0) -> None:
        self.epoch, self.skip_batches = epoch, skip_batches

    def global_order(self) -> list[int]:
        if self.shuffle:
            g = torch.Generator().manual_seed(item_key(self.seed, self.epoch, -1))
            order = torch.randperm(self.n, generator=g).tolist()
        else:
            order = list(range(self.n))
        if self.drop_last and self.n >= self.global_batch:
            order = order[: (self.n // self.global_batch) * self.global_batch]
        elif self.world == 1 and not self.drop_last:
            return order  # one process, no dropping: the last batch may be short
        elif len(order) % self.global_batch:
            # pad (cycle) so every rank gets full batches
            pad = self.global_batch - len(order) % self.global_batch
            order = order + (order * (pad // max(1, len(order)) + 1))[:pad]
        return order

    def batches_per_epoch(self) -> int:
        return -(-len(self.global_order()) // self.global_batch)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        order = self.global_order()
        local = self.global_batch // self.world
        for b in range(self.skip_batches, self.batches_per_epoch()):
            chunk = order[b * self.global_batch:(b + 1) * self.global_batch]
            for j in range(self.rank * local, min(len(chunk), (self.rank + 1) * local)):
                yield chunk[j], item_key(self.seed, self.epoch, b * self.global_batch + j)

    def __len__(self) -> int:
        return max(0, len(self.global_order()) - self.skip_batches * self.global_batch) // self.world


def to_model_input(video: torch.Tensor, device: torch.device) -> torch.Tensor:
    """uint8 (B, T, H, W, 3) -> normalised float (B, 3, T, H, W) on ``device``."""
    v = video.to(device, non_blocking=True).permute(0, 4, 1, 2, 3).float()
    mean = MEAN.to(device).view(1, 3, 1, 1, 1)
    std = STD.to(device).view(1, 3, 1, 1, 1)
    return ((v - mean) / std).contiguous()


def split_sources(sources: Sequence[Source]) -> dict[str, int]:
    names = [s.name for s in sources]
    if len(set(names)) != len(names):
        raise EngineError(f"two datasets share the name {names}; name them (path=name) to tell the heads apart")
    return {s.name: s.num_classes for s in sources}
