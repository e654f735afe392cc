"""Reviewing at scale: preview videos (original, anonymised, mask overlay) with the written-frame
check's and the audit's marks, the review order, one verdict file per reviewer, byte ranges for
video seeking, and the page in headless Chromium: keyboard review, undo, playing and scrubbing,
the overlay toggle, and lazy loading of a 750-clip page."""

from __future__ import annotations


import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from fakes import write_slow_then_fast
from qa_helpers import request, wait_for
from privvid.cli.main import app
from privvid.errors import ConfigError
from privvid.io.masks import MaskWriter
from privvid.io.video import VideoWriter, probe, read_frames
from privvid.qa import QAError, make_server, sample
from privvid.qa.sheet import check_reviewer, reviewer_file, write_sheet

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
KEY_VERDICTS = {"1": "pass", "2": "person_visible", "3": "artefact", "4": "occlusion",
                "p": "pass", "v": "person_visible", "a": "artefact", "o": "occlusion"}


def _video(path: Path, values: list[int], size: tuple[int, int], fps: float = 10) -> Path:
    """Frame i is grey at ``values[i]``."""
    w, h = size
    with VideoWriter(path, w, h, fps) as writer:
        for value in values:
            writer.write(np.full((h, w, 3), value, np.uint8))
    return path


def _dataset(root: Path, originals: Path, with_extras: bool = True) -> Path:
    """Two clips of class ``jump`` (12 frames, 10 fps): clip0 with masks (a square in frames 3-8) and
    two frames flagged by the written-frame check; an audit CSV that flags clip1."""
    for i in range(2):
        original = _video(originals / f"jump/clip{i}.mp4", [20 + 15 * k for k in range(12)], (96, 72))
        _video(root / f"jump/clip{i}.mp4", [40 + 10 * k for k in range(12)], (64, 48))
        side = {"privvid_version": "test", "mode": "remove", "input": {"path": str(original.resolve())},
                "output": {"frames": 12}, "backends": {"detector": {"name": "mediapipe"}}}
        if i == 0 and with_extras:
            side["check"] = {"name": "ssd+blazeface", "frames_flagged": 2, "per_frame": [
                {"frame": 7, "found": [{"kind": "face"}], "action": "refilled"},
                {"frame": 4, "found": [{"kind": "person"}, {"kind": "face"}], "action": "solid"}]}
            writer = MaskWriter(root / "jump/clip0.masks.npz", 48, 64)
            for k in range(12):
                mask = np.zeros((48, 64), bool)
                if 3 <= k <= 8:
                    mask[8:40, 16:48] = True
                writer.write(mask)
            writer.commit()
        (root / f"jump/clip{i}.json").write_text(json.dumps(side))
    if with_extras:
        (root / ".privvid").mkdir()
        (root / ".privvid/audit.csv").write_text(
            "rank,rel,class,flagged,suspicion,reason\n1,jump/clip1,jump,True,0.7500,person on 12/16 frames\n"
            "2,jump/clip0,jump,False,0.0000,\n")
    return root


@pytest.fixture(scope="module")
def previews(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("previews")
    root = _dataset(base / "anon", base / "orig")
    sample(root, base / "qa", per_class=2, seed=0, frames=2, thumb_height=32, preview_seconds=0.8)
    write_sheet(base / "qa")
    return base / "qa"


def test_sample_writes_previews_in_step_with_masks_marks_and_audit(previews: Path) -> None:
    doc = json.loads((previews / "sample.json").read_text())
    assert doc["order"] == "class" and doc["audit"].endswith("audit.csv")  # found under DATASET/.privvid
    first, second = doc["items"]
    assert first["rel"] == "jump/clip0" and not first["problems"] and first["clip_frames"] == 12
    p = first["preview"]
    assert (p["frames"], p["fps"], p["width"], p["height"]) == (8, 10.0, 42, 32)  # 0.8 s of 10 fps, thumb size
    assert p["mask"] == "media/0000_mask.mp4" and second["preview"]["mask"] is None
    decoded = {kind: list(read_frames(previews / p[kind])) for kind in ("anonymised", "original", "mask")}
    for kind, frames in decoded.items():
        assert len(frames) == 8 and frames[0].shape == (32, 42, 3), kind
        assert probe(previews / p[kind]).codec == "h264"
    # frame k of both previews shows frame k of each clip: the same moment
    np.testing.assert_allclose([f.mean() for f in decoded["anonymised"]], [40 + 10 * k for k in range(8)], atol=4)
    np.testing.assert_allclose([f.mean() for f in decoded["original"]], [20 + 15 * k for k in range(8)], atol=4)
    mask = decoded["mask"]
    assert mask[0].max() < 30  # black where there is no mask
    inside, outside = mask[5][16, 21], mask[5][2, 2]
    assert inside[0] > 200 and inside[1] < 90 and outside.max() < 30  # the mask's square, tinted red
    assert first["marks"] == [{"frame": 4, "action": "solid", "found": ["face", "person"]},
                              {"frame": 7, "action": "refilled", "found": ["face"]}]
    assert first["audit"] == {"flagged": False, "suspicion": 0.0, "reason": "", "rank": 2}
    assert second["audit"]["flagged"] and second["audit"]["suspicion"] == 0.75
    page = (previews / "index.html").read_text()
    assert "media/0000_mask.mp4" in page and '"marks"' in page


@pytest.mark.parametrize("given", [None, 20.0])
def test_a_variable_rate_originals_preview_is_read_as_anonymize_read_it(tmp_path: Path, given: float | None) -> None:
    """The original is variable-rate (ten slow frames, twenty fast). Anonymised without --fps, every frame was
    kept once at the mean rate: the original's preview shows frame k beside the anonymised frame k, not the
    frame on screen at k / fps. With --fps 20 both are the frames on screen every 50 ms."""
    (tmp_path / "orig/jump").mkdir(parents=True)
    original = write_slow_then_fast(tmp_path / "orig/jump/clip0.mp4")
    info = probe(original)
    frames = list(read_frames(original, fps=given, info=info))
    root = tmp_path / "anon"
    with VideoWriter(root / "jump/clip0.mp4", 64, 48, given or info.fps) as writer:
        for frame in frames:
            writer.write(frame)
    (root / "jump/clip0.json").write_text(json.dumps({
        "privvid_version": "test", "mode": "remove", "input": {"path": str(original.resolve())},
        "output": {"frames": len(frames)}, "config": {"fps": given}, "backends": {"detector": {"name": "ssd"}}}))
    sample(root, tmp_path / "qa", per_class=1, seed=0, frames=2, thumb_height=48, preview_seconds=3)
    p = json.loads((tmp_path / "qa/sample.json").read_text())["items"][0]["preview"]
    shown = {kind: [int(round(float(f.mean()) / 8)) for f in read_frames(tmp_path / "qa" / p[kind])]
             for kind in ("anonymised", "original")}
    assert shown["original"] == shown["anonymised"], shown
    assert len(shown["original"]) == (31 if given else 30)


def test_review_order_class_random_and_risk(tmp_path: Path) -> None:
    root = tmp_path / "anon"
    for label, n in (("a", 4), ("b", 4)):
        for i in range(n):
            _video(root / f"{label}/c{i}.mp4", [50, 60], (32, 24))
            (root / f"{label}/c{i}.json").write_text(json.dumps({"privvid_version": "test", "mode": "remove",
                                                                    "input": {"path": "x.mp4"}}))
    audit = tmp_path / "audit.csv"
    audit.write_text("rank,rel,flagged,suspicion,reason\n1,b/c2,True,0.9000,face\n2,a/c3,True,0.5000,person\n"
                     "3,a/c0,False,0.2500,\n4,b/c1,False,0.0000,\n")
    kw = {"per_class": 3, "seed": 1, "frames": 1, "preview_seconds": 0}
    by_class = [i["rel"] for i in sample(root, tmp_path / "q1", **kw).items]
    assert by_class == sorted(by_class) and len(by_class) == 6
    shuffled = [i["rel"] for i in sample(root, tmp_path / "q2", order="random", **kw).items]
    assert sorted(shuffled) == by_class and shuffled != by_class
    assert [i["rel"] for i in sample(root, tmp_path / "q3", order="random", **kw).items] == shuffled
    risky = sample(root, tmp_path / "q4", order="risk", audit_csv=audit, **kw).items
    known = [i["rel"] for i in risky if i["audit"] is not None]
    expected = [rel for rel in ("b/c2", "a/c3", "a/c0", "b/c1") if rel in by_class]
    assert known == expected and [i["rel"] for i in risky][:len(known)] == known  # clips the audit lacks: last
    assert [i["id"] for i in risky] == [f"{k:04d}" for k in range(6)]  # ids follow the page order
    page_doc = json.loads((tmp_path / "q4" / "sample.json").read_text())
    assert page_doc["order"] == "risk" and [i["rel"] for i in page_doc["items"]] == [i["rel"] for i in risky]
    with pytest.raises(QAError, match="--order risk needs"):
        sample(root, tmp_path / "q5", order="risk", **kw)
    result = CliRunner().invoke(app, ["qa", "sample", str(root), "--out", str(tmp_path / "q6"), "--order", "size"])
    assert result.exit_code == 2 and "--order must be one of" in result.output


def test_reviewer_names_are_file_name_tokens(tmp_path: Path) -> None:
    assert check_reviewer("ann_B-2") == "ann_B-2" and reviewer_file("bo") == "verdicts-bo.json"
    for bad in ("", "a/b", "../x", "ann bob", "x" * 41, "é", "a.json"):
        with pytest.raises(ConfigError):
            check_reviewer(bad)
    runner = CliRunner()
    for bad in ("../../etc/x", "a b", "x" * 41):
        result = runner.invoke(app, ["qa", "serve", str(tmp_path), "--reviewer", bad, "--port", "0"])
        assert result.exit_code == 2 and "--reviewer must be" in result.output, result.output


def _folder(folder: Path, n: int, frames: int = 1, videos: bool = True) -> Path:
    """A QA folder as `privvid qa sample` writes it, generated: ``n`` clips over 15 classes, each
    with ``frames`` JPEG frames per side and (``videos``) preview mp4s, all tiny copies."""
    import cv2

    media = folder / "media"
    media.mkdir(parents=True)
    jpeg = cv2.imencode(".jpg", np.full((24, 32, 3), 90, np.uint8))[1].tobytes()
    tiny = _video(folder / "tiny.mp4", [30, 60, 90, 120, 150, 180, 210, 240], (32, 24)).read_bytes()
    items = []
    for i in range(n):
        item_id = f"{i:04d}"
        label = f"class{i % 15:02d}"
        item = {"id": item_id, "class": label, "rel": f"{label}/clip{i:04d}", "mode": "remove", "problems": [],
                "original_frames": [], "anonymised_frames": [], "preview": None, "marks": [], "audit": None}
        for kind, key in (("orig", "original_frames"), ("anon", "anonymised_frames")):
            for k in range(frames):
                name = f"media/{item_id}_{kind}_{k:02d}.jpg"
                (folder / name).write_bytes(jpeg)
                item[key].append(name)
        if videos:
            for kind in ("orig", "anon"):
                (media / f"{item_id}_{kind}.mp4").write_bytes(tiny)
            item["preview"] = {"anonymised": f"media/{item_id}_anon.mp4", "original": f"media/{item_id}_orig.mp4",
                               "mask": None, "frames": 8, "fps": 10.0, "width": 32, "height": 24}
        items.append(item)
    (folder / "sample.json").write_text(json.dumps({"dataset": "/data/out", "seed": 0, "per_class": 50,
                                                    "order": "class", "items": items}))
    return folder


class _Served:
    def __init__(self, folder: Path, **kwargs) -> None:
        self.server = make_server(folder, port=0, **kwargs)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self.server

    def __exit__(self, *_: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_a_reviewer_server_saves_to_its_own_file_under_its_name(tmp_path: Path) -> None:
    folder = _folder(tmp_path / "qa", 3, videos=False)
    with _Served(folder, reviewer="ann") as server:
        assert Path(server.RequestHandlerClass.verdicts_path).name == "verdicts-ann.json"
        _, _, page = request(server, "GET", "/index.html")
        token = server.token
        assert b'"reviewer": "ann"' in page and b'"verdicts_file": "verdicts-ann.json"' in page
        doc = {"reviewer": "mallory", "verdicts": {"0001": {"verdict": "artefact", "note": "seam"}}}
        status, _, _ = request(server, "POST", "/api/verdicts", json.dumps(doc).encode(),
                                {"Content-Type": "application/json", "X-Privvid-Token": token})
        assert status == 200
        status, _, body = request(server, "GET", "/api/verdicts")
        assert status == 200 and json.loads(body)["verdicts"]["0001"]["verdict"] == "artefact"
    saved = json.loads((folder / "verdicts-ann.json").read_text())
    assert saved["reviewer"] == "ann" and saved["verdicts"]["0001"]["class"] == "class01"
    assert not (folder / "verdicts.json").exists()
    with pytest.raises(ConfigError):
        make_server(folder, port=0, reviewer="../ann")
    result = CliRunner().invoke(app, ["qa", "report", str(folder / "verdicts-ann.json")])
    assert result.exit_code == 0 and "0.0% (0/1)" in result.output


def test_media_are_served_in_byte_ranges(tmp_path: Path) -> None:
    folder = _folder(tmp_path / "qa", 1)
    data = (folder / "media" / "0000_anon.mp4").read_bytes()
    size = len(data)
    with _Served(folder) as server:
        path = "/media/0000_anon.mp4"
        status, headers, body = request(server, "GET", path)
        assert status == 200 and body == data and headers["accept-ranges"] == "bytes"
        assert headers["content-type"] == "video/mp4"
        for asked, (start, end) in (("bytes=0-3", (0, 3)), ("bytes=10-", (10, size - 1)),
                                    ("bytes=-5", (size - 5, size - 1)), (f"bytes=4-{size + 50}", (4, size - 1))):
            status, headers, body = request(server, "GET", path, headers={"Range": asked})
            assert status == 206 and body == data[start:end + 1], asked
            assert headers["content-range"] == f"bytes {start}-{end}/{size}"
        status, headers, body = request(server, "GET", path, headers={"Range": f"bytes={size}-"})
        assert status == 416 and headers["content-range"] == f"bytes */{size}" and body == b""
        status, _, body = request(server, "GET", path, headers={"Range": "bytes=0-1,4-5"})  # several: all of it
        assert status == 200 and body == data
        status, _, body = request(server, "GET", "/sample.json", headers={"Range": "bytes=0-3"})
        assert status == 404 and body == b""  # ranges change nothing about what is served
        status, _, body = request(server, "GET", path, headers={"Range": "bytes=0-3", "Host": "evil.example"})
        assert status == 403 and body == b""


# --- in the browser -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    playwright = pytest.importorskip("playwright.sync_api")
    if not CHROMIUM.exists():
        pytest.skip("Debian chromium not installed (apt-get install -y chromium)")
    with playwright.sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def _url(server) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}/index.html"


def test_twenty_clips_reviewed_by_keyboard_only(browser, tmp_path: Path) -> None:
    folder = _folder(tmp_path / "qa", 30, videos=False)
    keys = list(KEY_VERDICTS)
    with _Served(folder, reviewer="ann") as server:
        page = browser.new_page()
        page.goto(_url(server))
        page.wait_for_selector("body[data-ready='1']")
        assert page.is_visible("#legend") and "next clip without a verdict" in page.inner_text("#legend")
        assert page.input_value("#reviewer") == "ann" and page.get_attribute("#reviewer", "readonly") is not None
        assert page.get_attribute("body", "data-current") == "0000"
        for i in range(20):
            page.keyboard.press(keys[i % len(keys)])
            page.keyboard.press("n")
        assert page.get_attribute("body", "data-current") == "0020"
        assert "current" in page.get_attribute("#clip-0020", "class")
        in_view = page.evaluate("(() => { const r = document.getElementById('clip-0020').getBoundingClientRect();"
                                " return r.top >= 0 && r.bottom <= innerHeight; })()")
        assert in_view
        doc = wait_for(folder / "verdicts-ann.json", lambda d: len(d["verdicts"]) == 20)
        assert "20 / 30 reviewed" in page.inner_text("#progress")
        page.close()
    assert doc["reviewer"] == "ann"
    assert {k: v["verdict"] for k, v in doc["verdicts"].items()} == {
        f"{i:04d}": KEY_VERDICTS[keys[i % len(keys)]] for i in range(20)}
    assert not (folder / "verdicts.json").exists()


def test_undo_k_and_keys_typed_into_a_note(browser, tmp_path: Path) -> None:
    folder = _folder(tmp_path / "qa", 6, videos=False)
    verdicts = folder / "verdicts.json"
    with _Served(folder) as server:
        page = browser.new_page()
        page.goto(_url(server))
        page.wait_for_selector("body[data-interactive='1']")

        def shown(item_id: str) -> list[str]:
            return page.eval_on_selector_all(f"#clip-{item_id} button[data-verdict].on",
                                             "bs => bs.map(b => b.dataset.verdict)")

        page.keyboard.press("1")
        page.keyboard.press("3")
        assert shown("0000") == ["artefact"]
        page.keyboard.press("u")
        assert shown("0000") == ["pass"]
        wait_for(verdicts, lambda d: d["verdicts"].get("0000", {}).get("verdict") == "pass")
        page.keyboard.press("n")
        page.keyboard.press("o")
        page.keyboard.press("k")  # back to the first clip; undo goes to the clip it changes
        assert page.get_attribute("body", "data-current") == "0000"
        page.keyboard.press("u")
        assert shown("0001") == [] and page.get_attribute("body", "data-current") == "0001"
        page.keyboard.press("u")
        assert shown("0000") == [] and "0 / 6 reviewed" in page.inner_text("#progress")
        wait_for(verdicts, lambda d: d["verdicts"] == {})
        # typing a note triggers nothing, Esc leaves the field and the keys work again
        page.keyboard.press("4")
        page.click("#clip-0000 textarea")
        page.keyboard.type("a1nku vm 2")
        assert page.input_value("#clip-0000 textarea") == "a1nku vm 2"
        assert shown("0000") == ["occlusion"] and page.get_attribute("body", "data-current") == "0000"
        wait_for(verdicts, lambda d: d["verdicts"].get("0000", {}).get("note") == "a1nku vm 2")
        page.keyboard.press("Escape")
        page.keyboard.press("2")
        assert shown("0000") == ["person_visible"]
        doc = wait_for(verdicts, lambda d: d["verdicts"]["0000"]["verdict"] == "person_visible")
        assert doc["verdicts"]["0000"]["note"] == "a1nku vm 2"  # a verdict change keeps the note
        page.close()


def test_videos_play_in_step_scrub_and_the_overlay_toggles(browser, previews: Path) -> None:
    with _Served(previews) as server:
        page = browser.new_page()
        page.goto(_url(server))
        page.wait_for_selector("body[data-ready='1']")
        card = "#clip-0000"
        page.wait_for_function("(() => { const vs = document.querySelectorAll('#clip-0000 video');"
                               " return vs.length === 3 && [...vs].every(v => !v.paused && v.currentTime > 0); })()",
                               timeout=10000)
        assert page.locator(f"{card} video.v-orig").count() == 1 and page.locator("#clip-0001 video").count() == 2
        overlay = f"{card} video.v-mask"
        assert page.is_hidden(overlay)
        page.keyboard.press("m")
        assert page.is_visible(overlay) and "on" in page.get_attribute(f"{card} .mask-toggle", "class")
        page.click(f"{card} .mask-toggle")
        assert page.is_hidden(overlay)
        page.keyboard.press("m")
        assert page.is_visible(overlay)
        # one scrubber seeks all three and pauses them
        page.eval_on_selector(f"{card} input.scrub", "s => { s.value = '5'; s.dispatchEvent(new Event('input')); }")
        times = page.eval_on_selector_all(f"{card} video", "vs => vs.map(v => [v.paused, v.currentTime])")
        assert all(paused and abs(t - 0.55) < 1e-6 for paused, t in times), times
        assert page.inner_text(f"{card} .frameno") == "frame 5 / 8"
        page.keyboard.press(".")
        assert page.inner_text(f"{card} .frameno") == "frame 6 / 8"
        page.keyboard.press(" ")
        page.wait_for_function("(() => [...document.querySelectorAll('#clip-0000 video')].every(v => !v.paused))()")
        # the check's frames are ticks on the timeline, the audit is a band and text
        ticks = page.eval_on_selector_all(f"{card} .mark", "ms => ms.map(m => [m.dataset.frame, m.className])")
        assert ticks == [["4", "mark solid"], ["7", "mark mended"]]
        assert "written-frame check flagged 2 frame(s): 4 (solid), 7 (refilled)" in page.inner_text(f"{card} .flags")
        assert "audit: flagged, suspicion 0.75" in page.inner_text("#clip-0001 .flags")
        assert page.locator("#clip-0001 .auditband.flagged").count() == 1
        page.close()


def test_a_750_clip_page_requests_only_the_visible_media(browser, tmp_path: Path) -> None:
    folder = _folder(tmp_path / "qa", 750)
    with _Served(folder) as server:
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        media: list[str] = []
        page.on("request", lambda r: media.append(r.url.split("/media/", 1)[1]) if "/media/" in r.url else None)
        started = time.monotonic()
        page.goto(_url(server))
        page.wait_for_selector("body[data-interactive='1']")
        interactive = time.monotonic() - started
        page.wait_for_selector("body[data-ready='1']")
        page.wait_for_timeout(500)
        assert page.locator("section.clip").count() == 750
        loaded = page.eval_on_selector_all("section.clip.loaded", "cs => cs.map(c => c.dataset.id)")
        requested = {name[:4] for name in media}
        assert 1 <= len(loaded) <= 6 and requested == set(loaded), (loaded, sorted(requested))
        assert len(media) < 30, media
        assert interactive < 10  # the benchmark measures it properly (benchmarks/review_page.py)
        # far down the page: the cards there get their media, the first ones drop theirs
        before = len(media)
        page.evaluate("document.getElementById('clip-0400').scrollIntoView({block: 'center'})")
        page.wait_for_selector("#clip-0400.loaded")
        page.wait_for_function("!document.querySelector('#clip-0000.loaded')")
        assert page.locator("#clip-0000 video").count() == 0
        page.wait_for_timeout(300)
        later = {name[:4] for name in media[before:]}
        assert "0400" in later and all(390 <= int(i) <= 410 for i in later), sorted(later)
        assert page.locator("section.clip.loaded").count() <= 8
        page.close()
