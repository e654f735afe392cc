"""Synthetic action clips: the embedded mannequin body performing parametric motions.

- :mod:`privvid.synth.motions`: the motion table (phase + parameters -> SMPL-X poses);
- :mod:`privvid.synth.spec`: what is random about one clip, drawn from (seed, motion, index);
- :mod:`privvid.synth.backgrounds`: procedural backgrounds, or crops of a folder's images and videos;
- :mod:`privvid.synth.render`: smplx + privvid's mesh renderer -> frames;
- :mod:`privvid.synth.dataset`: the output folder (clips, lists, ``synth.json``), resume, refusal.
"""

from privvid.config import parse_size  # the sizes of every command; -2 sides fail SynthSettings.validate
from privvid.synth.dataset import SynthSettings, SynthSummary, synthesize
from privvid.synth.motions import MOTION_NAMES, MOTIONS, MotionParams, pose_clip

__all__ = ["MOTIONS", "MOTION_NAMES", "MotionParams", "SynthSettings", "SynthSummary", "parse_size", "pose_clip",
           "synthesize"]
