"""The written-frame check: look at every composed frame again before it is encoded.

A second, independent look with cheap models (the SSD person detector on the whole frame and
the BlazeFace face detector) at the frame as it will be written. A person or face it finds

* inside the filled region (at least ``filled_share`` of its grown box removed: a person pasted back,
  or a smear that still reads as a person), at ``filled_score`` or more, or
* anywhere, outside every removal mask too (a person the detector missed), at ``person_score``

is masked (its box, grown by ``grow``) and filled again spatially. A person found in the filled region
whose box covers more than ``filled_whole`` of the frame (in a close-up, the smeared fill of a large hole
reads as one person as big as the frame) is refilled only over the removed pixels of that box and the
kept ones within ``filled_margin`` of its height of them: refilling the whole box painted the whole frame
from its border (the coffee clip lost the table and the wall around the pourer). A person-sized box is
refilled whole: the parts of a person beyond the mask (the tai chi man's shoes) would otherwise feed the
refill their colours. If the check still finds a person there at ``person_score`` (or a face), the box
is painted solid. A weak finding after the spatial refill is not enough: that fill paints the box from
its border and cannot bring a person back, and a person who stands on one spot leaves a hole whose
smeared fill keeps a person's outline (the tai chi clip had a grey box on 49 of its first 200 frames in
remove mode before this rule, docs/privacy.md). What was found and done is returned per frame for the
sidecar (``check`` section), which ``qa audit`` reads. In mesh mode the inpainted frame is checked
before the body is drawn, so the mannequin is never taken for a person.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from privvid.config import FILL_MODES
from privvid.errors import ConfigError

SAME_PLACE = 0.3   # box IoU at which a finding after the refill is the one refilled there


@dataclass(frozen=True)
class CheckConfig:
    enabled: bool | None = None   # None: on for remove and mesh, off for blur / pixelate / solid
    person_score: float = 0.5     # SSD person score that counts as a person anywhere in a written frame
    filled_score: float = 0.2     # ... and inside the filled region (where a pasted-back person would be)
    filled_share: float = 0.3     # a finding is in the filled region when this share of its grown box was removed
    face_score: float = 0.75      # BlazeFace score that counts as a face (0 = no face check)
    grow: float = 0.1             # a finding's box grows by this share per side before it is filled
    filled_whole: float = 0.4     # a finding in the filled region whose box covers more than this share of the
                                  # frame refills only the removed pixels in its box ... (1 = always the whole box)
    filled_margin: float = 0.1    # ... and the kept ones within this share of the box's height of them
    solid_color: tuple[int, int, int] = (128, 128, 128)

    def __post_init__(self) -> None:
        if not 0.0 < self.person_score < 1.0 or not 0.0 < self.filled_score < 1.0:
            raise ConfigError(f"check person_score and filled_score must be in (0, 1), got {self.person_score}, "
                              f"{self.filled_score}")
        if not 0.0 < self.filled_share <= 1.0:
            raise ConfigError(f"check filled_share must be in (0, 1] (share of the finding's box), "
                              f"got {self.filled_share}")
        if not 0.0 <= self.face_score < 1.0:
            raise ConfigError(f"check face_score must be in [0, 1), got {self.face_score}")
        if not 0.0 <= self.grow <= 1.0:
            raise ConfigError(f"check grow must be in [0, 1], got {self.grow}")
        if not 0.0 <= self.filled_whole <= 1.0:
            raise ConfigError(f"check filled_whole must be in [0, 1] (share of the frame), got {self.filled_whole}")
        if not 0.0 <= self.filled_margin <= 1.0:
            raise ConfigError(f"check filled_margin must be in [0, 1] (share of the box's height), "
                              f"got {self.filled_margin}")

    def active(self, mode: str) -> bool:
        return self.enabled if self.enabled is not None else mode in FILL_MODES


class FrameCheck:
    def __init__(self, cfg: CheckConfig, radius: int = 5, method: str = "telea", scale: float = 1.0) -> None:
        from privvid.detect.litert_models import Faces, SsdPersons
        from privvid.runtime.models import FACE, SSD_PERSON, npm_model_path, wheel_model_path

        self.cfg = cfg
        self.radius, self.method, self.scale = radius, method, scale   # scale: of the spatial refill (< 1: cheaper)
        self._persons = SsdPersons(npm_model_path(SSD_PERSON))
        self._faces = Faces(wheel_model_path(FACE)) if cfg.face_score > 0 else None
        self.reset()

    def reset(self) -> None:
        self.totals = {"frames": 0, "frames_flagged": 0, "refilled": 0, "solid": 0, "persons": 0, "faces": 0}
        self.seconds = 0.0

    def _find(self, frame: np.ndarray, floor: float | None = None) -> list[tuple[str, float, np.ndarray]]:
        """Persons at ``floor`` or more (default: the lower of the two person scores) and faces."""
        from privvid.detect.litert_models import nms

        found = []
        if floor is None:
            floor = min(self.cfg.person_score, self.cfg.filled_score)
        boxes, scores = self._persons(frame, floor)
        for i in nms(boxes, scores, 0.5):
            found.append(("person", float(scores[i]), boxes[i]))
        if self._faces is not None:
            boxes, scores = self._faces(frame, self.cfg.face_score)
            found += [("face", float(s), b) for b, s in zip(boxes, scores)]
        return found

    def __call__(self, frames: np.ndarray, masks: np.ndarray) -> list[dict[str, Any]]:
        """Check (and mend, in place) ``frames`` (N, H, W, 3) with their removal ``masks`` (N, H, W);
        the pixels it fills are added to ``masks``. Returns one record per frame."""
        import time

        from privvid.detect.common import grow_box
        from privvid.inpaint.classical import spatial_fill

        started = time.perf_counter()
        records: list[dict[str, Any]] = []
        for frame, mask in zip(frames, masks):
            self.totals["frames"] += 1
            found = self._find(frame)
            if not found:
                records.append({})
                continue
            shape = mask.shape
            items: list[dict[str, Any]] = []
            region = np.zeros(shape, bool)
            for kind, score, box in found:
                x0, y0, x1, y1 = grow_box(box, self.cfg.grow, shape[1], shape[0])
                if x1 <= x0 or y1 <= y0:
                    continue
                filled = float(mask[y0:y1, x0:x1].mean()) >= self.cfg.filled_share
                if kind == "person" and score < self.cfg.person_score and not filled:
                    continue  # a weak finding counts only where a person was removed
                hole = kind == "person" and filled and (x1 - x0) * (y1 - y0) > self.cfg.filled_whole * mask.size
                items.append({"kind": kind, "score": round(score, 3), "box": [x0, y0, x1, y1],
                              "where": "filled" if filled else "unmasked", "refill": "hole" if hole else "box"})
                if hole:   # a frame-sized box: the removed pixels and the margin around them
                    region[y0:y1, x0:x1] |= self._near(mask, (x0, y0, x1, y1))
                else:
                    region[y0:y1, x0:x1] = True
                self.totals["persons" if kind == "person" else "faces"] += 1
            if not items:
                records.append({})
                continue
            self.totals["frames_flagged"] += 1
            spatial_fill(frame, region, self.radius, self.method, self.scale)
            mask |= region
            # the refill is spatial: it paints the box from its border and cannot bring a person back, so
            # a weak finding there now is the shape of the fill (a static person's hole, smeared), not a
            # person; only a confident person or a face after the refill makes the box solid
            again = [b for _, _, b in self._find(frame, self.cfg.person_score)]
            action = "refilled"
            if again:
                from privvid.detect.common import box_iou

                hit = box_iou(np.asarray([it["box"] for it in items], np.float64), np.asarray(again, np.float64))
                still = [it for it, row in zip(items, hit) if (row > SAME_PLACE).any()]
                for it in still:
                    x0, y0, x1, y1 = it["box"]
                    frame[y0:y1, x0:x1] = self.cfg.solid_color
                if still:
                    action = "solid"
            self.totals["solid" if action == "solid" else "refilled"] += 1
            records.append({"found": items, "action": action})
        self.seconds += time.perf_counter() - started
        return records

    def _near(self, mask: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
        """The box's part of ``mask`` grown by ``filled_margin`` of the box's height (the pixels a fill
        could have put a person in, and a person's parts right by the hole that the mask missed)."""
        from privvid.detect.common import dilate

        x0, y0, x1, y1 = box
        r = int(round(self.cfg.filled_margin * (y1 - y0)))
        h, w = mask.shape
        ys, xs = slice(max(y0 - r, 0), min(y1 + r, h)), slice(max(x0 - r, 0), min(x1 + r, w))
        grown = dilate(mask[ys, xs], 2 * r + 1)   # (a margin around the box, so the hole just outside counts)
        return grown[y0 - ys.start:y1 - ys.start, x0 - xs.start:x1 - xs.start]

    def info(self) -> dict[str, Any]:
        # a check that exists runs (the composer makes one only where it is on): its record says so, not the
        # setting's None ("on for remove and mesh")
        return {"name": "ssd+blazeface", **asdict(self.cfg), "enabled": True, "totals": dict(self.totals)}
