"""Regression test for the privacy leak on the two-people demo clip: BOTH people must be removed.

``mmaction2_demo_skeleton_two_people.mp4`` (1920x1080, 72 frames) shows two men standing side by side.
At the pipeline's 432x240 the BlazePose tracker locks onto the right man and the full-frame selfie
model found only part of the left man's head, so he stayed raw in ``--mode remove`` output. The int8
YOLOv8n-seg from ../shared/weights is an independent reference: each person it segments must be
covered by the DEFAULT removal mask. Measured (docs/mask_quality.md): without the crop pass the
worst reference person was covered 39%; with it 100% on every frame.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from privvid.config import MEDIAPIPE_AS_MEASURED, DetectConfig
from privvid.detect import build_mask_stream
from privvid.detect.mediapipe_backend import MediapipeOptions
from privvid.io.video import read_frames

SIZE = (432, 240)
CLIP = "demo-clips/mmaction2_demo_skeleton_two_people.mp4"
STEP = 6           # reference frames sampled: 0, 6, ..., 66
MIN_COVER = 0.95   # share of each reference person mask inside the removal mask
REF_SCORE = 0.5    # reference instances at least this confident


@pytest.fixture(scope="module")
def clip_frames(shared_data: Path) -> list[np.ndarray]:
    frames = list(read_frames(shared_data / CLIP, size=SIZE))
    assert len(frames) >= 60 and frames[0].shape == (SIZE[1], SIZE[0], 3)
    return frames


@pytest.fixture(scope="module")
def reference(clip_frames, shared_weights: Path):
    pytest.importorskip("ultralytics")
    pytest.importorskip("ai_edge_litert")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    weights = shared_weights / "yolov8n-seg_full_integer_quant.tflite"
    stream = build_mask_stream(DetectConfig(backend="yolo", weights=weights, temporal=0, dilate=0,
                                                options={"refine": False}))
    out = {}
    for i in range(0, len(clip_frames), STEP):
        (dets, _), = stream.push(clip_frames[i])
        out[i] = [m for m, s in zip(dets.masks, dets.scores) if s >= REF_SCORE and m.any()]
    return out


MEDIAPIPE = DetectConfig(backend="mediapipe", **MEDIAPIPE_AS_MEASURED)  # the previous default, as measured


@pytest.mark.parametrize("cfg", [DetectConfig(), MEDIAPIPE], ids=["ssd", "mediapipe"])
def test_default_removal_mask_covers_both_people(clip_frames, reference, cfg) -> None:
    stream = build_mask_stream(cfg)
    try:
        outs = stream.run(clip_frames)
    finally:
        stream.detector.close()
    assert len(outs) == len(clip_frames)
    worst = 1.0
    for i, refs in reference.items():
        # the reference must itself see two people, one left and one right of the frame's people centre
        centres = sorted(np.flatnonzero(m.any(axis=0)).mean() for m in refs)
        assert len(refs) >= 2 and centres[-1] - centres[0] > 20, f"frame {i}: reference found {len(refs)} people"
        removal = outs[i][1]
        assert removal.shape == refs[0].shape and removal.dtype == bool
        for m in refs:
            cover = (m & removal).sum() / m.sum()
            worst = min(worst, cover)
            assert cover >= MIN_COVER, f"frame {i}: person at x~{np.flatnonzero(m.any(0)).mean():.0f} " \
                                       f"only {100 * cover:.1f}% removed"
        assert removal.mean() < 0.3  # the two people, not the whole frame
    assert worst >= MIN_COVER


def test_ssd_gives_each_man_his_own_instance_and_track_in_most_frames(clip_frames, reference) -> None:
    """The ssd default: one SSD box and selfie mask per man. During the hug (frames 50-70) the SSD
    sometimes gives one box for both (measured with this test's logic: 21-22 of 24 sampled frames with each man >= 75% in an
    instance of his own, and both removed in every frame, see the test above); the tracks keep
    their ids through a few missed frames."""
    from privvid.detect.common import box_iou, mask_box

    dets = [d for d, _ in build_mask_stream(DetectConfig()).run(clip_frames)]
    good = 0
    for i, refs in reference.items():
        kept: list[np.ndarray] = []
        for m in sorted(refs, key=lambda m: -int(m.sum())):
            if not kept or box_iou(mask_box(m)[None], np.stack([mask_box(k) for k in kept])).max() < 0.3:
                kept.append(m)
        share = np.array([[(r & m).sum() / r.sum() for m in dets[i].masks] for r in kept])
        if share.size == 0:
            continue
        picks = dets[i].track_ids[share.argmax(axis=1)]
        good += bool((share.max(axis=1) >= 0.75).all() and len(set(picks.tolist())) == len(kept))
    assert good >= 0.8 * len(reference), f"{good} of {len(reference)} frames"
    first = dets[0].track_ids.tolist()
    assert len(first) >= 2 and all(len(d) >= 1 for d in dets)


def test_the_region_the_pose_model_follows_is_steady(clip_frames) -> None:
    """``refine=pose`` looks for each man where his landmarks of the frame before put him; with
    ``refine_steady`` (the default) those alignment points pass a one-euro filter first, as in mediapipe's
    tracker, so the region does not shake with the model's noise while the men stand still. The region's
    centre, frame to frame (second difference as a share of its side), first 40 frames, measured
    2026-12-06 with this test's logic: mean 0.0002 steady against 0.0059 raw."""
    from privvid.detect import DETECTORS

    shake = {}
    for steady in (True, False):
        det = DETECTORS.create("ssd", DetectConfig(options={"refine": "pose", "refine_steady": steady}))
        seen: dict[int, list[tuple[int, np.ndarray]]] = {}
        for i, frame in enumerate(clip_frames[:40]):
            det(frame)
            for t in det._tracks:   # (the detector's own tracks: where each one's pose model looks next)
                if t.region is not None and t.region_at == i + 1:
                    seen.setdefault(t.tid, []).append((i, np.asarray(t.region[:3])))
        acc = [np.abs(a[1][:2] - 2 * b[1][:2] + c[1][:2]).sum() / b[1][2]
               for rows in seen.values() for a, b, c in zip(rows, rows[1:], rows[2:]) if c[0] - a[0] == 2]
        assert len(acc) >= 50, (steady, len(acc))   # both men followed through most frames (93 triples)
        shake[steady] = float(np.mean(acc))
    assert shake[True] < 0.2 * shake[False], shake


def test_mediapipe_gives_each_man_his_own_instance_and_track(clip_frames, reference) -> None:
    """The two men stand close enough that the selfie model sees one blob and BlazePose follows
    one of them. The pose cascade (the mediapipe option ``pose_people``) finds the other man with the
    first greyed out, and frames without a pose run cut the blob between the last pose people. So
    in every sampled frame each reference person (int8 YOLOv8n-seg) has >= 75% of his pixels in
    one default instance of his own (measured 83-93%, through the hug at frames 50-70), the two
    men keep two track ids, and on pose frames both have landmarks. Before the cascade the left
    man was only ``extra`` pixels (removed, but no instance, so mesh mode drew no body for him)."""
    from privvid.detect.common import box_iou, mask_box

    stream = build_mask_stream(MEDIAPIPE)
    try:
        dets = [d for d, _ in stream.run(clip_frames)]
    finally:
        stream.detector.close()
    matched_ids = []
    for i, refs in reference.items():
        kept: list[np.ndarray] = []   # the int8 reference sometimes segments one man twice: keep one
        for m in sorted(refs, key=lambda m: -int(m.sum())):
            if not kept or box_iou(mask_box(m)[None], np.stack([mask_box(k) for k in kept])).max() < 0.3:
                kept.append(m)
        refs = kept
        ref_boxes = np.stack([mask_box(m) for m in refs])
        # share of each reference person's pixels inside each default instance
        share = np.array([[(r & m).sum() / r.sum() for m in dets[i].masks] for r in refs])
        best = share.max(axis=1)
        assert (best >= 0.75).all(), f"frame {i}: best share of each reference person {np.round(best, 2)}"
        picks = dets[i].track_ids[share.argmax(axis=1)]
        assert len(set(picks.tolist())) == len(refs), f"frame {i}: two people matched to one instance"
        matched_ids.append(tuple(picks[np.argsort(ref_boxes[:, 0])].tolist()))  # left to right
    # the same two tracks, left man and right man, from the first sampled frame to the last
    assert len(set(matched_ids)) == 1, matched_ids
    pose_frames = dets[::MediapipeOptions().pose_every]
    with_landmarks = [sum(int((k[:, 2] >= 0.5).sum() >= 6) for k in d.keypoints) for d in pose_frames]
    assert np.mean([n >= 2 for n in with_landmarks]) >= 0.9, with_landmarks


def test_sam_refines_the_ssd_default_and_keeps_its_tracks(clip_frames) -> None:
    """``--detector sam`` over the default base (ssd, since it became the default) keeps the SSD's own
    track ids and never reports fewer person pixels than the SSD (what SAM drops stays in ``extra``, removed).
    A tiny random SAM stands in for a
    checkpoint (none is shipped): what is tested is the wiring, not SAM's masks."""
    pytest.importorskip("segment_anything")
    from sam_helpers import tiny_sam

    from privvid.detect.sam_backend import SamRefinedDetector
    from privvid.detect.stream import MaskStream

    frames = clip_frames[:8]
    cfg = DetectConfig(backend="sam")
    sam = SamRefinedDetector(cfg, model=tiny_sam())
    assert sam.base.name == "ssd" and sam.tracks
    refined = MaskStream(sam, cfg)
    assert refined.own_tracks
    plain = build_mask_stream(DetectConfig())
    for (dr, rr), (dp, _) in zip(refined.run(frames), plain.run(frames)):
        assert len(dp) >= 1
        np.testing.assert_array_equal(dr.track_ids, dp.track_ids)
        assert not (dp.union() & ~dr.union()).any() and not (dp.union() & ~rr).any()
    assert sam.info()["base"]["name"] == "ssd"
