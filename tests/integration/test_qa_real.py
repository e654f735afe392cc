"""QA on real footage: the privacy audit on a clip with a person vs the same clip with the person
removed, and the review page clicked in a real headless Chromium (Debian package) via Playwright."""

from __future__ import annotations

import csv
import json
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from qa_helpers import wait_for
from privvid.cli.main import app
from privvid.io.video import VideoWriter, list_frame_files
from privvid.qa import AuditConfig, audit, make_server, report, sample, write_sheet

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _sidecar(video: Path, original: Path, detector: str = "mediapipe") -> None:
    video.with_suffix(".json").write_text(json.dumps({
        "privvid_version": "test", "mode": "remove", "input": {"path": str(original)},
        "backends": {"detector": {"name": detector}}}))


@pytest.fixture(scope="module")
def tennis_dataset(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """DAVIS tennis (a player on court): ``raw`` keeps the player, ``removed`` fills the
    ground-truth removal mask (dilated) with OpenCV inpainting."""
    import cv2

    src = shared_data / "davis-inpaint-examples" / "tennis"
    frames = list_frame_files(src / "frames")[:24]
    root = tmp_path_factory.mktemp("qa") / "anon"
    h, w = cv2.imread(str(frames[0])).shape[:2]
    w, h = w - w % 2, h - h % 2
    for name, remove in (("raw", False), ("removed", True)):
        path = root / "tennis" / f"{name}.mp4"
        with VideoWriter(path, w, h, 24) as writer:
            for file in frames:
                image = cv2.imread(str(file))[:h, :w]
                if remove:
                    mask = cv2.imread(str(src / "removal_masks_dilated" / file.name), cv2.IMREAD_GRAYSCALE)[:h, :w]
                    mask = cv2.dilate((mask > 0).astype(np.uint8) * 255, np.ones((15, 15), np.uint8))
                    image = cv2.inpaint(image, mask, 5, cv2.INPAINT_TELEA)
                writer.write(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
        _sidecar(path, src / "frames")
    return root


def test_audit_flags_the_person_and_passes_the_removed_clip(tennis_dataset: Path) -> None:
    result = audit(tennis_dataset, AuditConfig(frames=8))
    rows = {r.rel: r for r in result.rows}
    raw, removed = rows["tennis/raw"], rows["tennis/removed"]
    assert raw.flagged and raw.rank == 1 and raw.person_hits >= 6
    # the face detector sometimes reports one weak face on the inpainted court (seen in 1 of 3 full
    # runs, score near its threshold): one hit in 8 frames must not flag the clip
    assert not removed.flagged and removed.person_hits == 0 and removed.face_hits <= 1
    assert removed.suspicion < raw.suspicion
    assert raw.same_detector  # default pose checker shares BlazePose with the mediapipe remover


def test_audit_cli_writes_ranked_csv(tennis_dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "audit.csv"
    result = CliRunner().invoke(app, ["qa", "audit", str(tennis_dataset), "--frames", "4", "--out", str(out)])
    assert result.exit_code == 1, result.output  # tennis/raw is flagged
    with open(out) as handle:
        rows = list(csv.DictReader(handle))
    assert [r["rel"] for r in rows] == ["tennis/raw", "tennis/removed"]
    assert [r["flagged"] for r in rows] == ["True", "False"]
    summary = json.loads(out.with_suffix(".json").read_text())
    assert summary["clips"] == 2 and summary["flagged"] == 1
    bad = CliRunner().invoke(app, ["qa", "audit", str(tennis_dataset), "--frames", "2", "--min-hits", "3"])
    assert bad.exit_code == 2 and "min-hits" in bad.output


def test_audit_checks_videos_without_a_sidecar(tennis_dataset: Path, shared_data: Path, tmp_path: Path) -> None:
    """Real videos dropped into the output folder by hand (no sidecar) are audited and flagged: an
    .avi of a person (the detectors find them too) and a copy of the person-free clip (flagged only
    for the missing sidecar); the audit exits 1, and 0 once only privvid's output is left."""
    root = tmp_path / "anon"
    (root / "tennis").mkdir(parents=True)
    for suffix in (".mp4", ".json"):
        shutil.copyfile(tennis_dataset / "tennis" / f"removed{suffix}", root / "tennis" / f"removed{suffix}")
    shutil.copyfile(tennis_dataset / "tennis" / "removed.mp4", root / "tennis" / "dropped.mp4")
    (root / "makeup").mkdir()
    shutil.copyfile(shared_data / "action-clips" / "ucf101_ApplyEyeMakeup__mmaction2_test.avi",
                    root / "makeup" / "raw.avi")
    out = tmp_path / "audit.csv"
    result = CliRunner().invoke(app, ["qa", "audit", str(root), "--frames", "4", "--out", str(out)])
    assert result.exit_code == 1, result.output
    with open(out, newline="") as handle:
        rows = {r["rel"]: r for r in csv.DictReader(handle)}
    assert set(rows) == {"tennis/removed", "tennis/dropped", "makeup/raw.avi"}
    assert rows["tennis/removed"]["flagged"] == "False" and rows["tennis/removed"]["sidecar"] == "True"
    for rel in ("tennis/dropped", "makeup/raw.avi"):
        assert rows[rel]["flagged"] == "True" and rows[rel]["sidecar"] == "False"
        assert rows[rel]["reason"].startswith("no sidecar: not written by privvid anonymize")
    assert int(rows["makeup/raw.avi"]["face_hits"]) + int(rows["makeup/raw.avi"]["person_hits"]) >= 2
    assert int(rows["makeup/raw.avi"]["frames_checked"]) == 4
    for rel in ("tennis/dropped.mp4", "makeup/raw.avi"):
        (root / rel).unlink()
    result = CliRunner().invoke(app, ["qa", "audit", str(root), "--frames", "4", "--out", str(out)])
    assert result.exit_code == 0, result.output


def test_audit_marks_unreadable_outputs(tmp_path: Path) -> None:
    root = tmp_path / "anon"
    (root / "a").mkdir(parents=True)
    (root / "a" / "x.mp4").write_bytes(b"not a video")
    _sidecar(root / "a" / "x.mp4", tmp_path / "nowhere.mp4")
    row = audit(root, AuditConfig(frames=2)).rows[0]
    assert row.flagged and row.error.startswith("unreadable")


@pytest.fixture(scope="module")
def review_folder(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two classes of real clips 'anonymised' by copying, sampled for review."""
    base = tmp_path_factory.mktemp("review")
    clips = {"arm_wrestling": "k400_arm_wrestling__mmaction2_demo.mp4", "tai_chi": "k400_tai_chi__mmskeleton.mp4"}
    for label, name in clips.items():
        original = shared_data / "action-clips" / name
        out = base / "anon" / label / "clip.mp4"
        out.parent.mkdir(parents=True)
        shutil.copyfile(original, out)
        _sidecar(out, original)
    sample(base / "anon", base / "qa", per_class=4, seed=0, frames=4)
    write_sheet(base / "qa")
    return base / "qa"


def _browser():
    playwright = pytest.importorskip("playwright.sync_api")
    if not CHROMIUM.exists():
        pytest.skip("Debian chromium not installed (apt-get install -y chromium)")
    return playwright.sync_playwright()


def test_review_page_saves_verdicts_through_the_server(review_folder: Path) -> None:
    items = json.loads((review_folder / "sample.json").read_text())["items"]
    assert [i["class"] for i in items] == ["arm_wrestling", "tai_chi"]
    assert all(len(i["original_frames"]) == 4 and not i["problems"] for i in items)
    verdicts = review_folder / "verdicts.json"
    verdicts.unlink(missing_ok=True)
    server = make_server(review_folder, port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}/index.html"
    try:
        with _browser() as pw:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            page = browser.new_page()
            page.goto(url)
            page.wait_for_selector("body[data-ready='1']")
            # both versions of each clip are shown, and the frames really loaded
            assert page.locator("section.clip").count() == 2
            widths = page.evaluate("[...document.querySelectorAll('.strip img')].map(i => i.naturalWidth)")
            assert len(widths) == 16 and min(widths) > 0
            # the preview videos of the real clips (H.264, both sides the same size) play in the browser
            assert all(i["preview"]["original"] and i["preview"]["frames"] > 0 for i in items)
            page.wait_for_function("(() => { const vs = [...document.querySelectorAll('video')];"
                                   " return vs.length === 4 && vs.every(v => v.videoWidth > 0 && v.currentTime > 0); })()",
                                   timeout=15000)
            page.fill("#reviewer", "tester")
            page.click("#clip-0000 button[data-verdict='pass']")
            page.click("#clip-0001 button[data-verdict='person_visible']")
            page.fill("#clip-0001 textarea", "left arm visible")
            doc = wait_for(verdicts, lambda d: d["verdicts"].get("0001", {}).get("note") == "left arm visible")
            assert doc["reviewer"] == "tester"
            assert doc["verdicts"]["0000"]["verdict"] == "pass"
            assert doc["verdicts"]["0001"] == {**doc["verdicts"]["0001"], "verdict": "person_visible",
                                               "class": "tai_chi"}
            assert "on" in page.get_attribute("#clip-0001 button[data-verdict='person_visible']", "class")
            # a reload restores the saved verdicts from the server
            page.reload()
            page.wait_for_selector("body[data-ready='1']")
            assert "2 / 2 reviewed" in page.inner_text("#progress")
            browser.close()
    finally:
        server.shutdown()
        server.server_close()
    result = CliRunner().invoke(app, ["qa", "report", str(verdicts)])
    assert result.exit_code == 0 and "50.0% (1/2)" in result.output


def test_review_page_download_without_a_server(review_folder: Path, tmp_path: Path) -> None:
    with _browser() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(accept_downloads=True)
        page.goto((review_folder / "index.html").resolve().as_uri())
        page.wait_for_selector("body[data-ready='1']")
        page.click("#clip-0000 button[data-verdict='artefact']")
        assert "download" in page.inner_text("#status")
        with page.expect_download() as info:
            page.click("#download")
        target = tmp_path / "verdicts.json"
        info.value.save_as(target)
        browser.close()
    doc = json.loads(target.read_text())
    assert doc["verdicts"]["0000"]["verdict"] == "artefact"
    assert doc["verdicts"]["0000"]["class"] == "arm_wrestling"
    rep = report([target])  # the downloaded file is what the report reads
    assert rep["per_class"]["arm_wrestling"]["counts"]["artefact"] == 1


def test_audit_tiles_find_a_small_person(shared_data: Path, tmp_path: Path) -> None:
    """A tai chi player about a quarter of the frame high, in a forest: the crops find them."""
    clip = shared_data / "action-clips" / "tai_chi__Kop0sDqOn-c__mmskeleton_history.mp4"
    out = tmp_path / "anon" / "tai_chi" / "clip.mp4"
    out.parent.mkdir(parents=True)
    shutil.copyfile(clip, out)
    _sidecar(out, clip)
    row = audit(tmp_path / "anon", AuditConfig(frames=16, tiles=2)).rows[0]
    assert row.flagged and row.person_hits >= 2
    assert 0 < row.person_max_area < 0.2  # a small person, found in a crop


def test_audit_with_an_independent_yolo_checker(tennis_dataset: Path, shared_weights: Path,
                                                tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The int8 YOLOv8n-seg (a different model from the mediapipe remover) as person checker."""
    pytest.importorskip("ultralytics")
    monkeypatch.setenv("YOLO_CONFIG_DIR", str(tmp_path / "yolo"))
    cfg = AuditConfig(frames=6, person="yolo", person_weights=shared_weights / "yolov8n-seg_full_integer_quant.tflite",
                      face=False, tiles=1)
    rows = {r.rel: r for r in audit(tennis_dataset, cfg).rows}
    assert rows["tennis/raw"].flagged and rows["tennis/raw"].person_hits >= 4
    assert not rows["tennis/removed"].flagged
    assert not rows["tennis/raw"].same_detector  # yolo did not do the removal (sidecar: mediapipe)


def test_audit_reads_the_written_frame_check_from_the_sidecar(tennis_dataset: Path, tmp_path: Path) -> None:
    """A clip whose check had to paint boxes solid again and again is flagged, even where the audit's
    own checkers see nothing; one made with the check off says so."""
    import shutil

    root = tmp_path / "anon"
    for name, check in (("solid", {"name": "ssd+blazeface", "frames_flagged": 3, "per_frame": [
            {"frame": i, "found": [{"kind": "person"}], "action": "solid"} for i in (2, 5, 9)]}),
                        ("off", {"name": "off"})):
        video = root / "tennis" / f"{name}.mp4"
        video.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(tennis_dataset / "tennis" / "removed.mp4", video)
        side = json.loads((tennis_dataset / "tennis" / "removed.json").read_text())
        side["check"] = check
        video.with_suffix(".json").write_text(json.dumps(side))
    rows = {r.rel: r for r in audit(root, AuditConfig(frames=4, min_hits=2)).rows}
    solid, off = rows["tennis/solid"], rows["tennis/off"]
    assert solid.check == "on" and solid.check_flagged == 3 and solid.check_solid == 3 and solid.flagged
    assert off.check == "off" and off.check_solid == 0 and not off.flagged
