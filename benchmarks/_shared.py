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


def size_arg(text: str) -> tuple[int, int] | None:
    """A benchmark's ``--size``: ``WxH``, or ``native`` (None: each clip at its own size)."""
    from privvid.config import parse_size

    return None if text == "native" else parse_size(text)


def fill_settings() -> dict:
    """Settings of the fill that ``anonymize_speed.py`` and ``privacy_audit.py`` run beside the default, by name:
    ``{name: (label, InpaintConfig)}`` with the default detector."""
    from privvid.config import InpaintConfig

    return {"ssd-fill-full": ("ssd, holes filled at the frame's own size (inpaint work_lines=0: the rule until "
                              "2026-12-07)", InpaintConfig(work_lines=0))}


def compared_settings() -> dict:
    """The detect settings several benchmarks run beside the default, by name: ``{name: (label, DetectConfig)}``
    (earlier defaults, so that a table shows what a change did)."""
    from privvid.config import MEDIAPIPE_AS_MEASURED, SCENE_DETECT, DetectConfig

    return {
        "ssd-upright": ("ssd turn=false (upright pass only: the default until 2026-12-02)",
                        DetectConfig(options={"turn": False})),
        "ssd-union": ("ssd temporal_align=none (neighbour masks where they lie, fully grown: the default "
                      "until 2026-12-05)", DetectConfig(temporal_align="none")),
        "ssd-vote2": ("ssd temporal_vote=2 (a neighbour pixel by a found person where two neighbours hold it, or in "
                      "a thick piece: opt-in)", DetectConfig(temporal_vote=2)),
        "ssd-tiles2x1": ("ssd tiles=2x1 (two tiles side by side every 2nd frame instead of 2x2)",
                         DetectConfig(options={"tiles": "2x1"})),
        "ssd-tiles3x1": ("ssd tiles=3x1 (three tiles side by side every 2nd frame instead of 2x2)",
                         DetectConfig(options={"tiles": "3x1"})),
        "ssd-idle0": ("ssd tile_idle=0 (tiles on every 2nd frame whatever they find: the default until 2026-12-06)",
                      DetectConfig(options={"tile_idle": 0})),
        # (the pose model's one-person instances for the large people / the selfie model's instances)
        "ssd-refine": ("ssd refine=pose (mesh mode's default)", DetectConfig(options={"refine": "pose"})),
        "ssd-raw-region": ("ssd refine=pose refine_steady=false (the followed region from the raw alignment points: "
                           "mesh mode's until 2026-12-06)", DetectConfig(options={"refine": "pose", "refine_steady": False})),
        "ssd-scene": ("ssd, the scene preset (refine=pose, temporal_vote=2, temporal_sliver=0.2, dilate_rel=0.06, "
                      "dilate_min_frame=0.025)", SCENE_DETECT),
        "ssd-full": ("ssd work_lines=0 (detection at the frame's own size above 720 lines: the rule until "
                     "2026-12-06)", DetectConfig(work_lines=0)),
        "ssd-work480": ("ssd work_lines=480 (detection at 480 lines, the size DAVIS is measured at)",
                        DetectConfig(work_lines=480)),
        "ssd-selfie": ("ssd refine=none (remove mode's default; mesh mode's until 2026-12-06)",
                       DetectConfig(options={"refine": "none"})),
        "mediapipe": ("mediapipe (previous default)", DetectConfig(backend="mediapipe", **MEDIAPIPE_AS_MEASURED)),
    }
