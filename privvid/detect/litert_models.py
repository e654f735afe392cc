"""The embedded default's TFLite models, run with ai-edge-litert (no TensorFlow, no mediapipe graph).

* :class:`SsdPersons` - the SSD MobileNetV2 (Open Images v4) detector of npm ``@mediapipe/objectron``:
  person boxes for everyone in a frame (multi-person, unlike the selfie / pose models);
* :class:`SelfieCrops` - mediapipe's square selfie segmentation run on square crops around boxes,
  batched; small crops share one model input as cells of a 2 x 2 mosaic;
* :class:`PoseCrops` - BlazePose GHUM full (mediapipe wheel) on one person's square crop: the mask of
  the person the crop is centred on (not of everyone in it, as the selfie model gives), and how sure
  the model is that a person is there;
* :class:`Faces` - BlazeFace short range (mediapipe wheel), for the written-frame check.

All of them take RGB uint8 frames and return pixel coordinates of the frame they were given.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

import cv2
import numpy as np

from privvid.runtime.native_log import quiet_native_logs

PERSON_CLASS = 4  # index of "Person" in the objectron SSD's Open Images label map


def _sigmoid(logits: np.ndarray, limit: float) -> np.ndarray:
    """The logistic function of ``logits`` clipped to +-``limit`` (no overflow in exp)."""
    return 1.0 / (1.0 + np.exp(-np.clip(logits, -limit, limit)))


def _interpreter(path: Path, threads: int = 1) -> Any:
    from ai_edge_litert.interpreter import Interpreter

    with quiet_native_logs():
        it = Interpreter(model_path=str(path), num_threads=threads)
        it.allocate_tensors()
    return it


def ssd_anchors() -> np.ndarray:
    """(1917, 4) cy, cx, h, w anchors of the TF Object Detection API's default SSD anchor generator
    (6 layers of 19/10/5/3/2/1 cells, scales 0.2..0.95, aspect ratios 1, 2, 1/2, 3, 1/3 plus one
    in-between 1:1 anchor; the lowest layer only (0.1, 1), (0.2, 2), (0.2, 1/2))."""
    cells = [19, 10, 5, 3, 2, 1]
    n = len(cells)
    scales = [0.2 + (0.95 - 0.2) * i / (n - 1) for i in range(n)] + [1.0]
    out = []
    for i, f in enumerate(cells):
        if i == 0:
            specs = [(0.1, 1.0), (0.2, 2.0), (0.2, 0.5)]
        else:
            specs = [(scales[i], a) for a in (1.0, 2.0, 0.5, 3.0, 1.0 / 3.0)]
            specs.append((float(np.sqrt(scales[i] * scales[i + 1])), 1.0))
        for y in range(f):
            for x in range(f):
                for s, a in specs:
                    out.append(((y + 0.5) / f, (x + 0.5) / f, s / np.sqrt(a), s * np.sqrt(a)))
    return np.asarray(out, np.float32)


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float, contain: float = 1.01,
        part: float = 0.25) -> np.ndarray:
    """Indices kept by greedy non-maximum suppression, best first. A box is also suppressed when
    more than ``contain`` of it lies inside a better box whose area is at most 1 / ``part`` times
    its own (a sizeable piece of that person, e.g. an upper body found on a tile); a small box
    inside a large one (one person inside a box around a whole group) is kept."""
    from privvid.detect.common import box_iou

    order = np.argsort(-scores, kind="stable")
    keep: list[int] = []
    if len(order) == 0:
        return np.zeros(0, np.int64)
    ious = box_iou(boxes, boxes)
    area = (boxes[:, 2] - boxes[:, 0]).clip(0) * (boxes[:, 3] - boxes[:, 1]).clip(0)
    for i in order:
        ok = True
        for j in keep:
            if ious[i, j] > iou:
                ok = False
                break
            if contain <= 1.0:
                ix = max(0.0, min(boxes[i, 2], boxes[j, 2]) - max(boxes[i, 0], boxes[j, 0]))
                iy = max(0.0, min(boxes[i, 3], boxes[j, 3]) - max(boxes[i, 1], boxes[j, 1]))
                if ix * iy > contain * max(area[i], 1e-6) and area[i] >= part * area[j]:
                    ok = False
                    break
        if ok:
            keep.append(int(i))
    return np.asarray(keep, np.int64)


def merge_parts(boxes: np.ndarray, scores: np.ndarray, contain: float, part: float = 0.25
                ) -> tuple[np.ndarray, np.ndarray]:
    """Merge boxes that are pieces of one person: when more than ``contain`` of one box lies inside
    another at most 1 / ``part`` times its size (an upper body, legs, a tile's cut of a person),
    both become their union box with the higher score. Small boxes inside a large one (people inside
    a box around a group) are left alone."""
    boxes = [b.astype(np.float32) for b in boxes]
    scores = [float(v) for v in scores]
    changed = True
    while changed and len(boxes) > 1:
        changed = False
        for i in range(len(boxes)):
            for j in range(len(boxes)):
                if i == j:
                    continue
                a, b = boxes[i], boxes[j]
                area_a = max((a[2] - a[0]) * (a[3] - a[1]), 1e-6)
                area_b = max((b[2] - b[0]) * (b[3] - b[1]), 1e-6)
                ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
                iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
                if ix * iy > contain * area_a and area_a >= part * area_b:
                    boxes[j] = np.array([min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3])],
                                        np.float32)
                    scores[j] = max(scores[i], scores[j])
                    del boxes[i], scores[i]
                    changed = True
                    break
            if changed:
                break
    if not boxes:
        return np.zeros((0, 4), np.float32), np.zeros(0, np.float32)
    return np.stack(boxes), np.asarray(scores, np.float32)


class _Model:
    """One TFLite model with a single input; its first run's native log lines are kept off stderr."""

    def __init__(self, path: Path, threads: int = 1) -> None:
        self.path = Path(path)
        self._it = _interpreter(self.path, threads)
        self._in = self._it.get_input_details()[0]["index"]
        self._outs = {d["name"]: d["index"] for d in self._it.get_output_details()}
        self._first = True

    def _invoke(self, x: np.ndarray) -> None:
        self._it.set_tensor(self._in, x)
        if self._first:
            with quiet_native_logs():
                self._it.invoke()
            self._first = False
        else:
            self._it.invoke()


class SsdPersons(_Model):
    """Person boxes (x0, y0, x1, y1 px) and scores from the objectron SSD; the image is stretched to 300 x 300."""

    SIZE = 300

    def __init__(self, path: Path, threads: int = 1) -> None:
        super().__init__(path, threads)
        self._boxes = self._outs["raw_outputs/box_encodings"]
        self._classes = self._outs["raw_outputs/class_predictions"]
        self._anchors = ssd_anchors()

    def __call__(self, image: np.ndarray, min_score: float) -> tuple[np.ndarray, np.ndarray]:
        """All anchors scoring >= ``min_score`` decoded to boxes in ``image`` pixels (before NMS)."""
        h, w = image.shape[:2]
        x = cv2.resize(image, (self.SIZE, self.SIZE), interpolation=cv2.INTER_AREA).astype(np.float32)
        x *= 2.0 / 255.0
        x -= 1.0
        self._invoke(x[None])
        logits = self._it.get_tensor(self._classes)[0, :, PERSON_CLASS]
        # sigmoid(logit) >= s  <=>  logit >= log(s / (1 - s)): decode only the candidates
        cut = float(np.log(min_score / (1.0 - min_score)))
        keep = np.flatnonzero(logits >= cut)
        if len(keep) == 0:
            return np.zeros((0, 4), np.float32), np.zeros(0, np.float32)
        enc = self._it.get_tensor(self._boxes)[0, keep]
        a = self._anchors[keep]
        cy = enc[:, 0] / 10.0 * a[:, 2] + a[:, 0]
        cx = enc[:, 1] / 10.0 * a[:, 3] + a[:, 1]
        bh = np.exp(enc[:, 2] / 5.0) * a[:, 2]
        bw = np.exp(enc[:, 3] / 5.0) * a[:, 3]
        boxes = np.stack([(cx - bw / 2) * w, (cy - bh / 2) * h, (cx + bw / 2) * w, (cy + bh / 2) * h], 1)
        boxes[:, 0::2] = boxes[:, 0::2].clip(0, w)
        boxes[:, 1::2] = boxes[:, 1::2].clip(0, h)
        scores = 1.0 / (1.0 + np.exp(-logits[keep]))
        return boxes.astype(np.float32), scores.astype(np.float32)


def square_crop(box: np.ndarray, scale: float, width: int, height: int) -> tuple[int, int, int]:
    """x0, y0, side of the square crop of side ``scale`` x the box's longer edge, centred on the box
    (it may reach past the frame; ``_cut`` says what the part outside holds)."""
    x0, y0, x1, y1 = (float(v) for v in box)
    side = max(8, int(np.ceil(scale * max(x1 - x0, y1 - y0))))
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    return int(round(cx - side / 2)), int(round(cy - side / 2)), side


def _cut(frame: np.ndarray, x0: int, y0: int, side: int, size: int) -> np.ndarray:
    """The square ``side`` crop at (x0, y0), resized to ``size``. Where it reaches past the left or right
    edge it holds the frame mirrored at that edge: a person cut by the side border, next to black, is
    segmented only in part (a man walking in at the right edge of DAVIS dance-twirl at 854x480: 0-13% of
    his torso), next to their own mirror image as a whole (37-60%). Above and below the frame it stays
    black: a dancer mirrored under their own feet was segmented worse (breakdance at 432x240: worst frame
    3.8% -> 10.4% of the dancer missed). Only the pixels inside the frame are ever pasted back."""
    h, w = frame.shape[:2]
    if x0 >= w or y0 >= h or x0 + side <= 0 or y0 + side <= 0:
        crop = np.zeros((side, side, 3), np.uint8)
    elif x0 >= 0 and y0 >= 0 and x0 + side <= w and y0 + side <= h:
        crop = frame[y0:y0 + side, x0:x0 + side]
    else:
        fy0, fy1 = max(y0, 0), min(y0 + side, h)
        left, right = max(0, -x0), max(0, x0 + side - w)
        # mirrored at the side edges without repeating the edge column (-1 -> 1), as often as needed
        rows = cv2.copyMakeBorder(frame[fy0:fy1], 0, 0, left, right, cv2.BORDER_REFLECT_101)
        crop = np.zeros((side, side, 3), np.uint8)
        crop[fy0 - y0:fy1 - y0] = rows[:, x0 + left:x0 + left + side]
    interp = cv2.INTER_AREA if side > size else cv2.INTER_LINEAR
    return cv2.resize(crop, (size, size), interpolation=interp)


class SelfieCrops:
    """Person probability over square crops, pasted back into frame coordinates.

    Crops of side >= ``small`` px get a model input of their own (256 x 256); smaller ones are cells
    of 128 x 128 in a 2 x 2 mosaic (four small people for the price of one input). Inputs run in
    batches of ``batch``; the inputs left over after the last full batch run one at a time, because
    a batch costs as much as it is long, padding included (9.1 ms for a batch of 4, 2.6 ms for one
    input, on the 2-core CPU).
    """

    SIZE = 256

    def __init__(self, path: Path, small: int = 96, batch: int = 4, threads: int = 1) -> None:
        self.path = Path(path)
        self.small = int(small)
        self.batch = max(1, int(batch))
        self._its = {n: self._sized(threads, n) for n in sorted({1, self.batch})}
        self.inputs_run = 0

    def _sized(self, threads: int, n: int) -> tuple[Any, int, int]:
        """An interpreter whose input holds ``n`` images, run once (its first run logs natively)."""
        it = _interpreter(self.path, threads)
        inp, out = it.get_input_details()[0]["index"], it.get_output_details()[0]["index"]
        it.resize_tensor_input(inp, [n, self.SIZE, self.SIZE, 3])
        with quiet_native_logs():
            it.allocate_tensors()
            it.set_tensor(inp, np.zeros((n, self.SIZE, self.SIZE, 3), np.float32))
            it.invoke()
        return it, inp, out

    def _run(self, images: list[np.ndarray]) -> list[np.ndarray]:
        out: list[np.ndarray] = []
        full = len(images) - len(images) % self.batch
        runs = [(s, self.batch) for s in range(0, full, self.batch)] + [(s, 1) for s in range(full, len(images))]
        for start, n in runs:
            it, inp, res = self._its[n]
            x = np.stack(images[start:start + n]).astype(np.float32)
            x *= 1.0 / 255.0
            it.set_tensor(inp, x)
            it.invoke()
            y = it.get_tensor(res)
            out += [y[k, :, :, 0].copy() for k in range(n)]
            self.inputs_run += n
        return out

    def __call__(self, frame: np.ndarray, crops: list[tuple[int, int, int]],
                 turned: bool = False) -> list[np.ndarray]:
        """For each (x0, y0, side) crop, its person probability as a (side, side) float32 array.

        ``turned``: each crop is shown to the model upside down (turned by 180 degrees) and its map
        turned back; the selfie model, trained on upright people, finds people upside down this way.
        """
        def cut(i: int, size: int) -> np.ndarray:
            img = _cut(frame, *crops[i], size)
            return img[::-1, ::-1] if turned else img

        big = [i for i, c in enumerate(crops) if c[2] >= self.small]
        little = [i for i, c in enumerate(crops) if c[2] < self.small]
        images = [cut(i, self.SIZE) for i in big]
        half = self.SIZE // 2
        mosaics = []
        for start in range(0, len(little), 4):
            m = np.zeros((self.SIZE, self.SIZE, 3), np.uint8)
            for k, i in enumerate(little[start:start + 4]):
                r, c = divmod(k, 2)
                m[r * half:(r + 1) * half, c * half:(c + 1) * half] = cut(i, half)
            mosaics.append(m)
        probs = self._run(images + mosaics)
        result: list[np.ndarray | None] = [None] * len(crops)
        for i, p in zip(big, probs[:len(big)]):
            side = crops[i][2]
            result[i] = cv2.resize(p, (side, side), interpolation=cv2.INTER_LINEAR)
        for n, start in enumerate(range(0, len(little), 4)):
            p = probs[len(big) + n]
            for k, i in enumerate(little[start:start + 4]):
                r, c = divmod(k, 2)
                side = crops[i][2]
                cell = p[r * half:(r + 1) * half, c * half:(c + 1) * half]
                result[i] = cv2.resize(cell, (side, side), interpolation=cv2.INTER_LINEAR)
        if turned:
            result = [np.ascontiguousarray(r[::-1, ::-1]) if r is not None else None for r in result]
        return [r if r is not None else np.zeros((1, 1), np.float32) for r in result]


def face_anchors() -> np.ndarray:
    """(896, 2) cx, cy anchors of BlazeFace short range (16 x 16 cells x 2, 8 x 8 cells x 6)."""
    out = []
    for cells, per in ((16, 2), (8, 6)):
        for y in range(cells):
            for x in range(cells):
                out += [((x + 0.5) / cells, (y + 0.5) / cells)] * per
    return np.asarray(out, np.float32)


class PoseCrop(NamedTuple):
    """What the landmark model says of the one person a crop is centred on.

    prob:     (side, side) float32 person probability over the crop
    presence: in [0, 1], how sure the model is that a whole person is in the crop
    image:    (33, 3) float32 landmarks at frame pixel coordinates (x, y, visibility in [0, 1]), BlazePose order
    world:    (33, 3) float32 metric 3D landmarks (x right, y down, z away from the camera, origin between the
              hips), turned back to the frame's axes where the crop was turned (as mediapipe's pose solution
              reports them)
    aux:      (2, 2) float32 the model's two alignment points at frame pixels: the body's centre and a point
              whose offset from it gives the body's size and tilt (:func:`pose_region`); None if not given
    """

    prob: np.ndarray
    presence: float
    image: np.ndarray
    world: np.ndarray
    aux: np.ndarray | None = None


def pose_region(aux: np.ndarray, scale: float = 1.25) -> tuple[float, float, float, float]:
    """The region the landmark model should see next for a person whose alignment points are ``aux``
    (mediapipe's rule for following a person from frame to frame): centred on the body's centre, a side of
    ``scale`` x twice the distance between the two points, turned so that the second point is straight
    above the first (the person upright in the crop). Returns (cx, cy, side, angle): the crop is the frame
    turned by ``angle`` radians about the centre."""
    centre, top = np.asarray(aux[0], np.float64), np.asarray(aux[1], np.float64)
    dx, dy = top - centre
    side = 2.0 * scale * float(np.hypot(dx, dy))
    return float(centre[0]), float(centre[1]), side, float(-np.pi / 2 - np.arctan2(dy, dx))


class PoseCrops(_Model):
    """BlazePose GHUM full on one person's square crop: their segmentation and their landmarks.

    The landmark model is trained on crops around one person and segments that person only, where
    the selfie model marks everyone in the crop: a spectator behind a dancer is not in it. The same run
    gives the person's 33 landmarks, in the image and in metric 3D (the outputs mediapipe's pose
    solution reads, less its landmark smoothing and heatmap refinement). One 256 x 256 input per call
    (about 10 ms on one core), on an upright square crop (:meth:`__call__`) or on a turned one that holds
    the person upright (:meth:`rotated`, the region :func:`pose_region` makes of a previous result).
    """

    SIZE = 256
    LANDMARKS = 33

    def __init__(self, path: Path, threads: int = 1) -> None:
        super().__init__(path, threads)
        outs = {tuple(d["shape"]): d["index"] for d in self._it.get_output_details()}
        seg, presence, image, world = (1, self.SIZE, self.SIZE, 1), (1, 1), (1, 39 * 5), (1, 39 * 3)
        missing = [s for s in (seg, presence, image, world) if s not in outs]
        if missing:
            from privvid.errors import BackendFailure

            raise BackendFailure(f"{self.path} is not BlazePose GHUM's landmark model: it has no {missing} "
                                 f"outputs (segmentation, presence, landmarks, world landmarks; outputs: "
                                 f"{sorted(outs)})")
        self._seg, self._presence, self._image, self._world = (outs[seg], outs[presence], outs[image],
                                                               outs[world])
        self.inputs_run = 0

    def __call__(self, frame: np.ndarray, crop: tuple[int, int, int], turned: bool = False) -> PoseCrop:
        """The (x0, y0, side) crop's person; ``turned``: shown to the model upside down, and the map and
        the landmarks turned back."""
        img = _cut(frame, *crop, self.SIZE)
        if turned:
            img = img[::-1, ::-1]
        prob, presence, raw, world = self._run(img)
        xy = raw[:, :2].astype(np.float64)
        if turned:
            prob = prob[::-1, ::-1]
            xy = self.SIZE - xy        # a half turn about the crop's centre ...
            world = world * np.array([-1.0, -1.0, 1.0], np.float32)   # ... and about the camera's axis
        x0, y0, side = crop
        xy = xy * (side / self.SIZE) + (x0, y0)
        prob = cv2.resize(np.ascontiguousarray(prob, np.float32), (side, side), interpolation=cv2.INTER_LINEAR)
        return self._result(prob, presence, xy, raw, world)

    def rotated(self, frame: np.ndarray, region: tuple[float, float, float, float]
                ) -> tuple[PoseCrop, tuple[int, int, int]]:
        """The person in a turned square ``region`` (cx, cy, side, angle; :func:`pose_region`), shown to the
        model upright; outside the frame the crop is black. Returns the result with its map over the
        axis-aligned square crop (x0, y0, side) that holds the region, and that crop."""
        cx, cy, side, angle = region
        cos, sin = np.cos(angle), np.sin(angle)
        a = (self.SIZE / max(side, 1.0)) * np.array([[cos, -sin], [sin, cos]])
        b = self.SIZE / 2.0 - a @ np.array([cx, cy])
        img = cv2.warpAffine(frame, np.hstack([a, b[:, None]]), (self.SIZE, self.SIZE), flags=cv2.INTER_LINEAR,
                             borderMode=cv2.BORDER_CONSTANT)
        prob, presence, raw, world = self._run(img)
        xy = (raw[:, :2].astype(np.float64) - b) @ np.linalg.inv(a).T
        # the metric landmarks turned back to the frame's axes (about the camera's axis, as mediapipe does)
        back = np.array([[cos, sin], [-sin, cos]], np.float32)
        world = np.concatenate([world[:, :2] @ back.T, world[:, 2:]], axis=1).astype(np.float32)
        # the map over the axis-aligned square that holds the turned one: crop pixel q is frame pixel q + (x0, y0)
        span = int(np.ceil(side * (abs(cos) + abs(sin)) - 1e-6))
        x0, y0 = int(np.floor(cx - span / 2)), int(np.floor(cy - span / 2))
        back_map = np.hstack([a, (a @ np.array([x0, y0]) + b)[:, None]])
        prob = cv2.warpAffine(np.ascontiguousarray(prob, np.float32), back_map, (span, span),
                              flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_CONSTANT)
        return self._result(prob, presence, xy, raw, world), (x0, y0, span)

    def _run(self, img: np.ndarray) -> tuple[np.ndarray, float, np.ndarray, np.ndarray]:
        """One model run on a 256 x 256 RGB input: (probability map, presence, raw 39 x 5 landmarks in input
        pixels, 33 world landmarks)."""
        self._invoke((img.astype(np.float32) * (1.0 / 255.0))[None])
        self.inputs_run += 1
        prob = _sigmoid(self._it.get_tensor(self._seg)[0, :, :, 0], 30.0)
        raw = self._it.get_tensor(self._image)[0].reshape(39, 5)
        world = self._it.get_tensor(self._world)[0].reshape(39, 3)[: self.LANDMARKS].astype(np.float32)
        return prob, float(self._it.get_tensor(self._presence)[0, 0]), raw, world

    def _result(self, prob: np.ndarray, presence: float, xy: np.ndarray, raw: np.ndarray,
                world: np.ndarray) -> PoseCrop:
        image = np.empty((self.LANDMARKS, 3), np.float32)
        image[:, :2] = xy[: self.LANDMARKS]
        image[:, 2] = _sigmoid(raw[: self.LANDMARKS, 3], 30.0)   # visibility
        return PoseCrop(prob, presence, image, world, xy[self.LANDMARKS:self.LANDMARKS + 2].astype(np.float32))


class Faces(_Model):
    """Face boxes (x0, y0, x1, y1 px) and scores from BlazeFace short range (128 x 128, letterboxed)."""

    SIZE = 128

    def __init__(self, path: Path, threads: int = 1) -> None:
        super().__init__(path, threads)
        self._reg, self._cls = self._outs["regressors"], self._outs["classificators"]
        self._anchors = face_anchors()

    def __call__(self, image: np.ndarray, min_score: float) -> tuple[np.ndarray, np.ndarray]:
        h, w = image.shape[:2]
        side = max(h, w)
        pad = np.zeros((side, side, 3), np.uint8)
        oy, ox = (side - h) // 2, (side - w) // 2
        pad[oy:oy + h, ox:ox + w] = image
        x = cv2.resize(pad, (self.SIZE, self.SIZE), interpolation=cv2.INTER_AREA).astype(np.float32)
        x *= 2.0 / 255.0
        x -= 1.0
        self._invoke(x[None])
        scores = _sigmoid(self._it.get_tensor(self._cls)[0, :, 0], 80.0)
        keep = np.flatnonzero(scores >= min_score)
        if len(keep) == 0:
            return np.zeros((0, 4), np.float32), np.zeros(0, np.float32)
        reg = self._it.get_tensor(self._reg)[0, keep, :4] / self.SIZE
        a = self._anchors[keep]
        cx, cy, bw, bh = reg[:, 0] + a[:, 0], reg[:, 1] + a[:, 1], reg[:, 2], reg[:, 3]
        boxes = np.stack([(cx - bw / 2) * side - ox, (cy - bh / 2) * side - oy,
                          (cx + bw / 2) * side - ox, (cy + bh / 2) * side - oy], 1)
        boxes[:, 0::2] = boxes[:, 0::2].clip(0, w)
        boxes[:, 1::2] = boxes[:, 1::2].clip(0, h)
        sc = scores[keep].astype(np.float32)
        idx = nms(boxes, sc, 0.3)
        return boxes[idx].astype(np.float32), sc[idx]
