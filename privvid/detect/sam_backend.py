"""Box-prompted refinement with segment-anything (``--sam-weights PATH``).

Another registered backend (``DetectConfig.sam_base``, default ``ssd``, the
multi-person embedded default) finds the people and, where it tracks them itself,
keeps their track ids; it is built from the same DetectConfig, so ``DetectConfig.options`` are
its options. Each of its instance boxes, grown by a small margin, prompts SAM for
a sharper mask of that person. SAM's mask is clipped to the prompt box. The
base backend's pixels that SAM's masks drop stay in ``extra`` (still removed):
refinement sharpens instances, it never lets a detected person pixel through.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from privvid.config import DetectConfig
from privvid.detect.base import Detections
from privvid.detect.common import check_frame, mask_box
from privvid.errors import BackendFailure, ConfigError, MissingWeights

HINT = (
    "Download a segment-anything checkpoint (e.g. sam_vit_b_01ec64.pth) yourself and pass it with "
    "--sam-weights PATH (and --sam-model vit_b|vit_l|vit_h to match); privvid never downloads weights."
)
BOX_MARGIN = 0.08  # share of the box size added on each side of the prompt box


class SamRefinedDetector:
    name = "sam"
    user_files = True   # its checkpoint comes from a path the user gives (--sam-weights)

    @staticmethod
    def options_backend(cfg: DetectConfig) -> str:
        """The backend whose options ``cfg.options`` are: the base detector's (sam has none of its own).
        Not the ssd base's ``refine=pose``: its instances leave the selfie pixels near each person to that
        person's own margin, which SAM's masks, made afterwards, would not keep."""
        if cfg.sam_base == "ssd" and str(cfg.options.get("refine", "none")).lower() != "none":
            raise ConfigError("detector 'sam' makes each person's mask itself: the ssd option refine=pose is for "
                              "the ssd detector alone")
        return cfg.sam_base

    def __init__(self, cfg: DetectConfig | None = None, model: Any = None, base: Any = None) -> None:
        """``model`` / ``base`` inject a ready SAM module / base detector (tests)."""
        self.cfg = cfg or DetectConfig(backend="sam")
        if self.cfg.sam_base == "sam":
            raise ValueError("sam_base cannot be 'sam' itself; choose e.g. ssd or yolo")
        self.options_backend(self.cfg)   # the base options sam cannot take
        self.weights: Path | None = None
        if model is None:
            model = self._load()
        from segment_anything import SamPredictor

        self._predictor = SamPredictor(model)
        if base is None:
            from privvid.detect import DETECTORS

            base = DETECTORS.create(self.cfg.sam_base, self.cfg)
        self.base = base
        self.tracks = bool(getattr(base, "tracks", False))  # the base's own track ids pass through

    def _load(self) -> Any:
        path = self.cfg.sam_weights
        if path is None:
            raise MissingWeights("segment-anything checkpoint", None, HINT)
        path = Path(path).expanduser()
        if not path.is_file():
            raise MissingWeights("segment-anything checkpoint", path, HINT)
        self.weights = path
        from privvid.io.model_files import sniff

        if sniff(path, by_suffix=False) != "pickle":   # torch's own error would advise loading the file unsafely
            raise BackendFailure(f"{path} is not a PyTorch checkpoint (neither a zip archive nor a pickle); "
                                 f"--sam-weights takes a segment-anything {self.cfg.sam_model} checkpoint")
        from segment_anything import sam_model_registry

        # DetectConfig has checked sam_model against SAM_MODELS, all of which the registry has
        try:
            if self.cfg.trust_model_files:
                model = sam_model_registry[self.cfg.sam_model](checkpoint=str(path))
            else:
                # segment-anything's own loader unpickles the file; a state dict of tensors loads with
                # torch's weights_only reader, which runs no code
                import torch

                model = sam_model_registry[self.cfg.sam_model](checkpoint=None)
                model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        except Exception as exc:
            detail = " ".join(str(exc).split())[:300]
            raise BackendFailure(f"cannot load SAM {self.cfg.sam_model} checkpoint {path} (not a {self.cfg.sam_model} "
                                 f"checkpoint, or truncated?): {type(exc).__name__}: {detail}") from exc
        return model.eval()

    def reset(self) -> None:
        self.base.reset()

    def refine(self, frame: np.ndarray, dets: Detections) -> Detections:
        """SAM masks for ``dets``'s boxes (the logic, separate from the base detector)."""
        import torch

        h, w = frame.shape[:2]
        if len(dets) == 0:
            return dets
        boxes = dets.boxes.astype(np.float32).copy()
        bw = boxes[:, 2] - boxes[:, 0]
        bh = boxes[:, 3] - boxes[:, 1]
        boxes[:, 0] -= BOX_MARGIN * bw
        boxes[:, 2] += BOX_MARGIN * bw
        boxes[:, 1] -= BOX_MARGIN * bh
        boxes[:, 3] += BOX_MARGIN * bh
        boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, w)
        boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, h)
        self._predictor.set_image(frame, image_format="RGB")
        prompt = self._predictor.transform.apply_boxes_torch(
            torch.as_tensor(boxes, dtype=torch.float32, device=self._predictor.device), (h, w)
        )
        with torch.inference_mode():
            masks, _, _ = self._predictor.predict_torch(
                point_coords=None, point_labels=None, boxes=prompt, multimask_output=False
            )
        sam = masks[:, 0].cpu().numpy().astype(bool)
        if sam.shape != (len(dets), h, w):
            raise BackendFailure(f"SAM returned masks of shape {sam.shape}, expected {(len(dets), h, w)}")
        refined = np.zeros_like(dets.masks)
        for i, (x0, y0, x1, y1) in enumerate(np.round(boxes).astype(int)):
            inside = np.zeros((h, w), dtype=bool)
            inside[y0:y1, x0:x1] = True
            m = sam[i] & inside
            refined[i] = m if m.any() else dets.masks[i]  # SAM found nothing: keep the base mask
        dropped = dets.union() & ~refined.any(axis=0)
        extra = dropped if dets.extra is None else (dets.extra | dropped)
        return Detections(
            masks=refined,
            boxes=np.stack([mask_box(m) for m in refined]).astype(np.float32),
            scores=dets.scores.copy(),
            track_ids=dets.track_ids.copy(),
            keypoints=None if dets.keypoints is None else dets.keypoints.copy(),
            world_keypoints=None if dets.world_keypoints is None else dets.world_keypoints.copy(),
            extra=extra,
        )

    def __call__(self, frame: np.ndarray) -> Detections:
        frame = check_frame(frame)
        return self.refine(frame, self.base(frame))

    def info(self) -> dict[str, Any]:
        import segment_anything

        from privvid.io.model_files import recorded_path

        return {
            "name": self.name,
            "segment_anything": getattr(segment_anything, "__version__", "1.0"),
            "sam_model": self.cfg.sam_model,
            "sam_weights": None if self.weights is None else recorded_path(self.weights),
            "box_margin": BOX_MARGIN,
            "base": self.base.info(),
        }
