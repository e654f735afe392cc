"""Time to interactive of the QA review page with 750 clips (the size of the papers' manual QA).

    python benchmarks/review_page.py [--clips 750] [--runs 5] [--frames 6] [--seconds 3]

Builds a generated QA folder (sample.json plus media: per clip ``--frames`` JPEG frames per side
and original / anonymised preview mp4s of ``--seconds`` at 320x180, hard links of one generated
file each, so building takes seconds), serves it with ``privvid qa serve``'s server and opens the
page in headless Chromium (Debian package, through Playwright). Interactive = the page has
rendered every card, requested the visible cards' media and attached its keys: it then sets
``window.__ready`` and records ``performance.now()`` (ms since navigation start) in
``window.__readyAt``. The reference, measured in the same run from the same server, is a blank
page that records the same two values from an inline script. Each is the median of ``--runs``
fresh pages; the target is under 2 s.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from privvid.io.video import VideoWriter
from privvid.qa import make_server
from privvid.qa.sample import load_sample
from privvid.qa.sheet import render_sheet

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
BLANK = ("<!doctype html><title>blank</title>"
         "<script>window.__readyAt = performance.now(); window.__ready = true;</script>")
TARGET_S = 2.0


def build(folder: Path, clips: int, frames: int, seconds: float) -> dict[str, int]:
    import cv2

    media = folder / "media"
    media.mkdir(parents=True)
    fps, (w, h) = 25.0, (320, 180)
    seed_video = folder / "seed.mp4"
    rng = np.random.default_rng(0)
    with VideoWriter(seed_video, w, h, fps) as writer:
        base = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
        for k in range(max(1, round(seconds * fps))):
            writer.write(np.roll(base, 4 * k, axis=1))
    seed_jpeg = folder / "seed.jpg"
    seed_jpeg.write_bytes(cv2.imencode(".jpg", base)[1].tobytes())
    items = []
    for i in range(clips):
        item_id = f"{i:04d}"
        label = f"class{i % 50:02d}"
        item = {"id": item_id, "class": label, "rel": f"{label}/clip{i:04d}", "mode": "remove", "problems": [],
                "original_frames": [], "anonymised_frames": [], "marks": [], "audit": None, "clip_frames": None}
        for kind, key in (("orig", "original_frames"), ("anon", "anonymised_frames")):
            for k in range(frames):
                name = f"media/{item_id}_{kind}_{k:02d}.jpg"
                os.link(seed_jpeg, folder / name)
                item[key].append(name)
            os.link(seed_video, media / f"{item_id}_{kind}.mp4")
        item["preview"] = {"anonymised": f"media/{item_id}_anon.mp4", "original": f"media/{item_id}_orig.mp4",
                           "mask": None, "frames": max(1, round(seconds * fps)), "fps": fps, "width": w, "height": h}
        if i % 7 == 0:  # some clips with the check's frames and an audit flag, as on a real page
            item["marks"] = [{"frame": 3, "action": "solid", "found": ["person"]}]
            item["audit"] = {"flagged": True, "suspicion": 0.5, "reason": "person on 8/16 frames", "rank": i // 7 + 1}
        items.append(item)
    (folder / "sample.json").write_text(json.dumps({"dataset": "/data/generated", "seed": 0, "per_class": 15,
                                                    "order": "class", "items": items}))
    (media / "blank.html").write_text(BLANK)
    return {"clips": clips, "media_files": sum(1 for _ in media.iterdir())}


def measure(browser, url: str, requests: list[str] | None = None) -> tuple[float, float]:
    """(ms since navigation start when the page said it is ready, wall seconds from goto to ready)."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    if requests is not None:
        page.on("request", lambda r: requests.append(r.url) if "/media/" in r.url else None)
    started = time.perf_counter()
    page.goto(url, wait_until="commit")
    page.wait_for_function("window.__ready === true", timeout=60000)
    wall = time.perf_counter() - started
    ready_ms = float(page.evaluate("window.__readyAt"))
    context.close()
    return ready_ms, wall


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clips", type=int, default=750)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--frames", type=int, default=6, help="JPEG frames per side and clip")
    parser.add_argument("--seconds", type=float, default=3.0, help="length of each preview video")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    if not CHROMIUM.exists():
        raise SystemExit("needs the Debian chromium package (apt-get install -y chromium)")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "qa"
        t0 = time.perf_counter()
        built = build(folder, args.clips, args.frames, args.seconds)
        build_s = time.perf_counter() - t0
        page_kb = len(render_sheet(load_sample(folder), "t" * 43).encode()) / 1024
        server = make_server(folder, port=0)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        base = f"http://127.0.0.1:{server.server_address[1]}"
        try:
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
                measure(browser, f"{base}/media/blank.html")  # warm-up: browser and server
                page_ms, page_wall, blank_ms, blank_wall, media = [], [], [], [], []
                for _ in range(args.runs):
                    ms, wall = measure(browser, f"{base}/media/blank.html")
                    blank_ms.append(ms)
                    blank_wall.append(wall)
                    requests: list[str] = []
                    ms, wall = measure(browser, f"{base}/index.html", requests)
                    page_ms.append(ms)
                    page_wall.append(wall)
                    media.append(len(requests))
                browser.close()
        finally:
            server.shutdown()
            server.server_close()
    ready = statistics.median(page_ms) / 1000
    print(f"{built['clips']} clips, {built['media_files']} media files (built in {build_s:.1f} s), {args.runs} runs, "
          f"headless Chromium, 1280x800 viewport; page {page_kb:.0f} KiB (clip data embedded)")
    print(f"review page: interactive after {ready:.3f} s (median; runs {', '.join(f'{m / 1000:.3f}' for m in page_ms)});"
          f" goto to ready {statistics.median(page_wall):.3f} s; media requested by then: "
          f"{statistics.median(media):.0f} (of {built['media_files'] - 1})")
    print(f"blank page, same server: ready after {statistics.median(blank_ms) / 1000:.3f} s (median); goto to ready "
          f"{statistics.median(blank_wall):.3f} s")
    print(f"target: interactive under {TARGET_S:.0f} s: {'met' if ready < TARGET_S else 'NOT met'}")


if __name__ == "__main__":
    main()
