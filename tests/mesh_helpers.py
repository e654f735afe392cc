"""Driving the mesh stage the way the pipeline does: one call per window of frames."""

from __future__ import annotations

import numpy as np


def run_windows(stage, frames, dets, background, masks, window=12):
    """``stage`` over consecutive windows of ``window`` frames -> (rendered frames, per-frame infos)."""
    outs, infos = [], []
    for s in range(0, len(frames), window):
        o, i = stage(frames[s:s + window], dets[s:s + window], background[s:s + window], masks[s:s + window])
        outs.append(o)
        infos += i
    return np.concatenate(outs), infos
