"""Unit tests for privvid.detect on small generated fixtures (no models, no real video)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from privvid.config import DetectConfig
from privvid.detect import DETECTORS, Detections
from privvid.detect.common import box_inside, box_iou, dilate, mask_box, one_euro, validate
from privvid.detect.stream import MaskStream, build_mask_stream
from privvid.detect.track import IouTracker
from privvid.errors import BackendFailure, ConfigError, MissingWeights
from privvid.registry import UnknownBackend

H, W = 48, 64


def rect_mask(x0: int, y0: int, x1: int, y1: int, h: int = H, w: int = W) -> np.ndarray:
    m = np.zeros((h, w), dtype=bool)
    m[y0:y1, x0:x1] = True
    return m


def dets_from(masks: list[np.ndarray], h: int = H, w: int = W) -> Detections:
    if not masks:
        return Detections.empty(h, w)
    return Detections(
        masks=np.stack(masks),
        boxes=np.stack([mask_box(m) for m in masks]),
        scores=np.ones(len(masks), dtype=np.float32),
    )


class ScriptedDetector:
    """Returns pre-made Detections in order; records how it was driven."""

    name = "scripted"

    def __init__(self, script: list) -> None:
        self.script = script
        self.calls = 0
        self.resets = 0

    def reset(self) -> None:
        self.resets += 1
        self.calls = 0

    def __call__(self, frame: np.ndarray):
        out = self.script[self.calls]
        self.calls += 1
        if isinstance(out, Exception):
            raise out
        return out

    def info(self) -> dict:
        return {"name": self.name}


def frame() -> np.ndarray:
    return np.zeros((H, W, 3), dtype=np.uint8)


# ---------------------------------------------------------------- helpers
def test_box_iou_and_mask_box() -> None:
    m = rect_mask(10, 5, 20, 25)
    assert mask_box(m).tolist() == [10, 5, 20, 25]
    iou = box_iou(np.array([[0, 0, 10, 10]]), np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]]))
    assert iou.shape == (1, 3)
    np.testing.assert_allclose(iou[0], [1.0, 50 / 150, 0.0])


def test_box_inside_is_the_share_of_each_box_in_the_other() -> None:
    whole = np.array([0, 0, 10, 20], np.float32)
    part = np.array([2, 10, 8, 20], np.float32)          # the lower half of the middle
    beside = np.array([5, 0, 15, 20], np.float32)
    share = box_inside(np.stack([part, beside, whole]), whole)
    assert share[:, 0].tolist() == pytest.approx([1.0, 0.5, 1.0])
    assert box_inside(whole, part)[0, 0] == pytest.approx(60 / 200)
    assert box_inside(np.array([3, 3, 3, 9]), whole)[0, 0] == 0.0   # an empty box lies nowhere


def test_dilate_grows_by_half_kernel() -> None:
    m = np.zeros((41, 41), dtype=bool)
    m[20, 20] = True
    d = dilate(m, 11)
    assert d[20, 15] and d[20, 25] and d[15, 20] and d[25, 20]
    assert not d[20, 14] and not d[20, 26]
    assert dilate(m, 0).sum() == 1 and dilate(m, 1).sum() == 1


@pytest.mark.parametrize("from_raw, rest, behind", [(False, 0.129, 4.28), (True, 0.106, 7.97)])
def test_one_euro_steadies_a_point_at_rest_and_follows_a_move(from_raw: bool, rest: float, behind: float) -> None:
    """At rest the filter takes most of the noise out; on a steady walk it follows a few px behind, further
    when its speed is counted from the last raw value (mediapipe's form) than from the filtered one. The
    figures in the parameters were measured with this seed."""
    rng = np.random.default_rng(3)
    kw = dict(fps=30.0, scale=50.0, from_raw=from_raw)
    x, state = one_euro(np.array([100.0, 50.0]), None, 0.01, 1.0, **kw)
    assert x.tolist() == [100.0, 50.0] and state[1].tolist() == [0.0, 0.0]   # a first value passes as it is
    noisy, out = [], []
    for _ in range(60):
        noisy.append(np.array([100.0, 50.0]) + rng.normal(0.0, 1.0, 2))
        x, state = one_euro(noisy[-1], state, 0.01, 1.0, **kw)
        out.append(x)
    ratio = np.abs(np.array(out) - [100.0, 50.0]).mean() / np.abs(np.array(noisy) - [100.0, 50.0]).mean()
    assert ratio == pytest.approx(rest, abs=0.005) and ratio < 0.25
    at = np.array([100.0, 50.0])
    for _ in range(30):   # a steady walk of 5 px a frame (a tenth of the scale)
        at = at + [5.0, 0.0]
        x, state = one_euro(at, state, 0.01, 1.0, **kw)
    assert at[0] - x[0] == pytest.approx(behind, abs=0.05) and abs(x[1] - 50.0) < 1.0


# ---------------------------------------------------------------- tracker
def test_tracker_keeps_ids_for_moving_people_and_bridges_gaps() -> None:
    tr = IouTracker(iou_threshold=0.3, max_age=3)
    ids_a, ids_b = [], []
    for t in range(8):
        a = rect_mask(2 + t, 5, 14 + t, 30)          # walks right
        b = rect_mask(50 - t, 10, 62 - t, 40)        # walks left
        masks = [b, a] if t % 2 else [a, b]          # detector order changes
        if t == 4:
            masks = [a]                               # b missed for one frame
        out = tr.update(dets_from(masks))
        got = {tuple(mask_box(m)): int(i) for m, i in zip(out.masks, out.track_ids)}
        ids_a.append(got[tuple(mask_box(a))])
        if t != 4:
            ids_b.append(got[tuple(mask_box(b))])
    assert len(set(ids_a)) == 1 and len(set(ids_b)) == 1
    assert ids_a[0] != ids_b[0]


def test_tracker_new_person_gets_new_id_and_old_tracks_expire() -> None:
    tr = IouTracker(iou_threshold=0.3, max_age=1)
    first = tr.update(dets_from([rect_mask(0, 0, 10, 10)])).track_ids[0]
    tr.update(Detections.empty(H, W))
    tr.update(Detections.empty(H, W))  # older than max_age now
    again = tr.update(dets_from([rect_mask(0, 0, 10, 10)])).track_ids[0]
    far = tr.update(dets_from([rect_mask(0, 0, 10, 10), rect_mask(40, 30, 60, 45)])).track_ids
    assert again != first
    assert far[0] == again and far[1] not in (first, again)
    tr.reset()
    assert tr.update(dets_from([rect_mask(0, 0, 10, 10)])).track_ids[0] == 0


def test_tracker_rejects_bad_parameters() -> None:
    with pytest.raises(ValueError):
        IouTracker(iou_threshold=0.0)
    with pytest.raises(ValueError):
        IouTracker(max_age=-1)


# ---------------------------------------------------------------- stream
def test_stream_delays_by_temporal_and_unions_over_window() -> None:
    person = rect_mask(20, 10, 30, 30)
    script = [dets_from([person]) for _ in range(7)]
    script[3] = Detections.empty(H, W)   # missed for one frame
    cfg = DetectConfig(temporal=2, dilate=0, dilate_rel=0.0)
    stream = MaskStream(ScriptedDetector(script), cfg)
    outs = []
    for i in range(7):
        got = stream.push(frame())
        assert len(got) == (0 if i < 2 else 1)
        outs += got
    outs += stream.flush()
    assert len(outs) == 7
    assert stream.delay == 2
    # output order = input order: frame 3 carries its own (empty) detections ...
    assert [len(d) for d, _ in outs] == [1, 1, 1, 0, 1, 1, 1]
    # ... but its removal mask still covers the person (temporal union)
    for _, removal in outs:
        assert removal.shape == (H, W) and removal.dtype == bool
        assert np.array_equal(removal, person)


def test_stream_union_window_is_exactly_plus_minus_temporal() -> None:
    # one person at a different place in each frame: frame i's removal holds frames i-1..i+1
    masks = [rect_mask(4 * i, 0, 4 * i + 3, 5) for i in range(6)]
    stream = MaskStream(ScriptedDetector([dets_from([m]) for m in masks]), DetectConfig(temporal=1, dilate=0, dilate_rel=0.0))
    outs = [o for f in range(6) for o in stream.push(frame())] + stream.flush()
    for i, (_, removal) in enumerate(outs):
        expect = np.zeros((H, W), dtype=bool)
        for j in range(max(0, i - 1), min(5, i + 1) + 1):
            expect |= masks[j]
        assert np.array_equal(removal, expect), i


def test_stream_dilates_and_includes_extra_pixels() -> None:
    extra = np.zeros((H, W), dtype=bool)
    extra[40, 5] = True
    d = dets_from([rect_mask(30, 20, 31, 21)])
    d.extra = extra
    stream = MaskStream(ScriptedDetector([d]), DetectConfig(temporal=0, dilate=5, dilate_rel=0.0))
    (dets, removal), = stream.push(frame())
    assert removal[20, 28] and removal[20, 32] and not removal[20, 27]   # grown by 2 px (kernel 5)
    assert removal[40, 3] and removal[40, 7]                              # extra pixels removed too
    assert dets.track_ids.tolist() == [0]
    assert stream.flush() == []


def test_stream_reset_restarts_clip() -> None:
    det = ScriptedDetector([dets_from([rect_mask(0, 0, 5, 5)])] * 4)
    stream = MaskStream(det, DetectConfig(temporal=1, dilate=0, dilate_rel=0.0))
    stream.push(frame())
    stream.reset()
    assert det.resets == 1
    assert stream.push(frame()) == []          # nothing left over from the previous clip
    assert len(stream.flush()) == 1


def test_stream_backend_exception_propagates() -> None:
    stream = MaskStream(ScriptedDetector([RuntimeError("model crashed")]), DetectConfig())
    with pytest.raises(RuntimeError, match="model crashed"):
        stream.push(frame())


@pytest.mark.parametrize(
    "bad",
    [
        "not detections",
        Detections(masks=np.zeros((1, H, W + 1), bool), boxes=np.zeros((1, 4), np.float32), scores=np.ones(1, np.float32)),
        Detections(masks=np.zeros((1, H, W), np.uint8), boxes=np.zeros((1, 4), np.float32), scores=np.ones(1, np.float32)),
        Detections(masks=np.zeros((1, H, W), bool), boxes=np.zeros((1, 3), np.float32), scores=np.ones(1, np.float32)),
        Detections(masks=np.zeros((1, H, W), bool), boxes=np.full((1, 4), np.nan, np.float32), scores=np.ones(1, np.float32)),
        Detections(masks=np.zeros((0, H, W), bool), boxes=np.zeros((0, 4), np.float32), scores=np.zeros(0, np.float32),
                   extra=np.zeros((H, 3), bool)),
        Detections(masks=np.zeros((1, H, W), bool), boxes=np.zeros((1, 4), np.float32), scores=np.ones(1, np.float32),
                   keypoints=np.zeros((2, 33, 3), np.float32)),
        Detections(masks=np.zeros((1, H, W), bool), boxes=np.zeros((1, 4), np.float32), scores=np.ones(1, np.float32),
                   keypoints=np.zeros((1, 33, 3), np.float32), world_keypoints=np.zeros((1, 17, 3), np.float32)),
        Detections(masks=np.zeros((1, H, W), bool), boxes=np.zeros((1, 4), np.float32), scores=np.ones(1, np.float32),
                   world_keypoints=np.zeros((1, 33, 3), np.float32)),
    ],
)
def test_stream_wrong_shapes_raise_backend_failure(bad) -> None:
    stream = MaskStream(ScriptedDetector([bad]), DetectConfig())
    with pytest.raises(BackendFailure, match="scripted"):
        stream.push(frame())


def test_validate_accepts_good_detections_and_stream_rejects_bad_frames() -> None:
    assert validate(dets_from([rect_mask(1, 1, 4, 4)]), (H, W), "x") is not None
    stream = MaskStream(ScriptedDetector([dets_from([])] * 2), DetectConfig())
    with pytest.raises(ValueError):
        stream.push(np.zeros((H, W), np.uint8))
    stream.push(frame())
    with pytest.raises(ValueError, match="size changed"):
        stream.push(np.zeros((H + 2, W, 3), np.uint8))


def _moving_block_clip(n: int, step: int, h: int = 120, w: int = 160, size: int = 32):
    """A smooth random background and a block of 4 px random cells moving ``step`` px to the right per frame."""
    rng = np.random.default_rng(3)
    import cv2

    back = cv2.GaussianBlur(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), (0, 0), 2)
    block = cv2.resize(rng.integers(0, 256, (size // 4, size // 4, 3), dtype=np.uint8), (size, size),
                       interpolation=cv2.INTER_NEAREST)
    frames, masks = [], []
    for i in range(n):
        f = back.copy()
        x = 20 + step * i
        f[40:40 + size, x:x + size] = block
        frames.append(f)
        masks.append(rect_mask(x, 40, x + size, 40 + size, h, w))
    return frames, masks


def test_stream_flow_moves_neighbour_masks_onto_the_person() -> None:
    # the detector misses the moving block on frame 3: with flow alignment its removal mask is the block
    # where it is on frame 3 (moved there from the neighbours), not the block's trail over frames 1..5
    frames, masks = _moving_block_clip(7, step=4)
    script = [dets_from([m], 120, 160) for m in masks]
    script[3] = Detections.empty(120, 160)
    got = {}
    for align in ("flow", "none"):
        cfg = DetectConfig(temporal=2, dilate=0, dilate_rel=0.0, temporal_align=align)
        got[align] = MaskStream(ScriptedDetector(list(script)), cfg).run(frames)[3][1]
    person, trail = masks[3], np.logical_or.reduce([masks[j] for j in (1, 2, 4, 5)]) & ~masks[3]
    assert got["none"][person].mean() == 1.0 and got["none"][trail].mean() == 1.0
    assert got["flow"][person].mean() >= 0.95
    assert got["flow"][trail].mean() <= 0.2          # the trail is not removed: it is scene
    assert got["flow"].sum() <= 1.1 * person.sum() < got["none"].sum()


def _legs_found_on_frame_2() -> list[Detections]:
    """Five still frames of a person (x 30-33, y 20-27) whose legs (y 24-27) only frame 2 finds."""
    script = [dets_from([rect_mask(30, 20, 34, 24)]) for _ in range(5)]
    script[2] = dets_from([rect_mask(30, 20, 34, 28)])
    return script


def test_stream_neighbours_grow_by_temporal_grow_of_their_dilation() -> None:
    # a still scene (zero flow): a person whose legs only frame 2 finds. Frame 1's removal holds its own
    # upper body grown by the full kernel (9 px: 4 px a side) and the legs from frame 2 grown by half of it
    # (5 px: 2 px a side): the person is found here too, and their own mask carries the full margin
    # (temporal_vote=1: every neighbour pixel counts; the legs' 2 px beyond the upper body's margin are the
    # thin sliver that the default's vote leaves out, see the test below)
    script = _legs_found_on_frame_2()
    cfg = DetectConfig(temporal=2, dilate=9, dilate_rel=0.0, temporal_grow=0.5, temporal_vote=1)
    outs = MaskStream(ScriptedDetector(script), cfg).run([frame()] * 5)
    own, near = outs[2][1], outs[1][1]
    assert own[31, 31] and not own[32, 31] and own[24, 26] and not own[24, 25]
    assert near[29, 31] and not near[30, 31]            # the legs: 2 px below
    assert near[27, 28] and not near[27, 27]            # ... and 2 px to the side
    assert near[16, 31] and near[20, 26]                # the upper body: its own 4 px
    # grow 1: the legs come with the full margin, as without flow
    full = MaskStream(ScriptedDetector(list(script)), DetectConfig(temporal=2, dilate=9, dilate_rel=0.0,
                                                                   temporal_grow=1.0, temporal_vote=1)
                      ).run([frame()] * 5)
    assert full[1][1][31, 31] and not full[1][1][32, 31]


def test_stream_small_people_keep_the_least_margin_in_the_neighbours() -> None:
    # the least growth (here 25% of the 48 px frame height: a 13 px kernel, 6 px a side) is what a small
    # person gets; half of it would leave their outline, so the neighbours' masks keep all of it
    cfg = DetectConfig(temporal=2, dilate_rel=0.08, dilate_min_frame=0.25, temporal_grow=0.5)
    outs = MaskStream(ScriptedDetector(_legs_found_on_frame_2()), cfg).run([frame()] * 5)
    assert outs[2][1][33, 31] and not outs[2][1][34, 31]
    assert outs[1][1][33, 31] and not outs[1][1][34, 31]     # the legs from frame 2: the same 6 px


def test_stream_a_person_the_frame_missed_keeps_the_full_margin() -> None:
    # found on frame 2 only: the frames around it miss them entirely, so nothing of theirs carries the
    # margin, and the neighbour's mask brings the full one
    person = rect_mask(30, 20, 34, 28)
    script = [dets_from([]) for _ in range(5)]
    script[2] = dets_from([person])
    cfg = DetectConfig(temporal=2, dilate=9, dilate_rel=0.0, temporal_grow=0.5)
    outs = MaskStream(ScriptedDetector(script), cfg).run([frame()] * 5)
    assert outs[2][1][24, 26] and not outs[2][1][24, 25]
    assert all(np.array_equal(r, outs[2][1]) for _, r in outs)


@pytest.mark.parametrize("h, w", [(4, 6), (8, 8), (3, 500)])
def test_stream_frames_too_small_for_flow_union_where_they_lie(h: int, w: int) -> None:
    person = rect_mask(0, 0, 2, 2, h, w)
    script = [dets_from([person], h, w) for _ in range(3)]
    script[1] = Detections.empty(h, w)
    frames = [np.random.default_rng(i).integers(0, 256, (h, w, 3), dtype=np.uint8) for i in range(3)]
    outs = MaskStream(ScriptedDetector(script), DetectConfig(temporal=1, dilate=0, dilate_rel=0.0)).run(frames)
    assert np.array_equal(outs[1][1], person)


def test_stream_flow_on_a_wide_short_frame_does_not_crash_and_moves_the_mask() -> None:
    # OpenCV's DIS crashes the process on grey images 100 px wide or more and 16-31 px high (a 3840x240
    # clip's flow copy is 432x27); the stream pads them. Run in a child process: a crash fails the test
    # instead of killing the test run
    code = textwrap.dedent("""
        import sys
        import numpy as np
        sys.path.insert(0, "tests/unit")
        from privvid.config import DetectConfig
        from privvid.detect.base import Detections
        from privvid.detect.stream import MaskStream
        from test_detect import ScriptedDetector, dets_from, rect_mask
        h, w = 24, 432
        rng = np.random.default_rng(0)
        back = rng.integers(0, 256, (h, w // 4, 3), dtype=np.uint8).repeat(4, axis=1)
        frames = [np.roll(back, 4 * i, axis=1) for i in range(5)]
        masks = [rect_mask(100 + 4 * i, 4, 140 + 4 * i, 20, h, w) for i in range(5)]
        script = [dets_from([m], h, w) for m in masks]
        script[2] = Detections.empty(h, w)
        cfg = DetectConfig(temporal=2, dilate=0, dilate_rel=0.0, dilate_min_frame=0.0)
        got = MaskStream(ScriptedDetector(script), cfg).run(frames)[2][1]
        print(round(float(got[masks[2]].mean()), 3), int(got.sum()), int(masks[2].sum()))
    """)
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         cwd=Path(__file__).resolve().parents[2])
    assert run.returncode == 0, run.stderr[-2000:]
    covered, got, person = run.stdout.split()
    assert float(covered) >= 0.9 and int(got) <= 1.3 * int(person)   # moved onto the block, not its trail


@pytest.mark.parametrize("field, value", [("temporal_align", "optical"), ("temporal_grow", 1.5),
                                          ("temporal_grow", -0.1)])
def test_temporal_settings_are_checked(field: str, value: object) -> None:
    with pytest.raises(ConfigError, match=field):
        DetectConfig(**{field: value})


def test_stream_info_describes_chain() -> None:
    info = MaskStream(ScriptedDetector([]), DetectConfig(temporal=3, dilate=7)).info()
    assert info["backend"] == "scripted" and info["temporal"] == 3 and info["dilate"] == 7
    assert info["tracker"]["name"] == "iou"
    assert info["temporal_align"] == "flow" and info["temporal_grow"] == 0.5 and "DIS" in info["flow"]
    assert info["temporal_vote"] == 1 and info["temporal_sliver"] == 0.0
    info = MaskStream(ScriptedDetector([]), DetectConfig(temporal_vote=2)).info()
    assert info["temporal_vote"] == 2 and info["temporal_sliver"] == 0.1
    info = MaskStream(ScriptedDetector([]), DetectConfig(temporal=3, temporal_align="none")).info()
    assert info["temporal_align"] == "none" and info["temporal_grow"] == 1.0 and "flow" not in info
    assert info["temporal_vote"] == 1 and info["temporal_sliver"] == 0.0


# ---------------------------------------------------------------- registry and weights errors
def test_registry_lists_backends_and_rejects_unknown() -> None:
    assert {"mediapipe", "yolo", "sam"} <= set(DETECTORS.names())
    with pytest.raises(UnknownBackend, match="nope"):
        build_mask_stream(DetectConfig(backend="nope"))
    with pytest.raises(UnknownBackend, match=r"unknown detector backend 'yolp' \(did you mean 'yolo'\?\)"):
        build_mask_stream(DetectConfig(backend="yolp"))


def test_yolo_missing_weights_names_file(tmp_path: Path) -> None:
    missing = tmp_path / "yolo11n-seg.pt"
    with pytest.raises(MissingWeights, match="yolo11n-seg.pt") as exc:
        build_mask_stream(DetectConfig(backend="yolo", weights=missing))
    assert "--weights" in str(exc.value)
    assert "only with --trust-model-files" in str(exc.value)   # the hint does not offer a file it then refuses
    with pytest.raises(MissingWeights, match="no YOLO segmentation weights given.*with --weights PATH"):
        build_mask_stream(DetectConfig(backend="yolo"))


def test_sam_missing_checkpoint_names_file(tmp_path: Path) -> None:
    missing = tmp_path / "sam_vit_b.pth"
    with pytest.raises(MissingWeights, match="sam_vit_b.pth") as exc:
        build_mask_stream(DetectConfig(backend="sam", sam_weights=missing))
    assert "--sam-weights" in str(exc.value)


# ---------------------------------------------------------------- mediapipe crop geometry (no model)
def test_crop_boxes_small_blob_gets_a_tall_crop_reaching_below_it() -> None:
    from privvid.detect.mediapipe_backend import crop_boxes

    h, w = 240, 432
    head = np.zeros((h, w), dtype=bool)
    head[60:80, 150:165] = True                       # only a head was segmented
    (x0, y0, x1, y1), = crop_boxes(head, min_pixels=10, max_crops=3, min_height=0.5, margin=0.4)
    assert 0 <= x0 < 150 and 165 < x1 <= w and 0 <= y0 < 60 and 80 < y1 <= h   # holds the blob
    assert y1 - y0 >= 0.5 * h - 1                      # at least min_height of the frame tall
    assert (y1 - 80) > 2 * (60 - y0)                  # most of the crop lies below the head: the body
    assert x1 - x0 >= 0.75 * (y1 - y0) - 1             # not a thin strip


def test_crop_boxes_whole_person_is_grown_by_margin_and_kept_in_frame() -> None:
    from privvid.detect.mediapipe_backend import crop_boxes

    h, w = 240, 432
    person = np.zeros((h, w), dtype=bool)
    person[20:230, 400:430] = True                     # tall person at the right border
    (x0, y0, x1, y1), = crop_boxes(person, min_pixels=10, max_crops=3, min_height=0.5, margin=0.4)
    assert x1 == w and y0 == 0 and y1 == h             # shifted/clipped into the frame
    assert x0 <= 400 - 30                              # grown, not only the blob
    assert crop_boxes(person, min_pixels=10, max_crops=0) == []
    assert crop_boxes(np.zeros((h, w), bool), min_pixels=10, max_crops=3) == []


def test_crop_boxes_merge_overlaps_drop_tiny_blobs_and_keep_the_largest() -> None:
    from privvid.detect.mediapipe_backend import crop_boxes

    h, w = 240, 432
    m = np.zeros((h, w), dtype=bool)
    m[50:200, 100:130] = True                          # two people side by side: one merged crop
    m[50:200, 140:170] = True
    m[50:150, 380:400] = True                          # a third person far right: its own crop
    m[5:7, 10:12] = True                               # 4 px of noise: no crop
    boxes = crop_boxes(m, min_pixels=20, max_crops=3, min_height=0.5, margin=0.4)
    assert len(boxes) == 2                             # the noise blob would have made a third
    (ax0, _, ax1, _), (bx0, _, bx1, _) = boxes
    assert ax0 < 100 and ax1 > 170                     # the merged crop holds both, and comes first (more pixels)
    assert bx0 < 380 and bx1 > 400
    assert crop_boxes(m, min_pixels=20, max_crops=1, min_height=0.5, margin=0.4) == boxes[:1]


def test_split_by_seeds_cuts_a_merged_blob_between_the_people_in_it() -> None:
    from privvid.detect.mediapipe_backend import split_by_seeds

    h, w = 120, 200
    blob = np.zeros((h, w), dtype=bool)
    blob[20:110, 40:160] = True                        # two people merged into one selfie blob
    left = np.zeros_like(blob)
    left[30:100, 50:80] = True                         # last pose mask of the left person
    right = np.zeros_like(blob)
    right[25:105, 120:150] = True                      # ... and of the right one (partly outside)
    right[25:105, 150:170] = True
    a, b = split_by_seeds(blob, [left, right])
    assert not (a & b).any() and ((a | b) == blob).all()  # disjoint, nothing lost
    assert a[:, 40:99].all(axis=1)[20:110].all()       # nearer the left seed -> left part
    assert b[:, 101:160][20:110].all() and not a[:, 101:].any()
    assert (a & left).sum() == (blob & left).sum()     # each seed's own pixels stay with it
    one, = split_by_seeds(blob, [left])                # a single seed takes the whole blob
    assert (one == blob).all()
    assert split_by_seeds(blob, []) == []


def test_crop_boxes_cut_a_wide_crowd_into_overlapping_tiles() -> None:
    from privvid.detect.mediapipe_backend import crop_boxes

    h, w = 240, 432
    crowd = np.zeros((h, w), dtype=bool)
    crowd[60:230, 5:425] = True                        # one blob across the whole frame
    whole = crop_boxes(crowd, min_pixels=20, max_crops=3, min_height=0.5, margin=0.8, max_aspect=0.0)
    assert whole == [(0, 0, w, h)]
    tiles = crop_boxes(crowd, min_pixels=20, max_crops=3, min_height=0.5, margin=0.8, max_aspect=1.3)
    assert len(tiles) == 2                             # 432 / (1.3 * 240) -> 2 tiles
    (ax0, ay0, ax1, ay1), (bx0, by0, bx1, by1) = tiles
    assert ax0 == 0 and bx1 == w and ay0 == by0 == 0 and ay1 == by1 == h
    assert bx0 < ax1                                   # they overlap: nobody is cut in half at the seam
    assert max(ax1 - ax0, bx1 - bx0) <= 1.3 * h
    assert len(crop_boxes(crowd, min_pixels=20, max_crops=1, margin=0.8, max_aspect=1.3)) == 1


def test_mediapipe_rejects_bad_crop_settings_and_reports_them() -> None:
    pytest.importorskip("mediapipe")
    from privvid.detect.mediapipe_backend import MediapipeDetector

    def mp(**options) -> DetectConfig:
        return DetectConfig(backend="mediapipe", options=options)

    for bad in (dict(crop_model=2), dict(crops=-1), dict(crop_passes=0)):
        with pytest.raises(ConfigError, match="crop"):
            MediapipeDetector(mp(**bad))
    info = MediapipeDetector(mp(crops=2, crop_passes=3)).info()
    assert info["crops"] == 2 and info["crop_passes"] == 3
    assert any("crops" in m for m in info["models"])
    assert not any("crops" in m for m in MediapipeDetector(mp(crops=0)).info()["models"])
    for bad, name in ((dict(pose_people=0), "pose_people"), (dict(split_min=0.0), "split_min")):
        with pytest.raises(ConfigError, match=name):
            MediapipeDetector(mp(**bad))
    assert MediapipeDetector(mp(pose_people=2)).info()["pose_people"] == 2


# ---------------------------------------------------------------- opt-in tiles over the whole frame (no model)
@pytest.mark.parametrize("w,h,cols,rows", [(432, 240, 3, 2), (432, 240, 2, 2), (432, 240, 4, 3), (640, 480, 5, 1)])
def test_tile_boxes_cover_the_frame_overlap_and_stay_inside(w, h, cols, rows) -> None:
    from privvid.detect.mediapipe_backend import tile_boxes

    boxes = tile_boxes(w, h, cols, rows)
    assert len(boxes) == cols * rows
    hits = np.zeros((h, w), dtype=np.int32)
    for x0, y0, x1, y1 in boxes:
        assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h
        # each tile is larger than its plain share of the frame on both split axes (overlap)
        assert x1 - x0 > w / cols or cols == 1
        assert y1 - y0 > h / rows or rows == 1
        hits[y0:y1, x0:x1] += 1
    assert hits.min() >= 1                                 # every pixel is in some tile
    xs = sorted({(b[0], b[2]) for b in boxes})
    ys = sorted({(b[1], b[3]) for b in boxes})
    for (a0, a1), (b0, _b1) in zip(xs, xs[1:]):             # horizontal neighbours overlap by > 5% of a tile
        assert a1 - b0 > 0.05 * (a1 - a0)
    for (a0, a1), (b0, _b1) in zip(ys, ys[1:]):
        assert a1 - b0 > 0.05 * (a1 - a0)
    assert xs[0][0] == 0 and xs[-1][1] == w and ys[0][0] == 0 and ys[-1][1] == h


def test_tiles_setting_is_parsed_and_bad_values_are_refused() -> None:
    from privvid.config import parse_tiles

    assert parse_tiles(None) is None and parse_tiles("none") is None and parse_tiles("off") is None
    from privvid.detect.mediapipe_backend import MediapipeOptions

    assert MediapipeOptions().tiles is None and MediapipeOptions().tile_every == 4  # off by default; every 4th frame
    assert parse_tiles("3x2") == (3, 2) and parse_tiles("4X3") == (4, 3)
    for bad in ("0x2", "abc", "3x", "1x1", "-1x2", "2x2x2", "17x1", "3.5x2"):
        with pytest.raises(ConfigError, match="tiles"):
            MediapipeOptions(tiles=bad)


def test_mediapipe_reports_tiles_and_the_cli_refuses_a_bad_value(tmp_path) -> None:
    import os
    import subprocess
    import sys

    from privvid.detect.mediapipe_backend import MediapipeDetector

    info = MediapipeDetector(DetectConfig(backend="mediapipe", options={"tiles": "3x2"})).info()
    assert info["tiles"] == "3x2" and any("tiles" in m for m in info["models"])
    none = MediapipeDetector(DetectConfig(backend="mediapipe", options={"tiles": "none"}))
    assert not any("tiles" in m for m in none.info()["models"])
    proc = subprocess.run([sys.executable, "-m", "privvid.cli.main", "anonymize", str(tmp_path), str(tmp_path / "out"),
                           "--detect-tiles", "0x2"], capture_output=True, text=True,
                          env={**os.environ, "COLUMNS": "200"})
    assert proc.returncode == 2 and "0x2" in proc.stderr
    assert not (tmp_path / "out").exists()


def test_cli_passes_pose_people_and_refuses_zero(tmp_path) -> None:
    import json
    import os
    import subprocess
    import sys

    from fakes import moving_square_frames, write_video

    env = {**os.environ, "COLUMNS": "200"}
    bad = subprocess.run([sys.executable, "-m", "privvid.cli.main", "anonymize", str(tmp_path), str(tmp_path / "o"),
                          "--pose-people", "0"], capture_output=True, text=True, env=env)
    assert bad.returncode == 2 and "pose-people" in bad.stdout + bad.stderr
    write_video(tmp_path / "in" / "c.mp4", moving_square_frames(4))
    ok = subprocess.run([sys.executable, "-m", "privvid.cli.main", "anonymize", str(tmp_path / "in"),
                         str(tmp_path / "out"), "--detector", "mediapipe", "--pose-people", "1", "--tile-every", "2",
                         "--detect-opt", "crop_passes=1", "--quiet"],
                        capture_output=True, text=True, env=env)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    side = json.loads((tmp_path / "out" / "c.json").read_text())
    assert side["backends"]["detector"]["detector"]["pose_people"] == 1
    assert side["backends"]["detector"]["detector"]["tile_every"] == 2
    assert side["backends"]["detector"]["detector"]["crop_passes"] == 1   # --detect-opt reaches mediapipe too


def test_mediapipe_options_are_its_own_and_checked_before_any_model_loads(tmp_path, monkeypatch) -> None:
    import dataclasses
    import os
    import subprocess
    import sys

    from privvid.detect import validate_options
    from privvid.detect.mediapipe_backend import MediapipeDetector, MediapipeOptions

    # the flat per-backend fields are gone from DetectConfig: each backend owns its options
    assert "crop_passes" not in {f.name for f in dataclasses.fields(DetectConfig)}
    assert MediapipeDetector.Options is MediapipeOptions
    monkeypatch.setitem(sys.modules, "mediapipe", None)   # an import of mediapipe would now fail
    for bad, said in (({"pose_people": 0}, "pose_people"), ({"crops": -1}, "crops"), ({"crop_passes": 0}, "crop_passes"),
                      ({"tiles": "0x2"}, "tiles"), ({"selfie_model": 2}, "selfie_model"),
                      ({"pose_poeple": 2}, "pose_poeple"), ({"crops": "many"}, "crops")):
        with pytest.raises(ConfigError, match=said):
            validate_options(DetectConfig(backend="mediapipe", options=bad))
        with pytest.raises(ConfigError, match=said):   # refused before the detector imports mediapipe
            MediapipeDetector(DetectConfig(backend="mediapipe", options=bad))
        with pytest.raises(ConfigError, match=said):   # sam hands its options to its base detector
            validate_options(DetectConfig(backend="sam", sam_base="mediapipe", options=bad))
    validate_options(DetectConfig(backend="mediapipe", options={"tiles": "3x2", "crop_passes": 1, "min_area": 0}))
    validate_options(DetectConfig(backend="sam", sam_base="mediapipe", options={"pose_people": 1}))
    with pytest.raises(ConfigError, match="the ssd detector has no option pose_people"):   # a mediapipe option is not one of the default base's (ssd)
        validate_options(DetectConfig(backend="sam", options={"pose_people": 1}))
    with pytest.raises(ConfigError, match="the yolo detector has no option tiles"):
        validate_options(DetectConfig(backend="yolo", options={"tiles": "3x2"}))

    env = {**os.environ, "COLUMNS": "200"}
    for flags in (["--detect-opt", "crops=-1"], ["--detect-tiles", "0x2"]):
        proc = subprocess.run([sys.executable, "-m", "privvid.cli.main", "anonymize", str(tmp_path),
                               str(tmp_path / "out"), "--detector", "mediapipe", *flags],
                              capture_output=True, text=True, env=env)
        assert proc.returncode == 2, proc.stdout + proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and "mediapipe detector option" in lines[0], proc.stderr
        assert "Traceback" not in proc.stderr and not (tmp_path / "out").exists()


def test_tiles_run_on_every_kth_frame_only() -> None:
    pytest.importorskip("mediapipe")
    from privvid.detect.mediapipe_backend import MediapipeDetector

    det = MediapipeDetector(DetectConfig(backend="mediapipe", options={"tiles": "3x2", "tile_every": 3}))
    frame = np.full((120, 216, 3), 90, np.uint8)
    det(frame)                                     # frame 0: opens the graphs (a tile frame)

    class Counting:
        def __init__(self, inner):
            self.inner, self.calls = inner, 0

        def process(self, image):
            self.calls += 1
            return self.inner.process(image)

        def close(self):
            self.inner.close()

    det._tile_seg = counting = Counting(det._tile_seg)
    for _ in range(6):                             # frames 1..6: tiles on frames 3 and 6 only
        det(frame)
    det.close()
    assert counting.calls == 2 * 6                 # 3x2 tiles, twice
    assert det.info()["tile_every"] == 3
    with pytest.raises(ConfigError, match="tile_every"):
        MediapipeDetector(DetectConfig(backend="mediapipe", options={"tiles": "3x2", "tile_every": 0}))


def test_stream_run_equals_push_and_flush():
    from fakes import moving_square_frames

    from privvid.config import DetectConfig
    from privvid.detect import build_mask_stream

    cfg = DetectConfig(backend="fakes:ColorKeyDetector", temporal=2, dilate=3)
    frames = moving_square_frames(9)
    stream = build_mask_stream(cfg)
    stream.reset()
    pushed = [m for f in frames for _, m in stream.push(f)]
    pushed += [m for _, m in stream.flush()]
    run = [m for _, m in build_mask_stream(cfg).run(frames)]
    assert len(run) == len(pushed) == 9
    assert all(np.array_equal(a, b) for a, b in zip(run, pushed))


def test_a_model_file_the_detector_would_not_read_is_refused():
    """--weights / --sam-weights given to a built-in detector that never reads them is a ConfigError (it
    would be ignored without a word); sam reads --weights through a yolo base; a plug-in may read either."""
    for kw, said in ((dict(backend="ssd", weights="y.onnx"), "--detector ssd"),
                     (dict(backend="mediapipe", sam_weights="s.pth"), "--sam-weights"),
                     (dict(backend="sam", weights="y.onnx"), "--sam-base ssd"),
                     (dict(backend="yolo", sam_weights="s.pth"), "--detector sam"),
                     (dict(backend="sam", sam_model="vit_x"), "vit_x")):
        with pytest.raises(ConfigError, match=said):
            DetectConfig(**kw)
    assert DetectConfig(backend="sam", sam_base="yolo", weights="y.onnx", sam_weights="s.pth").sam_base == "yolo"
    assert DetectConfig(backend="mypkg.mod:Detector", weights="w.bin").weights == "w.bin"
    assert DetectConfig(backend="sam").sam_base == "ssd"   # SAM refines the multi-person default


def test_stream_vote_drops_a_sliver_one_neighbour_holds_and_keeps_a_missed_limb() -> None:
    # a still scene (zero flow), a person (x 20-30, y 10-40) found on every frame. Frame 0 alone also marks
    # a 1 px sliver along their side (its outline off by a pixel) and frame 4 alone a thick limb (10 x 8);
    # frames 1 and 3 both mark a 1 px sliver on the other side
    body = rect_mask(20, 10, 30, 40)
    sliver, limb, both = rect_mask(30, 10, 31, 40), rect_mask(30, 30, 40, 38), rect_mask(19, 10, 20, 40)
    script = [dets_from([body | sliver]), dets_from([body | both]), dets_from([body]), dets_from([body | both]),
              dets_from([body | limb])]

    def removal(**kw: object) -> np.ndarray:
        cfg = DetectConfig(temporal=2, dilate=0, dilate_rel=0.0, **kw)
        return MaskStream(ScriptedDetector(list(script)), cfg).run([frame()] * 5)[2][1]

    voted = removal(temporal_vote=2, temporal_sliver=0.1)
    assert voted[body].all()
    assert not voted[sliver & ~limb].any()              # one neighbour, thin: the flow's error, scene
    assert voted[both].all()                           # two neighbours agree
    assert voted[limb & ~sliver].mean() >= 0.9 and voted[34, 35]   # one neighbour, thick: a limb this frame
                                                                   # missed (the opening rounds its corners)
    anyone = removal(temporal_vote=1)
    assert anyone[sliver].all() and anyone[both].all()  # the rule before: whatever any neighbour holds
    assert not removal(temporal_vote=3, temporal_sliver=0.1)[both].any()


@pytest.mark.parametrize("kw", [{"temporal_vote": 0}, {"temporal_vote": -1},
                                {"temporal_sliver": -0.1}, {"temporal_sliver": 0.6}])
def test_vote_settings_are_checked(kw: dict) -> None:
    with pytest.raises(ConfigError, match="temporal_(vote|sliver)"):
        DetectConfig(**kw)


def test_stream_vote_keeps_every_neighbour_pixel_by_a_small_person() -> None:
    # 20 px tall: a sliver of a tenth of that (2 px) is under the least margin (3 px), so the sliver that
    # frame 0 alone holds along them stays removed (a small person is segmented only to within a pixel or two)
    body, sliver = rect_mask(20, 10, 26, 30), rect_mask(26, 10, 27, 30)
    script = [dets_from([body | sliver])] + [dets_from([body]) for _ in range(4)]
    cfg = DetectConfig(temporal=2, dilate=0, dilate_rel=0.0, temporal_vote=2, temporal_sliver=0.1)
    removal = MaskStream(ScriptedDetector(script), cfg).run([frame()] * 5)[2][1]
    assert removal[sliver].all()
    tall = [dets_from([rect_mask(20, 4, 26, 44) | rect_mask(26, 4, 27, 44)])] + \
        [dets_from([rect_mask(20, 4, 26, 44)]) for _ in range(4)]
    removal = MaskStream(ScriptedDetector(tall), cfg).run([frame()] * 5)[2][1]
    assert not removal[4:44, 26].any()          # 40 px tall: a 4 px sliver test, and the 1 px one goes


def test_packed_detections_hold_crops_and_unpack_to_the_same():
    rng = np.random.default_rng(3)
    h, w = 90, 160
    masks = np.zeros((3, h, w), bool)
    masks[0, 10:40, 20:35] = rng.random((30, 15)) > 0.3
    masks[1, 0:h, w - 5:w] = True          # at the frame's edges
    extra = np.zeros((h, w), bool)
    extra[50, 60] = True                    # one pixel
    dets = Detections(masks=masks, boxes=rng.random((3, 4)).astype(np.float32),
                      scores=np.array([0.9, 0.5, 0.2], np.float32), track_ids=np.array([4, 7, -1]),
                      keypoints=rng.random((3, 33, 3)).astype(np.float32), extra=extra)
    packed = dets.packed()
    # the third person's mask is empty: nothing is held for it, and the others hold their boxes only
    assert len(packed) == 3 and packed.crops[2][2].size == 0
    assert sum(c.size for _, _, c in packed.crops) + packed.extra[2].size == 30 * 15 + h * 5 + 1
    back = packed.unpack()
    assert np.array_equal(back.masks, masks) and np.array_equal(back.extra, extra)
    for name in ("boxes", "scores", "track_ids", "keypoints"):
        assert np.array_equal(getattr(back, name), getattr(dets, name))
    assert back.world_keypoints is None and back.shape == (h, w)
    none = Detections.empty(h, w).packed().unpack()
    assert none.masks.shape == (0, h, w) and none.extra is None
