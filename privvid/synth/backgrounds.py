"""Backgrounds of synthetic clips: procedural ones, or crops of the images and videos of a folder.

A background is described by a small JSON-able dict (drawn per clip, kept in ``synth.json``) and
made from it alone, so a clip can be made again from its record:

- ``{"kind": "gradient" | "noise" | "room", ...colours, "texture_seed": int}``: procedural, static;
- ``{"kind": "file", "file": relative path, "crop": [x, y, w, h] (shares of the frame), "flip": bool,
  "start": share of the video}``: a crop of an image (static) or of consecutive video frames (moving),
  e.g. the people-free clips ``privvid anonymize --mode remove`` writes.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np

from privvid.errors import BadInput, ConfigError
from privvid.io.video import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS

PROCEDURAL = ("gradient", "noise", "room")


# ---------------------------------------------------------------- files

def find_background_files(folder: Path) -> list[str]:
    """Images and videos under ``folder`` (hidden files and folders skipped), as sorted POSIX paths
    relative to it."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ConfigError(f"--backgrounds {folder} is not a folder")
    found = []
    for path in folder.rglob("*"):
        rel = path.relative_to(folder)
        if any(part.startswith(".") for part in rel.parts) or not path.is_file():
            continue
        if path.suffix.lower() in IMAGE_EXTENSIONS | VIDEO_EXTENSIONS:
            found.append(rel.as_posix())
    if not found:
        raise ConfigError(f"--backgrounds {folder} holds no images or videos "
                          f"({', '.join(sorted(IMAGE_EXTENSIONS | VIDEO_EXTENSIONS))})")
    empty = sorted(rel for rel in found if (folder / rel).stat().st_size == 0)
    if empty:
        raise ConfigError(f"--backgrounds {folder}: {len(empty)} empty file(s) (0 bytes), e.g. {empty[0]}: "
                          "remove them or point --backgrounds at a folder without them")
    return sorted(found)


def files_digest(folder: Path, files: list[str]) -> str:
    """Names and sizes of the background files: a changed folder changes the clips drawn from it."""
    h = hashlib.sha256()
    for rel in files:
        h.update(f"{rel}\0{(Path(folder) / rel).stat().st_size}\n".encode())
    return h.hexdigest()


# ---------------------------------------------------------------- drawing a description

def _color(rng: np.random.Generator, lo: float = 0.1, hi: float = 0.95) -> list[int]:
    import colorsys

    h, s, v = rng.uniform(0, 1), rng.uniform(0.05, 0.6), rng.uniform(lo, hi)
    return [int(round(255 * c)) for c in colorsys.hsv_to_rgb(h, s, v)]


def draw_background(rng: np.random.Generator, files: list[str] | None) -> dict[str, Any]:
    """A background description; ``files`` (from :func:`find_background_files`) replaces the procedural
    kinds when given."""
    if files:
        return {
            "kind": "file",
            "file": files[int(rng.integers(len(files)))],
            "scale": round(float(rng.uniform(0.55, 1.0)), 4),
            "x": round(float(rng.uniform(0, 1)), 4),
            "y": round(float(rng.uniform(0, 1)), 4),
            "flip": bool(rng.integers(2)),
            "start": round(float(rng.uniform(0, 1)), 4),
        }
    kind = PROCEDURAL[int(rng.integers(len(PROCEDURAL)))]
    out: dict[str, Any] = {"kind": kind, "colors": [_color(rng), _color(rng)],
                           "texture_seed": int(rng.integers(2**31))}
    if kind == "gradient":
        out["angle"] = round(float(rng.uniform(0, 360)), 2)
    elif kind == "noise":
        out["grain"] = int(rng.integers(3, 14))
    else:
        out["horizon"] = round(float(rng.uniform(0.35, 0.65)), 4)
    return out


# ---------------------------------------------------------------- making the pixels

def _upsampled_noise(rng: np.random.Generator, grid: int, width: int, height: int) -> np.ndarray:
    import cv2

    small = rng.random((grid + 1, grid + 1)).astype(np.float32)
    big = cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)
    lo, hi = float(big.min()), float(big.max())
    return (big - lo) / max(hi - lo, 1e-6)


def procedural(desc: dict[str, Any], width: int, height: int) -> np.ndarray:
    """One (H, W, 3) uint8 frame from a procedural description."""
    rng = np.random.default_rng(int(desc["texture_seed"]))
    c0, c1 = (np.asarray(c, np.float32) for c in desc["colors"])
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    kind = desc["kind"]
    if kind == "gradient":
        a = np.deg2rad(float(desc["angle"]))
        proj = (xx - width / 2) * np.cos(a) + (yy - height / 2) * np.sin(a)
        w = (proj - proj.min()) / max(float(proj.max() - proj.min()), 1e-6)
    elif kind == "noise":
        grain = int(desc["grain"])
        w = 0.7 * _upsampled_noise(rng, grain, width, height) + 0.3 * _upsampled_noise(rng, grain * 4, width, height)
    elif kind == "room":
        horizon = float(desc["horizon"]) * height
        wall = np.clip(0.5 * yy / max(horizon, 1.0), 0.0, 0.5)               # darker towards the floor
        floor = np.clip((yy - horizon) / max(height - horizon, 1.0), 0.0, 1.0)
        w = np.where(yy < horizon, wall, 0.65 + 0.35 * floor)
        w = w + 0.08 * (_upsampled_noise(rng, 8, width, height) - 0.5)
    else:
        raise ValueError(f"unknown background kind {kind!r}")
    img = c0[None, None] * (1.0 - w[..., None]) + c1[None, None] * w[..., None]
    img += rng.normal(0.0, 2.0, img.shape).astype(np.float32)                # film grain, no banding
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def _crop_resize(frame: np.ndarray, desc: dict[str, Any], width: int, height: int) -> np.ndarray:
    import cv2

    fh, fw = frame.shape[:2]
    aspect = width / height
    cw, ch = (fw, fw / aspect) if fw / fh <= aspect else (fh * aspect, fh)   # the largest crop of the out aspect
    cw, ch = max(2.0, cw * float(desc["scale"])), max(2.0, ch * float(desc["scale"]))
    x0 = int(round((fw - cw) * float(desc["x"])))
    y0 = int(round((fh - ch) * float(desc["y"])))
    crop = frame[y0:y0 + int(round(ch)), x0:x0 + int(round(cw))]
    out = cv2.resize(crop, (width, height), interpolation=cv2.INTER_AREA if crop.shape[1] > width
                     else cv2.INTER_LINEAR)
    return np.ascontiguousarray(out[:, ::-1]) if desc.get("flip") else out


def _read_rgb(path: Path) -> np.ndarray:
    import cv2

    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise BadInput("not an image OpenCV can read")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def from_file(desc: dict[str, Any], folder: Path, width: int, height: int, frames: int) -> np.ndarray:
    """(T, H, W, 3) uint8: a crop of an image (repeated) or of ``frames`` consecutive video frames
    (played back and forth when the video is shorter)."""
    from privvid.io.video import probe, read_frames

    path = Path(folder) / desc["file"]
    try:
        if path.suffix.lower() in IMAGE_EXTENSIONS:
            one = _crop_resize(_read_rgb(path), desc, width, height)
            return np.repeat(one[None], frames, axis=0)
        info = probe(path)
        start = int(float(desc["start"]) * max(0, info.frames - frames))
        got: list[np.ndarray] = []
        for k, frame in enumerate(read_frames(path, info=info)):
            if k >= start:
                got.append(_crop_resize(frame, desc, width, height))
                if len(got) == frames:
                    break
    except BadInput as exc:
        raise BadInput(f"background {path}: {exc}") from None
    if not got:
        raise BadInput(f"background {path}: no frame at or after frame {start}")
    order = list(range(len(got))) + list(range(len(got) - 2, 0, -1)) or [0]
    return np.stack([got[order[k % len(order)]] for k in range(frames)])


def make_background(desc: dict[str, Any], width: int, height: int, frames: int,
                    folder: Path | None = None) -> np.ndarray:
    """(T, H, W, 3) uint8 for a description (a static one is the same array repeated)."""
    if desc["kind"] == "file":
        if folder is None:
            raise ConfigError("this background comes from a --backgrounds folder, and none was given")
        return from_file(desc, folder, width, height, frames)
    one = procedural(desc, width, height)
    return np.broadcast_to(one, (frames, height, width, 3))
