"""What one synthetic clip shows, drawn from a generator seeded by (seed, motion, clip index).

The description is plain data (it goes into ``synth.json`` as is) and is all the renderer needs, so a
clip depends on nothing else: not on how many classes or clips the run has, nor on the order in which
they are made. The draws happen in a fixed order; adding a draw at the end keeps the earlier ones.
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from privvid.synth.backgrounds import draw_background
from privvid.synth.motions import MOTION_NAMES, MotionParams, get_motion

NUM_BETAS = 10
BETA_STD, BETA_MAX = 0.8, 2.0        # body shape: N(0, 0.8) per direction, clipped to +-2
# a wood-to-dark-brown ramp for the uncovered parts (head, hands)
SKIN_TONES = np.array([[236, 200, 160], [214, 168, 122], [176, 126, 86], [120, 82, 56], [82, 56, 40]], np.float32)


@dataclass(frozen=True)
class ClipSpec:
    motion: str
    index: int
    params: MotionParams
    betas: tuple[float, ...]
    colors: dict[str, list[int]]          # shirt, trousers, skin, shoes (RGB 0-255)
    light: dict[str, float]               # azimuth, elevation (degrees, camera frame), ambient, diffuse
    camera: dict[str, float]              # yaw, height, target, fill, offset, roll (see render.py)
    background: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"motion": self.motion, "index": self.index, "params": self.params.to_dict(),
                "betas": list(self.betas), "colors": self.colors, "light": self.light, "camera": self.camera,
                "background": self.background}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ClipSpec":
        return cls(motion=d["motion"], index=int(d["index"]), params=MotionParams(**d["params"]),
                   betas=tuple(float(b) for b in d["betas"]), colors=d["colors"], light=d["light"],
                   camera=d["camera"], background=d["background"])


def clip_rng(seed: int, motion: str, index: int) -> np.random.Generator:
    motion_id = MOTION_NAMES.index(motion)
    return np.random.default_rng(np.random.SeedSequence([int(seed), motion_id, int(index)]))


def _r(x: float, nd: int = 4) -> float:
    return round(float(x), nd)


def _hsv(rng: np.random.Generator, s: tuple[float, float], v: tuple[float, float]) -> list[int]:
    rgb = colorsys.hsv_to_rgb(rng.uniform(0, 1), rng.uniform(*s), rng.uniform(*v))
    return [int(round(255 * c)) for c in rgb]


def draw_clip(seed: int, motion: str, index: int, frames: int, background_files: list[str] | None = None
              ) -> ClipSpec:
    """Everything random about clip ``index`` of ``motion``."""
    m = get_motion(motion)
    rng = clip_rng(seed, motion, index)
    cycles = float(rng.uniform(*m.cycles))
    cycles = min(cycles, max(frames / 6.0, 0.5))     # at least ~6 frames per cycle
    params = MotionParams(
        amplitude=_r(rng.uniform(0.75, 1.25)),
        cycles=_r(cycles),
        phase=_r(rng.uniform(*m.phase)),
        side=int(rng.choice([-1, 1])),
        rest_arm=_r(rng.uniform(5.0, 20.0), 2),
        lean=_r(rng.uniform(-3.0, 8.0), 2),
    )
    betas = tuple(_r(b) for b in np.clip(rng.normal(0.0, BETA_STD, NUM_BETAS), -BETA_MAX, BETA_MAX))
    tone = rng.uniform(0, len(SKIN_TONES) - 1)
    lo = int(np.floor(tone))
    hi = min(lo + 1, len(SKIN_TONES) - 1)
    skin = SKIN_TONES[lo] * (1 - (tone - lo)) + SKIN_TONES[hi] * (tone - lo)
    colors = {
        "shirt": _hsv(rng, (0.15, 0.9), (0.3, 0.95)),
        "trousers": _hsv(rng, (0.05, 0.7), (0.12, 0.7)),
        "skin": [int(round(c)) for c in skin],
        "shoes": _hsv(rng, (0.0, 0.5), (0.05, 0.35)),
    }
    light = {"azimuth": _r(rng.uniform(-70, 70), 2), "elevation": _r(rng.uniform(10, 70), 2),
             "ambient": _r(rng.uniform(0.25, 0.45)), "diffuse": _r(rng.uniform(0.45, 0.75))}
    camera = {
        "yaw": _r(rng.uniform(-75, 75), 2),        # the body's turn away from facing the camera
        "height": _r(rng.uniform(0.8, 1.9), 3),    # camera above the floor (m)
        "target": _r(rng.uniform(-0.1, 0.1), 3),   # metres the aim point sits above the middle of the reach
        "fill": _r(rng.uniform(0.72, 0.95), 3),    # share of the frame height the body's reach spans
        "offset": _r(rng.uniform(-0.12, 0.12), 3),  # the body's place across the frame (share of the width)
        "roll": _r(rng.uniform(-4, 4), 2),
    }
    background = draw_background(rng, background_files)
    return ClipSpec(motion=motion, index=index, params=params, betas=betas, colors=colors, light=light,
                    camera=camera, background=background)
