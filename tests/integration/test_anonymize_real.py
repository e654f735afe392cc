"""`privvid anonymize` end to end on real clips with the embedded default backends."""

from __future__ import annotations

import json

import av
import numpy as np
import pytest

from privvid.anonymize import anonymize_dataset
from privvid.config import AnonymizeConfig, MeshConfig
from privvid.io import probe


def _decode(path):
    with av.open(str(path)) as c:
        assert not c.streams.audio
        stream = c.streams.video[0]
        fps = float(stream.average_rate)
        return [f.to_ndarray(format="rgb24") for f in c.decode(stream)], fps


def test_remove_on_a_real_clip_keeps_frames_and_rate(shared_data, tmp_path):
    clip = shared_data / "demo-clips" / "propainter_test-sample2.mp4"  # cyclist, 432x240, 24 fps
    info = probe(clip)
    summary = anonymize_dataset(clip, tmp_path, AnonymizeConfig(mode="remove", save_masks=True))
    [outcome] = summary.outcomes
    assert outcome.status == "done", outcome.reason
    frames, fps = _decode(tmp_path / "propainter_test-sample2.mp4")
    assert len(frames) == outcome.frames == info.frames == 80
    assert abs(fps - info.fps) < 0.01
    masks = np.load(tmp_path / "propainter_test-sample2.masks.npz")["masks"]
    assert masks.shape == (80, 240, 432)
    side = json.loads((tmp_path / "propainter_test-sample2.json").read_text())
    assert side["backends"]["detector"]["backend"] == "ssd"
    assert side["input"]["sha256"] and side["output"]["audio"] is False
    # the cyclist is found in most frames and the removed region changed
    assert side["coverage"]["frames_without_person"] < 10
    source = [f for f in av.open(str(clip)).decode(video=0)]
    first = source[40].to_ndarray(format="rgb24").astype(int)
    diff = np.abs(frames[40].astype(int) - first).sum(axis=2)
    assert diff[masks[40]].mean() > 3 * diff[~masks[40]].mean()


def test_mesh_mode_through_the_pipeline(shared_data, tmp_path):
    clip = shared_data / "demo-clips" / "propainter_test-sample1.mp4"  # freerunner, 640x360, 93 frames
    cfg = AnonymizeConfig(mode="mesh", resize=(432, 240), mesh=MeshConfig(save_params=True), save_masks=True)
    [outcome] = anonymize_dataset(clip, tmp_path, cfg).outcomes
    assert outcome.status == "done", outcome.reason
    frames, _ = _decode(tmp_path / "propainter_test-sample1.mp4")
    assert len(frames) == probe(clip).frames
    side = json.loads((tmp_path / "propainter_test-sample1.json").read_text())
    assert side["mode"] == "mesh" and "mesh" in side and len(side["mesh"]["per_frame"]) == len(frames)
    # mesh mode's detector: the pose model's instances, and their landmarks feed the bodies
    assert side["backends"]["detector"]["detector"]["options"]["refine"] == "pose"
    assert side["config"]["detect"]["options"] == {"refine": "pose"}
    assert side["mesh"]["clip"]["landmarks_from_detector"] > 0
    params = np.load(tmp_path / "propainter_test-sample1.params.npz", allow_pickle=False)
    assert len(params.files) > 0
    # grey body pixels appear inside the removal masks of frames where a person was fitted
    masks = np.load(tmp_path / "propainter_test-sample1.masks.npz")["masks"]
    fitted = [i for i, f in enumerate(side["mesh"]["per_frame"]) if any(
        p.get("status") == "ok" for p in f.get("people", []))] if isinstance(side["mesh"]["per_frame"][0], dict) else []
    if not fitted:
        pytest.fail(f"no frame reports a fitted person: {side['mesh']['per_frame'][:2]}")
    i = fitted[len(fitted) // 2]
    rgb = frames[i].astype(int)
    grey = (np.abs(rgb[..., 0] - rgb[..., 1]) < 12) & (np.abs(rgb[..., 1] - rgb[..., 2]) < 12) & (rgb[..., 0] > 90)
    assert (grey & masks[i]).sum() > 50
