"""Curation: sources, K-NEXUS selection rules, seeding, caching and error messages (small generated inputs)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from privvid.curate import CurationError, load_source
from privvid.curate.embed import EmbeddingCache, embed_classes, frame_fraction, read_frame_at
from privvid.curate.knexus import (
    kmeans, knexus_select, nn_similarities, random_select, separation_metrics, separation_report,
)
from privvid.curate.sources import kinetics_stem
from privvid.io.video import VideoWriter


def _write_clip(path: Path, colour: tuple[int, int, int], frames: int = 6, size=(32, 24)) -> Path:
    """A tiny mp4 whose frame i has brightness offset i (so frames are distinguishable)."""
    w, h = size
    with VideoWriter(path, w, h, 10) as writer:
        for i in range(frames):
            frame = np.empty((h, w, 3), np.uint8)
            frame[:] = np.clip(np.array(colour) + 8 * i, 0, 255)
            writer.write(frame)
    return path


class CountingEncoder:
    """Image encoder stand-in: the mean colour of the frame; counts calls."""

    name = "mean-colour"
    dim = 3

    def __init__(self) -> None:
        self.frames = 0

    def encode(self, frames):
        self.frames += len(frames)
        return np.array([f.reshape(-1, 3).mean(0) for f in frames], dtype=np.float32)

    def info(self):
        return {"name": self.name}


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "tree"
    colours = {"red": (200, 10, 10), "green": (10, 200, 10), "blue": (10, 10, 200)}
    for label, colour in colours.items():
        for i in range(2 if label != "blue" else 3):
            _write_clip(root / label / f"v{i}.mp4", colour)
    return root


# --- sources ------------------------------------------------------------------------------

def test_tree_source_lists_classes_and_videos(tree: Path) -> None:
    src = load_source(tree)
    assert src.kind == "tree"
    assert src.labels == ["blue", "green", "red"]
    assert [src.count(label) for label in src.labels] == [3, 2, 2]
    assert all(v.path.is_file() and v.label == label for label, vs in src.classes.items() for v in vs)
    assert src.unclassed == []
    _write_clip(tree / "loose.mp4", (90, 90, 90))     # in no class folder: not used, but named
    src = load_source(tree)
    assert src.unclassed == ["loose.mp4"] and [src.count(label) for label in src.labels] == [3, 2, 2]


def test_empty_class_folder_is_a_clear_error(tree: Path) -> None:
    (tree / "empty_class").mkdir()
    with pytest.raises(CurationError, match="empty_class"):
        load_source(tree)


def test_labels_only_rejects_duplicates_and_empty_files(tmp_path: Path) -> None:
    good = tmp_path / "labels.txt"
    good.write_text("b\n# comment\n\na\n")
    assert load_source(None, labels_only=good).labels == ["a", "b"]
    dup = tmp_path / "dup.txt"
    dup.write_text("a\nb\na\n")
    with pytest.raises(CurationError, match="listed twice"):
        load_source(None, labels_only=dup)
    empty = tmp_path / "empty.txt"
    empty.write_text("\n# nothing\n")
    with pytest.raises(CurationError, match="no class names"):
        load_source(None, labels_only=empty)


def _csv(path: Path, rows: list[tuple]) -> Path:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["label", "youtube_id", "time_start", "time_end", "split"])
        writer.writerows(rows)
    return path


def test_csv_source_counts_and_resolves_files(tmp_path: Path) -> None:
    ann = _csv(tmp_path / "train.csv", [("abseiling", "aaa", 0, 10, "train"), ("abseiling", "bbb", 5, 15, "train"),
                                        ("juggling", "ccc", 1, 11, "train"), ("juggling", "ddd", 1, 11, "val")])
    src = load_source(ann, split="train")
    assert src.counts == {"abseiling": 2, "juggling": 1}
    assert all(v.path is None for vs in src.classes.values() for v in vs)

    root = tmp_path / "videos"
    _write_clip(root / "abseiling" / f"{kinetics_stem({'youtube_id': 'aaa', 'time_start': '0', 'time_end': '10'})}.mp4", (50, 50, 50))
    _write_clip(root / "juggling" / "ccc_000001_000011.mp4", (90, 90, 90))
    src = load_source(ann, video_root=root, split="train")
    assert src.counts == {"abseiling": 1, "juggling": 1}   # files found, not annotation rows
    assert src.missing == ["bbb_000005_000015"]
    assert src.classes["juggling"][0].path.name == "ccc_000001_000011.mp4"


def test_csv_errors_name_the_problem(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("name,url\nx,y\n")
    with pytest.raises(CurationError, match="youtube_id"):
        load_source(bad)
    ann = _csv(tmp_path / "a.csv", [("abseiling", "aaa", 0, 10, "train")])
    (tmp_path / "empty_root").mkdir()
    with pytest.raises(CurationError, match="no video under"):
        load_source(ann, video_root=tmp_path / "empty_root")
    with pytest.raises(CurationError, match="either SOURCE or --labels-only"):
        load_source(ann, labels_only=ann)


# --- frames, embeddings, cache --------------------------------------------------------------

def test_frame_choice_is_seeded_and_order_independent(tmp_path: Path) -> None:
    assert frame_fraction(0, "a/v0") == frame_fraction(0, "a/v0")
    fractions = {frame_fraction(seed, "a/v0") for seed in range(20)}
    assert len(fractions) == 20 and all(0 <= f < 1 for f in fractions)
    clip = _write_clip(tmp_path / "c.mp4", (0, 0, 0), frames=10)
    for fraction, expected in ((0.0, 0), (0.55, 5), (0.99, 9)):
        frame, index = read_frame_at(clip, fraction)
        assert index == expected
        assert abs(float(frame.mean()) - 8 * expected) < 3  # brightness encodes the frame number


def test_embedding_cache_makes_a_rerun_read_no_video(tree: Path, tmp_path: Path) -> None:
    src = load_source(tree)
    cache_path = tmp_path / "cache.sqlite"
    first_enc = CountingEncoder()
    cache = EmbeddingCache(cache_path)
    first = embed_classes(src, first_enc, None, seed=3, cache=cache)
    cache.close()
    assert first_enc.frames == 7 and first.cache["misses"] == 7

    second_enc = CountingEncoder()
    cache = EmbeddingCache(cache_path)
    second = embed_classes(src, second_enc, None, seed=3, cache=cache)
    cache.close()
    assert second_enc.frames == 0 and second.cache["hits"] == 7
    np.testing.assert_allclose(first.vectors, second.vectors, rtol=1e-6)
    assert first.frames == second.frames

    third_enc = CountingEncoder()  # another seed picks other frames: not a cache hit
    cache = EmbeddingCache(cache_path)
    embed_classes(src, third_enc, None, seed=4, cache=cache)
    cache.close()
    assert third_enc.frames == 7


def test_class_means_separate_the_colours(tree: Path) -> None:
    emb = embed_classes(load_source(tree), CountingEncoder(), None, seed=0)
    red, green, blue = (emb.vectors[emb.labels.index(c)] for c in ("red", "green", "blue"))
    assert np.argmax(red) == 0 and np.argmax(green) == 1 and np.argmax(blue) == 2
    assert emb.used == {"blue": 3, "green": 2, "red": 2}


def test_unreadable_video_is_skipped_or_fails(tree: Path) -> None:
    (tree / "red" / "broken.mp4").write_bytes(b"this is not a video")
    src = load_source(tree)
    with pytest.warns(UserWarning, match="broken.mp4"):
        emb = embed_classes(src, CountingEncoder(), None, seed=0)
    assert [s["key"] for s in emb.skipped] == ["red/broken"]
    assert emb.used["red"] == 2
    with pytest.raises(CurationError, match="broken.mp4"):
        embed_classes(src, CountingEncoder(), None, seed=0, on_error="fail")


def test_a_class_with_only_unreadable_videos_is_left_out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With --on-error skip (the default) such a class is no candidate, named with why; with fail the run
    stops at its first video; a --k the readable classes cannot give is refused before anything is written."""
    from privvid.curate import CurateConfig, curate
    from privvid.curate import run as run_module

    root = tmp_path / "t"
    _write_clip(root / "ok" / "v.mp4", (10, 10, 10))
    _write_clip(root / "fine" / "v.mp4", (10, 200, 10))
    (root / "bad").mkdir()
    (root / "bad" / "x.mp4").write_bytes(b"")
    with pytest.warns(UserWarning):
        emb = embed_classes(load_source(root), CountingEncoder(), None)
    assert emb.labels == ["fine", "ok"] and emb.vectors.shape[0] == 2
    assert list(emb.dropped) == ["bad"] and "empty file" in emb.dropped["bad"]
    with pytest.raises(CurationError, match="x.mp4"):
        embed_classes(load_source(root), CountingEncoder(), None, on_error="fail")
    monkeypatch.setattr(run_module, "_encoders", lambda cfg: (CountingEncoder(), None))
    cfg = CurateConfig(k=2, text_encoder=None, random_draws=2, cache=None)
    with pytest.warns(UserWarning):
        res = curate(load_source(root), tmp_path / "out", cfg)
    assert sorted(res.selection.selected) == ["fine", "ok"] and list(res.dropped) == ["bad"]
    doc = json.loads((tmp_path / "out" / "selection.json").read_text())
    assert list(doc["dropped_classes"]) == ["bad"]
    with pytest.warns(UserWarning), pytest.raises(CurationError, match="--k 3 but only 2 classes have a readable video"):
        curate(load_source(root), tmp_path / "out3", CurateConfig(k=3, text_encoder=None, random_draws=2, cache=None))
    assert not (tmp_path / "out3").exists()


def test_unreadable_videos_do_not_count_towards_a_class_size(tree: Path, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """K-NEXUS keeps the class with the most videos per cluster: files it could not read are not videos.
    red has 2 readable clips and blue 3; two broken files in red must not make red the bigger one."""
    from privvid.curate import CurateConfig, curate
    from privvid.curate import run as run_module

    (tree / "red" / "junk1.mp4").write_bytes(b"not a video at all")
    (tree / "red" / "junk2.mp4").write_bytes(b"nor this")
    with pytest.warns(UserWarning):
        emb = embed_classes(load_source(tree), CountingEncoder(), None)
    assert emb.counts == {"blue": 3, "green": 2, "red": 2}
    monkeypatch.setattr(run_module, "_encoders", lambda cfg: (CountingEncoder(), None))
    with pytest.warns(UserWarning):
        curate(load_source(tree), tmp_path / "out", CurateConfig(k=1, text_encoder=None, random_draws=2, cache=None))
    doc = json.loads((tmp_path / "out" / "selection.json").read_text())
    assert doc["selected"] == ["blue"] and doc["source"]["videos"] == 7


def test_reference_overlap_matches_names_as_lists_spell_them(tree: Path, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """A tree's ``tai_chi`` is a CSV's ``tai chi``; the overlap goes into selection.json; a reference
    list that cannot be read is refused before anything is embedded or written."""
    from privvid.curate import CurateConfig, curate, overlap
    from privvid.curate import run as run_module

    shared = overlap(["tai_chi", "clean_and_jerk", "archery"], ["Tai Chi", '"clean and jerk"', "abseiling"])
    assert shared["shared"] == 2 and shared["shared_classes"] == ["clean_and_jerk", "tai_chi"]
    assert shared["jaccard"] == pytest.approx(2 / 4)
    reference = tmp_path / "ref.txt"
    reference.write_text("# colours\nRed\nyellow\n")
    monkeypatch.setattr(run_module, "_encoders", lambda cfg: (CountingEncoder(), None))
    cfg = CurateConfig(k=3, text_encoder=None, random_draws=2, cache=None, reference=(reference,))
    res = curate(load_source(tree), tmp_path / "out", cfg)
    doc = json.loads((tmp_path / "out" / "selection.json").read_text())
    assert doc["reference_overlap"] == res.overlaps
    assert res.overlaps[0]["shared_classes"] == ["red"] and res.overlaps[0]["reference"] == 2
    encoder = CountingEncoder()
    monkeypatch.setattr(run_module, "_encoders", lambda cfg: (encoder, None))
    with pytest.raises(CurationError, match="cannot read reference list"):
        curate(load_source(tree), tmp_path / "out2",
               CurateConfig(k=3, text_encoder=None, cache=None, reference=(tmp_path / "nope.txt",)))
    assert encoder.frames == 0 and not (tmp_path / "out2").exists()


@pytest.mark.parametrize("seed", [-1, 2 ** 32, True])
def test_a_seed_sklearn_and_numpy_refuse_is_refused_before_any_work(tree: Path, tmp_path: Path, seed: object,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from privvid.curate import CurateConfig, curate
    from privvid.curate import run as run_module

    encoder = CountingEncoder()
    monkeypatch.setattr(run_module, "_encoders", lambda cfg: (encoder, None))
    with pytest.raises(CurationError, match="--seed must be a whole number from 0 to 4294967295"):
        curate(load_source(tree), tmp_path / "out", CurateConfig(k=2, seed=seed, text_encoder=None, cache=None))  # type: ignore[arg-type]
    assert encoder.frames == 0 and not (tmp_path / "out").exists()


# --- selection ------------------------------------------------------------------------------

def _blobs(rng: np.random.Generator, centres: int = 4, per: int = 3, dim: int = 8):
    base = np.eye(dim)[:centres] * 5
    vecs = np.concatenate([c + rng.normal(0, 0.05, (per, dim)) for c in base])
    labels = [f"c{i}_{j}" for i in range(centres) for j in range(per)]
    return labels, vecs.astype(np.float32)


def test_knexus_keeps_the_largest_class_of_each_cluster(rng: np.random.Generator) -> None:
    labels, vecs = _blobs(rng)
    counts = {label: 10 for label in labels}
    counts.update({"c0_2": 50, "c1_0": 40, "c2_1": 30, "c3_2": 20})
    sel = knexus_select(labels, vecs, counts, k=4, seed=0)
    assert sorted(sel.selected) == ["c0_2", "c1_0", "c2_1", "c3_2"]
    for cluster in sel.clusters:
        prefix = cluster["selected"][:2]
        assert all(m.startswith(prefix) for m in cluster["members"]) and len(cluster["members"]) == 3


def test_knexus_tie_break_is_nearest_to_centre_then_name() -> None:
    labels = ["b_far", "a_far", "mid"]
    vecs = np.array([[0.0, 1.0], [0.0, -1.0], [0.0, 0.0]], np.float32)
    sel = knexus_select(labels, vecs, {label: 5 for label in labels}, k=1, seed=0)
    assert sel.selected == ["mid"]
    vecs = np.array([[0.0, 1.0], [0.0, -1.0]], np.float32)  # equal distances: the name decides
    sel = knexus_select(["b", "a"], vecs, {"a": 1, "b": 1}, k=1, seed=0)
    assert sel.selected == ["a"]


def test_kmeans_is_reproducible_per_seed(rng: np.random.Generator) -> None:
    vecs = rng.normal(size=(60, 5)).astype(np.float32)
    labels = [f"l{i}" for i in range(60)]
    counts = {label: 1 for label in labels}
    a = knexus_select(labels, vecs, counts, k=7, seed=11, restarts=3)
    b = knexus_select(labels, vecs, counts, k=7, seed=11, restarts=3)
    assert a.selected == b.selected and a.clusters == b.clusters and a.inertia == b.inertia
    seeds = {tuple(knexus_select(labels, vecs, counts, k=7, seed=s, restarts=1).selected) for s in range(6)}
    assert len(seeds) > 1  # the seed matters on unstructured data


def test_k_bounds_are_clear_errors(rng: np.random.Generator) -> None:
    labels, vecs = _blobs(rng)
    with pytest.raises(CurationError, match="larger than the number of classes"):
        knexus_select(labels, vecs, {}, k=13)
    with pytest.raises(CurationError, match="at least 1"):
        random_select(labels, 0)
    every = knexus_select(labels, vecs, {}, k=12)
    assert sorted(every.selected) == sorted(labels)
    assert kmeans(vecs, 12, 0)[2] == 0.0


def test_random_selection_is_seeded() -> None:
    labels = [f"l{i:02d}" for i in range(40)]
    a, b, c = random_select(labels, 10, 1), random_select(labels, 10, 1), random_select(labels, 10, 2)
    assert a.selected == b.selected and a.selected != c.selected
    assert len(set(a.selected)) == 10 and set(a.selected) <= set(labels)


def test_separation_metrics_match_hand_computation() -> None:
    vecs = np.array([[1, 0, 0], [0.6, 0.8, 0], [0, 0, 1], [0, 1, 0]], np.float32)
    # pairwise cosine: (0,1)=0.6 (0,2)=0 (0,3)=0 (1,2)=0 (1,3)=0.8 (2,3)=0
    np.testing.assert_allclose(nn_similarities(vecs), [0.6, 0.8, 0.0, 0.8], atol=1e-6)
    m = separation_metrics(vecs, np.array([0, 1, 2]))
    assert m["mean_nn_similarity"] == pytest.approx((0.6 + 0.6 + 0.0) / 3)
    assert m["max_pair_similarity"] == pytest.approx(0.6)
    assert m["mean_pair_similarity"] == pytest.approx(0.6 / 3)
    # class 3's best match among {0, 1, 2} is 1 (0.8); the others match themselves (1.0)
    assert m["coverage_similarity"] == pytest.approx((1 + 1 + 1 + 0.8) / 4)


def test_separation_report_prefers_knexus_on_clustered_data(rng: np.random.Generator) -> None:
    labels, vecs = _blobs(rng, centres=5, per=4, dim=10)
    unit = vecs / np.linalg.norm(vecs, axis=1, keepdims=True)
    sel = knexus_select(labels, unit, {}, k=5, seed=0)
    rep = separation_report(labels, unit, sel, random_draws=50, seed=0)
    nn = rep["metrics"]["mean_nn_similarity"]
    assert nn["selected"] < nn["random_mean"]   # one class per blob beats random picks
    assert nn["random_at_least_as_good"] < 0.1
    assert len(rep["nn_selected"]) == 5
