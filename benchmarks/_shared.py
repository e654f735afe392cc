"""Where the benchmarks find the shared real videos and weights: ``$PRIVVID_SHARED`` (as for the
tests), else ``../shared`` beside the checkout. Imported by the scripts in this folder, which run as
``python benchmarks/NAME.py`` (so this folder is on ``sys.path``)."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("PRIVVID_SHARED", REPO.parent / "shared"))
DATA = SHARED / "data"
WEIGHTS = SHARED / "weights"
DEMO = DATA / "demo-clips"
YOLO_SEG = WEIGHTS / "yolov8n-seg_full_integer_quant.tflite"
