"""``privvid synth``: a class-per-folder dataset of rendered action clips, with lists and a record.

Layout of ``OUT``::

    classes.txt                 one class name a line, in label order
    train.csv, val.csv          "relative/path.mp4 label_index" lines (written once every clip exists)
    synth.json                  the settings, the counts and every clip's drawn description
    <class>/<class>_<index:04d>.mp4

Every clip is drawn from its own generator (seed, motion, index), so the same settings give the same
clips; re-running the same command skips the clips already written (each is written atomically), and
other settings are refused for a folder that holds a run unless ``overwrite``.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from privvid.errors import ConfigError
from privvid.io.atomic import write_text_atomic
from privvid.synth.backgrounds import files_digest, find_background_files
from privvid.synth.motions import MOTION_NAMES
from privvid.synth.spec import ClipSpec, draw_clip

FORMAT = "privvid-synth/1"
MANIFEST = "synth.json"
MAX_SIDE = 4096


@dataclass(frozen=True)
class SynthSettings:
    classes: int = 12
    per_class: int = 50
    seed: int = 0
    frames: int = 32
    width: int = 112
    height: int = 112
    fps: float = 25.0
    val_fraction: float = 0.2
    crf: int = 18
    backgrounds: Path | None = None

    def validate(self) -> None:
        """Raise :class:`ConfigError` for a setting that cannot work (before anything is rendered)."""
        n = len(MOTION_NAMES)
        if not 2 <= self.classes <= n:
            raise ConfigError(f"--classes must be between 2 and {n} (the motions there are: "
                              f"{', '.join(MOTION_NAMES)}), got {self.classes}")
        if self.per_class < 1:
            raise ConfigError(f"--per-class must be at least 1, got {self.per_class}")
        if self.seed < 0:
            raise ConfigError(f"--seed must be 0 or more, got {self.seed}")
        if not 2 <= self.frames <= 10_000:
            raise ConfigError(f"--frames must be between 2 and 10000, got {self.frames}")
        for name, side in (("width", self.width), ("height", self.height)):
            if not 16 <= side <= MAX_SIDE or side % 2:
                raise ConfigError(f"--size: the {name} must be even (H.264 yuv420p) and between 16 and "
                                  f"{MAX_SIDE}, got {self.width}x{self.height}")
        if not (math.isfinite(self.fps) and 0 < self.fps <= 240):
            raise ConfigError(f"--fps must be above 0 and at most 240, got {self.fps}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ConfigError(f"--val-fraction must be in [0, 1), got {self.val_fraction}")
        if not 0 <= self.crf <= 51:
            raise ConfigError(f"--crf must be between 0 and 51, got {self.crf}")

    @property
    def class_names(self) -> list[str]:
        return list(MOTION_NAMES[: self.classes])


@dataclass
class Clip:
    relpath: str
    label: int
    split: str
    spec: ClipSpec


@dataclass
class SynthSummary:
    out: Path
    clips: int
    rendered: int
    skipped: int
    frames: int
    seconds: float
    classes: list[str]


def clip_relpath(name: str, index: int) -> str:
    return f"{name}/{name}_{index:04d}.mp4"


def val_indices(seed: int, label_name: str, count: int, fraction: float) -> set[int]:
    """The clips of a class that go to val: a seeded draw of round(fraction * count) of them (at least
    one when the class has two clips or more and the fraction is above 0)."""
    if fraction <= 0 or count < 2:
        return set()
    n_val = min(count - 1, max(1, int(round(fraction * count))))
    motion_id = MOTION_NAMES.index(label_name)
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), motion_id, count, 0x5B1]))
    return {int(i) for i in rng.choice(count, size=n_val, replace=False)}


def plan(settings: SynthSettings, background_files: list[str] | None = None) -> list[Clip]:
    clips = []
    for label, name in enumerate(settings.class_names):
        val = val_indices(settings.seed, name, settings.per_class, settings.val_fraction)
        for i in range(settings.per_class):
            spec = draw_clip(settings.seed, name, i, settings.frames, background_files)
            clips.append(Clip(clip_relpath(name, i), label, "val" if i in val else "train", spec))
    return clips


def _settings_record(s: SynthSettings, backgrounds: dict[str, Any] | None) -> dict[str, Any]:
    d = asdict(s)
    d.pop("backgrounds")
    d["size"] = [d.pop("width"), d.pop("height")]
    d["classes"] = s.class_names
    d["backgrounds"] = backgrounds
    d["format"] = FORMAT
    return d


def _differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    keys = sorted(set(old) | set(new))
    return [f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in keys if old.get(k) != new.get(k)]


def _our_clips(out: Path) -> list[Path]:
    """Clip files (and leftover partial files) of any motion under ``out``."""
    found: list[Path] = []
    for name in MOTION_NAMES:
        folder = out / name
        if folder.is_dir():
            found += sorted(folder.glob(f"{name}_[0-9][0-9][0-9][0-9]*.mp4"))
            found += sorted(folder.glob(f".{name}_*.partial.mp4"))
    return found


def _prepare_out(out: Path, record: dict[str, Any], overwrite: bool) -> None:
    manifest = out / MANIFEST
    if manifest.is_file():
        try:
            old = json.loads(manifest.read_text()).get("settings", {})
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{manifest} is not readable JSON ({exc}); pass --overwrite to start again") from None
        diff = _differences(old, record)
        if diff and not overwrite:
            raise ConfigError(f"{out} holds a synth run with other settings ({'; '.join(diff)}); use another "
                              "--out, or pass --overwrite to replace it")
    elif out.is_dir() and any(out.iterdir()) and not overwrite:
        raise ConfigError(f"{out} is not empty and holds no {MANIFEST}; use an empty or new folder, or pass "
                          "--overwrite to write into it anyway")
    if overwrite:
        for path in _our_clips(out):
            path.unlink(missing_ok=True)
        for name in ("train.csv", "val.csv", "classes.txt"):
            (out / name).unlink(missing_ok=True)
    else:
        for name in MOTION_NAMES:   # temporary files of an interrupted run
            folder = out / name
            if folder.is_dir():
                for path in folder.glob(f".{name}_*.partial.mp4"):
                    path.unlink(missing_ok=True)


def _manifest(settings: SynthSettings, record: dict[str, Any], clips: list[Clip], complete: bool,
              body_info: dict[str, Any]) -> str:
    import privvid
    from privvid.synth.render import SUPERSAMPLE

    counts: dict[str, dict[str, int]] = {}
    for c in clips:
        name = c.spec.motion
        counts.setdefault(name, {"train": 0, "val": 0})
        counts[name][c.split] += 1
    doc = {
        "format": FORMAT,
        "privvid_version": privvid.__version__,
        "complete": complete,
        "settings": record,
        "backgrounds_folder": None if settings.backgrounds is None else str(Path(settings.backgrounds).resolve()),
        "counts": counts,
        "body_model": body_info,
        "renderer": {"backend": "pyrender (privvid.mesh.render.MeshRenderer)", "supersample": SUPERSAMPLE},
        "clips": [{"path": c.relpath, "label": c.label, "split": c.split, **c.spec.to_dict()} for c in clips],
    }
    return json.dumps(doc, indent=1) + "\n"


def synthesize(out: str | Path, settings: SynthSettings, overwrite: bool = False,
               on_start: Callable[[int], None] | None = None, on_clip: Callable[[int], None] | None = None,
               renderer: Any = None) -> SynthSummary:
    """Render the dataset ``settings`` describes into ``out`` (resuming a run of the same settings)."""
    from privvid.io.video import VideoWriter

    settings.validate()
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file, not a folder")
    bg_files: list[str] | None = None
    bg_record = None
    if settings.backgrounds is not None:
        folder = Path(settings.backgrounds).expanduser()
        bg_files = find_background_files(folder)
        bg_record = {"files": len(bg_files), "digest": files_digest(folder, bg_files)}
    record = _settings_record(settings, bg_record)
    _prepare_out(out, record, overwrite)
    clips = plan(settings, bg_files)

    own = renderer is None
    if own:
        from privvid.synth.render import SynthRenderer

        renderer = SynthRenderer(settings.width, settings.height)
    t0 = time.perf_counter()
    rendered = frames = 0
    fresh = not (out / MANIFEST).exists()   # this run starts the folder: a failure before any clip leaves no run
    try:
        body_info = renderer.body.info()
        body_info.pop("body_model_path", None)     # the cache path differs from machine to machine
        out.mkdir(parents=True, exist_ok=True)
        write_text_atomic(out / MANIFEST, _manifest(settings, record, clips, False, body_info))
        todo = [c for c in clips if not (out / c.relpath).is_file()]
        if on_start is not None and todo:
            on_start(len(todo))
        bg_folder = Path(settings.backgrounds).expanduser() if settings.backgrounds is not None else None
        for c in todo:
            images = renderer.render(c.spec, settings.frames, bg_folder)
            with VideoWriter(out / c.relpath, settings.width, settings.height, settings.fps,
                             crf=settings.crf) as writer:
                for image in images:
                    writer.write(image)
            rendered += 1
            frames += len(images)
            if on_clip is not None:
                on_clip(len(images))
    except BaseException:
        if fresh and rendered == 0:
            # nothing of this run is kept: its settings must not bind the corrected command to --overwrite
            # (the writer may have made a class folder, and left a temp file there if it was killed)
            (out / MANIFEST).unlink(missing_ok=True)
            folders = [p for p in out.iterdir() if p.is_dir()] if out.is_dir() else []
            for folder in folders:
                for temp in folder.glob(".*.partial*"):
                    temp.unlink(missing_ok=True)
                if not any(folder.iterdir()):
                    folder.rmdir()
            if out.is_dir() and not any(out.iterdir()):
                out.rmdir()
        raise
    finally:
        if own:
            renderer.close()
    names = settings.class_names
    write_text_atomic(out / "classes.txt", "".join(f"{n}\n" for n in names))
    for split in ("train", "val"):
        write_text_atomic(out / f"{split}.csv",
                          "".join(f"{c.relpath} {c.label}\n" for c in clips if c.split == split))
    write_text_atomic(out / MANIFEST, _manifest(settings, record, clips, True, body_info))
    return SynthSummary(out=out, clips=len(clips), rendered=rendered, skipped=len(clips) - len(todo),
                        frames=frames, seconds=round(time.perf_counter() - t0, 2), classes=names)
