"""Embedded default detector: the person models that ship inside mediapipe 0.10.21 (offline).

Two models are combined (see docs/mask_quality.md for the measurements behind this):

* Selfie segmentation (landscape model by default, ~5 ms/frame) gives a semantic
  mask of *everyone*; it is generous around people and misses little.
* BlazePose Full (legacy ``mp.solutions.pose`` in video mode, ~15-19 ms/frame at
  432x240) tracks ONE person and gives a tight segmentation mask plus 33 2D
  landmarks. Its mask is far more precise (IoU ~0.9 on DAVIS parkour) but it
  follows a single person and can lock onto a bystander.

Instances: the pose person is one instance (its pose mask, with keypoints); the
selfie-mask pixels of the same blob that the pose mask does not cover go to
``extra`` (removed, no instance); every other connected blob of the selfie mask
is one more instance (no keypoints: confidence 0). Blobs smaller than
``min_area`` of the frame and instances scoring below ``min_score`` also go to
``extra`` so nothing detected is ever dropped from the removal mask.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from privvid.config import DetectConfig
from privvid.detect.base import Detections
from privvid.detect.common import assemble, check_frame, components_to_instances

NUM_KEYPOINTS = 33  # BlazePose topology


class MediapipeDetector:
    name = "mediapipe"

    def __init__(self, cfg: DetectConfig | None = None) -> None:
        import mediapipe as mp  # heavy import, only when this backend is used

        self.cfg = cfg or DetectConfig()
        if self.cfg.selfie_model not in (0, 1):
            raise ValueError(f"selfie_model must be 0 or 1, got {self.cfg.selfie_model}")
        if self.cfg.pose_every < 0:
            raise ValueError(f"pose_every must be >= 0 (0 = pose model off), got {self.cfg.pose_every}")
        self._mp = mp
        self._selfie: Any = None
        self._pose: Any = None
        self._index = 0

    # -- lifecycle -----------------------------------------------------------------
    def _open(self) -> None:
        sol = self._mp.solutions
        self._selfie = sol.selfie_segmentation.SelfieSegmentation(model_selection=self.cfg.selfie_model)
        if self.cfg.pose_every:
            self._pose = sol.pose.Pose(
                static_image_mode=False,
                model_complexity=1,  # "full": the only pose landmark model bundled in the wheel
                enable_segmentation=True,
                smooth_segmentation=True,
                min_detection_confidence=0.5,
                min_tracking_confidence=0.5,
            )

    def close(self) -> None:
        for graph in (self._selfie, self._pose):
            if graph is not None:
                graph.close()
        self._selfie = self._pose = None

    def reset(self) -> None:
        """Start a new clip: drop the pose tracker's state."""
        self.close()
        self._index = 0

    # -- inference -----------------------------------------------------------------
    def _run_pose(self, frame: np.ndarray) -> tuple[np.ndarray | None, np.ndarray | None, float]:
        h, w = frame.shape[:2]
        res = self._pose.process(frame)
        if res.pose_landmarks is None:
            return None, None, 0.0
        kp = np.array(
            [(lm.x * w, lm.y * h, lm.visibility) for lm in res.pose_landmarks.landmark], dtype=np.float32
        )
        seg = res.segmentation_mask
        pmask = seg > self.cfg.pose_threshold if seg is not None else np.zeros((h, w), dtype=bool)
        score = float(np.clip(kp[:, 2], 0, 1).mean())
        return pmask, kp, score

    def __call__(self, frame: np.ndarray) -> Detections:
        frame = check_frame(frame)
        if self._selfie is None:
            self._open()
        h, w = frame.shape[:2]
        frame = np.ascontiguousarray(frame)
        prob = self._selfie.process(frame).segmentation_mask
        if prob is None:
            prob = np.zeros((h, w), dtype=np.float32)
        person = prob > self.cfg.threshold

        pmask = kp = None
        pscore = 0.0
        if self._pose is not None and self._index % self.cfg.pose_every == 0:
            pmask, kp, pscore = self._run_pose(frame)
        self._index += 1

        masks: list[np.ndarray] = []
        scores: list[float] = []
        keypoints: list[np.ndarray | None] = []
        extra = np.zeros((h, w), dtype=bool)
        rest = person
        if pmask is not None and pmask.any():
            masks.append(pmask)
            scores.append(pscore)
            keypoints.append(kp)
            # selfie blobs touching the pose person belong to it: their extra pixels are removed, no instance
            n, labels = cv2.connectedComponents((person | pmask).view(np.uint8), connectivity=8)
            touching = np.unique(labels[pmask])
            touching = touching[touching > 0]
            same = np.isin(labels, touching)
            extra |= same & ~pmask
            rest = person & ~same
        min_pixels = max(1, int(round(self.cfg.min_area * h * w)))
        comp_masks, comp_scores, leftover = components_to_instances(rest, prob, min_pixels)
        extra |= leftover
        masks += comp_masks
        scores += comp_scores
        keypoints += [None] * len(comp_masks)
        if kp is not None and (pmask is None or not pmask.any()) and comp_masks:
            # pose found a person but no mask: attach keypoints to the blob holding most of them
            xs = np.clip(kp[:, 0].astype(int), 0, w - 1)
            ys = np.clip(kp[:, 1].astype(int), 0, h - 1)
            hits = [int(m[ys, xs].sum()) for m in comp_masks]
            best = int(np.argmax(hits))
            if hits[best] > 0:
                keypoints[len(masks) - len(comp_masks) + best] = kp
        return assemble(h, w, masks, scores, keypoints, extra, self.cfg.min_score, NUM_KEYPOINTS)

    def info(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "mediapipe": getattr(self._mp, "__version__", "unknown"),
            "models": [
                "selfie_segmentation_landscape" if self.cfg.selfie_model == 1 else "selfie_segmentation",
            ]
            + (["pose_detection", "pose_landmark_full"] if self.cfg.pose_every else []),
            "threshold": self.cfg.threshold,
            "pose_threshold": self.cfg.pose_threshold,
            "pose_every": self.cfg.pose_every,
            "min_area": self.cfg.min_area,
            "min_score": self.cfg.min_score,
            "keypoints": "blazepose-33 (x, y, visibility) in pixels",
        }
