"""Cheap global camera-motion estimate between two frames, from background features only.

Corners are found on the unmasked part of the first frame at reduced resolution,
tracked into the second frame with pyramidal Lucas-Kanade, and a homography is fit
with RANSAC. When the tracked background barely moves the pair is called static and
the identity is returned, so a fixed camera gets exact pixel copies (no resampling).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

IDENTITY = np.eye(3, dtype=np.float64)


@dataclass(frozen=True)
class Motion:
    matrix: np.ndarray   # 3x3, maps pixel coordinates of frame a to frame b (full resolution)
    static: bool         # background shift below the threshold: matrix is the identity
    shift: float         # median feature displacement in full-resolution px (0 when unknown)
    points: int          # tracked background features the estimate rests on


def to_gray(frame: np.ndarray, scale: float) -> np.ndarray:
    gray = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
    if scale != 1.0:
        h, w = gray.shape
        gray = cv2.resize(gray, (max(int(round(w * scale)), 8), max(int(round(h * scale)), 8)),
                          interpolation=cv2.INTER_AREA)
    return gray


def small_valid(mask: np.ndarray, shape: tuple[int, int], margin: int) -> np.ndarray:
    """uint8 255 where the (downscaled) pixel is background, away from the mask by ``margin``."""
    m = mask.astype(np.uint8)
    if m.shape != shape:
        m = cv2.resize(m, (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST)
    if margin > 0:
        m = cv2.dilate(m, np.ones((2 * margin + 1, 2 * margin + 1), np.uint8))
    return np.where(m > 0, 0, 255).astype(np.uint8)


def estimate(gray_a: np.ndarray, gray_b: np.ndarray, valid_a: np.ndarray, valid_b: np.ndarray,
             scale: float, static_px: float, max_corners: int = 150,
             fine: tuple[np.ndarray, np.ndarray] | None = None) -> Motion:
    """Motion from frame a to frame b given their downscaled grays and background masks.

    ``fine``: the two full-resolution grays; when the camera moves, the tracked points are
    refined there (one pyramid level, starting from the coarse result) before the fit.
    """
    pts = cv2.goodFeaturesToTrack(gray_a, maxCorners=max_corners, qualityLevel=0.01, minDistance=5,
                                  mask=valid_a, blockSize=5)
    if pts is None or len(pts) < 8:
        # too little texture to tell: a flat background looks the same either way
        return Motion(IDENTITY, True, 0.0, 0 if pts is None else len(pts))
    nxt, status, _err = cv2.calcOpticalFlowPyrLK(gray_a, gray_b, pts, None, winSize=(11, 11), maxLevel=3,
                                                criteria=(cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 20, 0.03))
    ok = status.ravel() == 1
    p0, p1 = pts.reshape(-1, 2)[ok], nxt.reshape(-1, 2)[ok]
    h, w = valid_b.shape
    inside = (p1[:, 0] >= 0) & (p1[:, 0] < w) & (p1[:, 1] >= 0) & (p1[:, 1] < h)
    p0, p1 = p0[inside], p1[inside]
    on_bg = valid_b[p1[:, 1].astype(int), p1[:, 0].astype(int)] > 0
    p0, p1 = p0[on_bg], p1[on_bg]
    if len(p0) < 8:
        return Motion(IDENTITY, True, 0.0, len(p0))
    disp = np.linalg.norm(p1 - p0, axis=1) / scale
    shift = float(np.median(disp))
    if shift < static_px and float(np.percentile(disp, 80)) < 2 * static_px:
        return Motion(IDENTITY, True, shift, len(p0))
    s = np.diag([scale, scale, 1.0])
    if fine is not None and scale != 1.0:
        f0 = (p0 / scale).astype(np.float32).reshape(-1, 1, 2)
        f1 = (p1 / scale).astype(np.float32).reshape(-1, 1, 2)
        r1, st, _ = cv2.calcOpticalFlowPyrLK(fine[0], fine[1], f0, f1.copy(), winSize=(11, 11), maxLevel=0,
                                             flags=cv2.OPTFLOW_USE_INITIAL_FLOW,
                                             criteria=(cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 10, 0.03))
        good = st.ravel() == 1
        if good.sum() >= 8:
            # fit in full-resolution coordinates: express them at "scale" so the code below is shared
            p0, p1 = f0.reshape(-1, 2)[good] * scale, r1.reshape(-1, 2)[good] * scale
    cv2.setRNGSeed(0)  # RANSAC draws from OpenCV's RNG: seed it so the same clip gives the same output
    hom, inl = cv2.findHomography(p0, p1, cv2.RANSAC, 1.5)
    if hom is None or inl is None or int(inl.sum()) < max(8, len(p0) // 4):
        cv2.setRNGSeed(0)
        aff, inl = cv2.estimateAffinePartial2D(p0, p1, method=cv2.RANSAC, ransacReprojThreshold=1.5)
        if aff is None:
            t = np.median(p1 - p0, axis=0)
            aff = np.array([[1, 0, t[0]], [0, 1, t[1]]], dtype=np.float64)
        hom = np.vstack([aff, [0, 0, 1]])
    full = np.linalg.inv(s) @ hom @ s
    return Motion(full / full[2, 2], False, shift, len(p0))
