"""How well fitted bodies follow the person: per keypoint group reprojection and silhouette overlap.

The reprojection here is measured on the body that is actually rendered: the SMPL-X joints that
``smplx.SMPLX`` returns for the fitted parameters (``record["joints"]``), projected with the
stage's camera and compared with the BlazePose landmark of the same joint. The fitter's own
number (``err_rel``) averages all landmarks it uses, face points included, which hides a wrong
arm behind a dozen well-fitted head and foot points; these groups do not.
"""

from __future__ import annotations

from typing import Any

import numpy as np

# group -> (BlazePose landmark ids, SMPL-X joint ids), same order
GROUPS: dict[str, tuple[list[int], list[int]]] = {
    "arms": ([13, 14, 15, 16], [18, 19, 20, 21]),          # elbows, wrists
    "torso": ([11, 12, 23, 24], [16, 17, 1, 2]),           # shoulders, hips
    "legs": ([25, 26, 27, 28], [4, 5, 7, 8]),              # knees, ankles
}
VISIBLE = 0.5  # BlazePose visibility above which a landmark counts as seen


def project(points: np.ndarray, camera: dict[str, float]) -> np.ndarray:
    """(..., 3) camera-frame points (OpenCV axes) -> (..., 2) pixels."""
    z = np.clip(points[..., 2], 1e-3, None)
    return np.stack([camera["focal"] * points[..., 0] / z + camera["cx"],
                     camera["focal"] * points[..., 1] / z + camera["cy"]], -1)


def group_errors(records: list[dict[str, Any]], camera: dict[str, float], visible: float = VISIBLE
                 ) -> dict[str, np.ndarray]:
    """Per group, the distances (pixels / person box height) between projected fitted joints and the
    visible BlazePose landmarks, one entry per (record, landmark). Records need ``joints`` (55, 3),
    ``image`` (33, 3) and ``box_h``."""
    out: dict[str, list[float]] = {g: [] for g in GROUPS}
    for r in records:
        if r.get("joints") is None:
            continue
        uv = project(np.asarray(r["joints"], np.float64), camera)
        img = np.asarray(r["image"], np.float64)
        h = max(float(r["box_h"]), 1.0)
        for g, (lms, js) in GROUPS.items():
            for lm, j in zip(lms, js):
                if img[lm, 2] >= visible:
                    out[g].append(float(np.linalg.norm(uv[j] - img[lm, :2]) / h))
    return {g: np.asarray(v) for g, v in out.items()}


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else float("nan")
