"""User-weights detector: an Ultralytics segmentation model (``--weights PATH``).

Works with exported files (.onnx, .tflite) and, with trust_model_files, a ``.pt`` checkpoint. Exports that
carry no Ultralytics metadata (e.g. onnx2tf int8 ``.tflite`` files) load with
task unknown and 999 placeholder class names; for those the backend tells the
inference backend it is a segmentation model and uses the COCO names shipped
inside ultralytics (person = class 0).
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from privvid.config import DetectConfig
from privvid.detect.base import Detections
from privvid.detect.common import assemble, check_frame, crop_person_pixels, options_from
from privvid.errors import BackendFailure, ConfigError

HINT = (
    "Pass an Ultralytics segmentation model exported to .tflite or .onnx with --weights PATH (e.g. "
    "`yolo export model=yolo11n-seg.pt format=tflite` where ultralytics can download, then copy the file "
    "here); a .pt checkpoint is a pickle and loads only with --trust-model-files. privvid never downloads "
    "weights."
)


def _config_dir() -> str:
    path = Path(tempfile.gettempdir()) / "privvid-ultralytics"
    path.mkdir(parents=True, exist_ok=True)
    return str(path)


@dataclass(frozen=True)
class YoloOptions:
    """Options of the ``yolo`` detector (``--detect-opt name=value``)."""

    refine: bool = True          # also segment each YOLO box's square crop with the embedded selfie model and
                                 # add its person pixels (inside the box grown by ``box_grow``) to the instance:
                                 # YOLO's masks come from a 160 x 160 prototype and miss hands, feet and hair
    crop_scale: float = 1.4      # square crop side / the box's longer edge
    mask_threshold: float = 0.3  # selfie probability for a person pixel
    box_grow: float = 0.1        # selfie pixels count inside the box grown by this share per side
    threads: int = 1             # selfie interpreter threads

    def __post_init__(self) -> None:
        if self.crop_scale < 1.0:
            raise ConfigError(f"yolo detector option crop_scale must be >= 1, got {self.crop_scale}")
        if not 0.0 < self.mask_threshold < 1.0:
            raise ConfigError(f"yolo detector option mask_threshold must be in (0, 1), got {self.mask_threshold}")
        if not 0.0 <= self.box_grow <= 1.0:
            raise ConfigError(f"yolo detector option box_grow must be in [0, 1], got {self.box_grow}")
        if self.threads < 1:
            raise ConfigError(f"yolo detector option threads must be >= 1, got {self.threads}")


class YoloDetector:
    name = "yolo"
    Options = YoloOptions
    user_files = True   # its model comes from a path the user gives (--weights)

    def __init__(self, cfg: DetectConfig | None = None) -> None:
        self.cfg = cfg or DetectConfig()
        self.opts = options_from(YoloOptions, self.cfg.options)
        from privvid.io.model_files import check_model_file

        weights = check_model_file(self.cfg.weights, "YOLO segmentation weights", HINT,
                                   trust=self.cfg.trust_model_files, allowed=("tflite", "onnx"))
        self.weights = weights
        if weights.suffix.lower() == ".onnx":
            import importlib.util

            if importlib.util.find_spec("onnxruntime") is None:   # ultralytics would try to pip-install it
                raise ConfigError(f"{weights} is an ONNX export, which runs in onnxruntime, and onnxruntime is not "
                                  "installed: `pip install onnxruntime`, or pass the .tflite export")
        # ultralytics writes settings under ~/.config unless told otherwise
        os.environ.setdefault("YOLO_CONFIG_DIR", _config_dir())
        os.environ.setdefault("YOLO_OFFLINE", "1")
        import ultralytics
        from ultralytics import YOLO

        self._version = ultralytics.__version__
        try:
            self._model = YOLO(str(weights), task="segment")
        except Exception as exc:  # corrupt or foreign file
            raise BackendFailure(f"cannot load YOLO weights {weights}: {exc}") from exc
        if self._model.task != "segment":
            raise BackendFailure(
                f"{weights} is a YOLO {self._model.task!r} model; the yolo detector needs a segmentation (-seg) model"
            )
        self._predictor = self._setup_predictor()
        names = self._predictor.model.names
        persons = [k for k, v in names.items() if str(v).lower() == "person"]
        self.person_class = persons[0] if persons else 0
        self._seg = None
        if self.opts.refine:
            from privvid.detect.litert_models import SelfieCrops
            from privvid.runtime.models import SELFIE, wheel_model_path

            self._seg = SelfieCrops(wheel_model_path(SELFIE), threads=self.opts.threads)
        self.refined_px = 0

    def _setup_predictor(self) -> Any:
        from ultralytics.utils import ROOT, YAML

        args = {
            **self._model.overrides,
            "conf": float(self.cfg.min_score),
            "iou": 0.7,
            "imgsz": int(self.cfg.imgsz),
            "batch": 1,
            "save": False,
            "mode": "predict",
            "rect": True,
            "verbose": False,
            "retina_masks": True,  # masks at the frame's resolution
        }
        predictor = self._model._smart_load("predictor")(overrides=args)
        predictor.setup_model(model=self._model.model, verbose=False)
        backend = getattr(predictor.model, "backend", None)
        if backend is not None:
            meta_task = (getattr(backend, "metadata", None) or {}).get("task")
            if meta_task not in (None, "segment"):
                raise BackendFailure(
                    f"{self.weights} is a YOLO {meta_task!r} model; the yolo detector needs a segmentation (-seg) model"
                )
            if getattr(backend, "task", None) is None:
                backend.task = "segment"
            names = backend.names or {}
            if len(names) == 999 or all(str(v) == f"class{k}" for k, v in names.items()):
                backend.names = dict(YAML.load(ROOT / "cfg/datasets/coco.yaml")["names"])
        return predictor

    def reset(self) -> None:
        """Stateless per frame: only the clip's count of refined pixels starts again."""
        self.refined_px = 0

    def __call__(self, frame: np.ndarray) -> Detections:
        frame = check_frame(frame)
        h, w = frame.shape[:2]
        self._predictor.args.classes = [self.person_class]
        result = self._predictor(source=np.ascontiguousarray(frame[:, :, ::-1]))[0]  # ultralytics wants BGR
        boxes = result.boxes
        if boxes is None or len(boxes) == 0 or result.masks is None:
            return Detections.empty(h, w)
        masks = result.masks.data.cpu().numpy() > 0.5
        if masks.shape[1:] != (h, w):
            import cv2

            masks = np.stack([cv2.resize(m.view(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST) > 0 for m in masks])
        scores = boxes.conf.cpu().numpy().astype(np.float32)
        if self._seg is not None:
            masks = self._refined(frame, masks, boxes.xyxy.cpu().numpy().astype(np.float32))
        # boxes are recomputed from the masks (tight, same convention as the other backends)
        return assemble(h, w, list(masks), [float(s) for s in scores], None, None, min_score=0.0)

    def _refined(self, frame: np.ndarray, masks: np.ndarray, xyxy: np.ndarray) -> np.ndarray:
        """Each YOLO mask united with the selfie model's person pixels on its box's square crop."""
        from privvid.detect.litert_models import square_crop

        assert self._seg is not None
        h, w = frame.shape[:2]
        o = self.opts
        crops = [square_crop(box, o.crop_scale, w, h) for box in xyxy]
        out = masks.copy()
        for k, (crop, prob) in enumerate(zip(crops, self._seg(frame, crops))):
            found = crop_person_pixels(prob, crop, xyxy[k], o.box_grow, o.mask_threshold, w, h)
            if found is None:
                continue
            x0, y0, add = found
            region = out[k, y0:y0 + add.shape[0], x0:x0 + add.shape[1]]
            self.refined_px += int((add & ~region).sum())
            region |= add
        return out

    def info(self) -> dict[str, Any]:
        from privvid.io.model_files import recorded_path

        return {
            "name": self.name,
            "ultralytics": self._version,
            "weights": recorded_path(self.weights),
            "weights_bytes": self.weights.stat().st_size,
            "imgsz": self.cfg.imgsz,
            "conf": self.cfg.min_score,
            "person_class": self.person_class,
            "options": asdict(self.opts),
            "refined_px": self.refined_px,
        }

