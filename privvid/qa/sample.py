"""``privvid qa sample``: a seeded, class-balanced sample of anonymised clips for manual review.

PPMA reviewed 4 random clips per class, Mask2Mesh 5. For each sampled clip the QA folder gets
a few frames of the original and of the anonymised video at the same relative times (JPEG), and
small preview videos of both (H.264, the same size and frame count, so the page can play them in
step), plus a mask video when the clip has a ``<rel>.masks.npz`` (``anonymize --save-masks``).
Each item also carries the frames the written-frame check flagged (from the sidecar) and, with an
audit CSV, the audit's flag and suspicion; ``order`` sets the order the page shows the clips in.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from privvid.errors import BadInput
from privvid.io.layout import output_paths
from privvid.io.video import VideoWriter, probe, read_frames
from privvid.qa.dataset import AnonClip, QAError, scan

SAMPLE_FILE = "sample.json"
MEDIA_DIR = "media"
STAGE_PREFIX = ".sample-"   # a run writes into a folder so named before it moves media/ and sample.json in place
ORDERS = ("class", "random", "risk")
AUDIT_CSV = Path(".privvid") / "audit.csv"   # where `privvid qa audit` writes it, under the dataset
PREVIEW_CRF = 23
MASK_COLOUR = (255, 40, 40)                   # the mask video: this colour on black (the page screens it over)


def _class_rng(seed: int, label: str) -> np.random.Generator:
    """One generator per class, so adding or removing another class changes nothing here."""
    digest = hashlib.sha256(f"{seed}\0{label}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def choose(clips: list[AnonClip], per_class: int, seed: int) -> list[AnonClip]:
    """``per_class`` clips of each class (all of a smaller class), sorted by class then path."""
    if per_class < 1:
        raise QAError(f"--per-class must be at least 1, got {per_class}")
    by_class: dict[str, list[AnonClip]] = {}
    for clip in clips:
        by_class.setdefault(clip.label, []).append(clip)
    chosen = []
    for label in sorted(by_class):
        members = sorted(by_class[label], key=lambda c: c.rel)
        take = min(per_class, len(members))
        picks = _class_rng(seed, label).choice(len(members), size=take, replace=False)
        chosen.extend(sorted((members[i] for i in picks), key=lambda c: c.rel))
    return chosen


def frame_positions(count: int, n: int) -> list[int]:
    """``n`` frame indices at the centres of ``n`` equal slices of a clip of ``count`` frames; every frame
    once when the clip has ``n`` frames or fewer (a frame checked twice would count its finding twice)."""
    count = max(1, count)
    n = min(n, count)
    return [min(count - 1, int((i + 0.5) / n * count)) for i in range(n)]


def grab_frames(path: Path, n: int, size: tuple[int, int] | None = None,
                problems: list[str] | None = None) -> list[np.ndarray]:
    """``n`` frames spread over the clip (resized to ``size`` = (w, h) when given; all of them, once each,
    when it has no more than ``n``)."""
    return [frame for _, frame in grab_indexed_frames(path, n, size, problems=problems)]


def grab_indexed_frames(path: Path, n: int, size: tuple[int, int] | None = None,
                        strict: bool = False, problems: list[str] | None = None) -> list[tuple[int, np.ndarray]]:
    """:func:`grab_frames` with each frame's index in the clip. When the decoder stops well before the frames
    the container says it holds (a truncated file; not only a frame or two short, an estimated length):
    BadInput with ``strict``, else the frames it gave and the reason added to ``problems``."""
    info = probe(path)
    count = info.frames
    if count <= 0:
        count = sum(1 for _ in read_frames(path, info=info))
    wanted = frame_positions(count, n)
    found: dict[int, np.ndarray] = {}
    last: tuple[int, np.ndarray] | None = None
    last_needed = max(wanted)
    for index, frame in enumerate(read_frames(path, size=size, info=info)):
        last = (index, frame)
        if index in wanted:
            found[index] = frame
        if index >= last_needed:
            break
    if last is None:
        raise BadInput("video has no decodable frame")
    if last[0] < last_needed and last[0] + 1 < count - max(2, count // 20):
        why = f"decoding stopped after frame {last[0] + 1} of the {count} it holds (truncated or corrupt)"
        if strict:
            raise BadInput(why)
        if problems is not None:
            problems.append(why)
    # a container that over-estimated its length: the missing tail is the last frame, once
    out = [(i, found[i]) if i in found else last for i in wanted]
    return [item for k, item in enumerate(out) if k == 0 or item[0] != out[k - 1][0]]


MIN_THUMB = 16   # px: the smallest frame height shown


def _thumb_size(width: int, height: int, thumb_height: int) -> tuple[int, int]:
    w = max(2, round(width * thumb_height / height))
    return w - w % 2, thumb_height - thumb_height % 2


def _write_jpeg(path: Path, frame: np.ndarray) -> None:
    import cv2

    ok, data = cv2.imencode(".jpg", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 85])
    if not ok:
        raise QAError(f"cannot encode {path}")
    path.write_bytes(data.tobytes())


def read_audit(path: str | os.PathLike[str]) -> dict[str, dict[str, Any]]:
    """clip rel -> {flagged, suspicion, reason, rank} from ``qa audit``'s CSV. Raises QAError."""
    path = Path(path)
    if not path.is_file():
        raise QAError(f"audit CSV not found: {path} (run privvid qa audit DATASET first)")
    rows: dict[str, dict[str, Any]] = {}
    with open(path, newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            rel = row.get("rel")
            if not rel:
                continue
            try:
                suspicion = float(row.get("suspicion") or 0.0)
            except ValueError:
                suspicion = 0.0
            rank = row.get("rank") or ""
            rows[rel] = {"flagged": str(row.get("flagged", "")).strip().lower() in ("true", "1", "yes"),
                         "suspicion": round(suspicion, 4), "reason": row.get("reason") or "",
                         "rank": int(rank) if rank.isdigit() else None}
    return rows


def order_clips(clips: list[AnonClip], order: str, seed: int,
                audit_rows: dict[str, dict[str, Any]] | None = None) -> list[AnonClip]:
    """The clips in review order: ``class`` (class, then path: as chosen), ``random`` (seeded
    shuffle) or ``risk`` (the audit's flagged clips first, then by suspicion, highest first; clips
    the audit does not list last)."""
    if order not in ORDERS:
        raise QAError(f"--order must be one of {', '.join(ORDERS)}, got {order!r}")
    if order == "class":
        return list(clips)
    if order == "random":
        digest = hashlib.sha256(f"{seed}\0order".encode()).digest()
        perm = np.random.default_rng(int.from_bytes(digest[:8], "little")).permutation(len(clips))
        return [clips[i] for i in perm]
    if audit_rows is None:
        raise QAError("--order risk needs qa audit's CSV: pass --audit CSV or run privvid qa audit DATASET first "
                      f"(it writes DATASET/{AUDIT_CSV.as_posix()})")

    def risk(clip: AnonClip) -> tuple[bool, bool, float, str, str]:
        row = audit_rows.get(clip.rel)
        if row is None:
            return True, True, 0.0, clip.label, clip.rel
        return False, not row["flagged"], -row["suspicion"], clip.label, clip.rel

    return sorted(clips, key=risk)


def check_marks(sidecar: dict[str, Any]) -> list[dict[str, Any]]:
    """The frames the written-frame check flagged while the clip was made (sidecar ``check.per_frame``):
    frame index, what it did (``refilled`` / ``solid``) and the kinds it found."""
    check = sidecar.get("check")
    if not isinstance(check, dict):
        return []
    marks = []
    for entry in check.get("per_frame") or []:
        if not isinstance(entry, dict) or not isinstance(entry.get("frame"), int) or isinstance(entry["frame"], bool):
            continue
        found = entry.get("found") or []
        kinds = sorted({f["kind"] for f in found if isinstance(f, dict) and isinstance(f.get("kind"), str)})
        marks.append({"frame": entry["frame"], "action": str(entry.get("action", "")), "found": kinds})
    return sorted(marks, key=lambda m: m["frame"])


def mask_frames(path: Path) -> Iterator[np.ndarray]:
    """The frames of a ``.masks.npz`` one at a time (bool (H, W)), without loading the whole array."""
    from numpy.lib import format as npformat

    try:
        with zipfile.ZipFile(path) as archive, archive.open("masks.npy") as entry:
            version = npformat.read_magic(entry)
            if version not in ((1, 0), (2, 0)):
                raise BadInput(f"masks in .npy format {version} are not supported (privvid writes 1.0)")
            read_header = npformat.read_array_header_1_0 if version == (1, 0) else npformat.read_array_header_2_0
            shape, fortran, dtype = read_header(entry)
            if len(shape) != 3 or fortran or dtype != np.dtype(bool):
                raise BadInput(f"masks must be a C-ordered bool array (frames, height, width), got {dtype} {shape}")
            per_frame = shape[1] * shape[2]
            for _ in range(shape[0]):
                data = entry.read(per_frame)
                if len(data) < per_frame:
                    raise BadInput("masks array is truncated")
                yield np.frombuffer(data, dtype=bool).reshape(shape[1], shape[2])
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
        raise BadInput(f"cannot read masks: {exc}") from None


def _mask_image(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    import cv2

    if (mask.shape[1], mask.shape[0]) != size:
        # area averaging, then any noticeable coverage counts: a thin limb stays visible
        mask = cv2.resize(mask.astype(np.uint8) * 255, size, interpolation=cv2.INTER_AREA) > 63
    image = np.zeros((size[1], size[0], 3), np.uint8)
    image[mask] = MASK_COLOUR
    return image


def written_rate(sidecar: dict[str, Any] | None) -> tuple[bool, float | None]:
    """Whether the sidecar records the ``--fps`` a clip was anonymised with, and that rate (None where the frames
    were kept as decoded)."""
    config = sidecar.get("config") if isinstance(sidecar, dict) else None
    if not isinstance(config, dict) or "fps" not in config:
        return False, None
    fps = config["fps"]
    return True, (float(fps) if isinstance(fps, (int, float)) and not isinstance(fps, bool) and fps > 0 else None)


def write_previews(anonymised: Path, original: Path | None, masks: Path | None, out: Path, item_id: str,
                   size: tuple[int, int], seconds: float, written: tuple[bool, float | None] = (False, None)
                   ) -> tuple[dict[str, Any], list[str]]:
    """Preview mp4s of the anonymised clip (its first ``seconds``, every frame, at ``size``), of the
    original at the same size and frame rate and with the same frame count, and of the masks. The original's
    frames are read as anonymize read them (``written``, :func:`written_rate`: resampled to that rate, or
    every frame as decoded; where the sidecar does not say, resampled to the anonymised clip's rate), so a
    variable-rate original lines up frame for frame. Returns the sample item's ``preview`` entry and problems.
    Raises BadInput when the anonymised clip fails."""
    info = probe(anonymised)
    fps = info.fps if info.fps and info.fps > 0 else 25.0
    limit = max(1, round(seconds * fps))
    width, height = size
    names = {kind: f"{MEDIA_DIR}/{item_id}_{kind}.mp4" for kind in ("anon", "orig", "mask")}
    writer = VideoWriter(out / names["anon"], width, height, fps, crf=PREVIEW_CRF)
    try:
        for frame in read_frames(anonymised, size=size, info=info):
            writer.write(frame)
            if writer.frames >= limit:
                break
    except BaseException:
        writer.abort()
        raise
    if writer.frames == 0:
        writer.abort()
        raise BadInput("video has no decodable frame")
    writer.commit()
    count = writer.frames
    preview: dict[str, Any] = {"anonymised": names["anon"], "original": None, "mask": None, "frames": count,
                               "fps": round(fps, 6), "width": width, "height": height}
    problems = []
    if original is not None:
        try:
            known, given = written
            read_at = given if known else fps
            _write_matching(out / names["orig"], read_frames(original, size=size, fps=read_at), size, fps, count,
                            lambda f: f)
            preview["original"] = names["orig"]
        except BadInput as exc:
            problems.append(f"original preview failed: {exc}")
    if masks is not None:
        try:
            _write_matching(out / names["mask"], mask_frames(masks), size, fps, count, lambda m: _mask_image(m, size))
            preview["mask"] = names["mask"]
        except BadInput as exc:
            problems.append(f"mask overlay left out: {exc}")
    return preview, problems


def _write_matching(path: Path, frames: Iterator[np.ndarray], size: tuple[int, int], fps: float, count: int,
                    convert: Callable[[np.ndarray], np.ndarray]) -> None:
    """Exactly ``count`` frames of ``frames`` (converted); a shorter source repeats its last frame,
    one with none is an empty (black) video."""
    last = np.zeros((size[1], size[0], 3), np.uint8)
    with VideoWriter(path, size[0], size[1], fps, crf=PREVIEW_CRF) as writer:
        for frame in frames:
            last = convert(frame)
            writer.write(last)
            if writer.frames >= count:
                break
        while writer.frames < count:
            writer.write(last)


@dataclass
class SampleSummary:
    out: Path
    items: list[dict[str, Any]]
    classes: dict[str, int]          # class -> clips available
    short_classes: dict[str, int]    # classes with fewer clips than asked


def sample(root: str | os.PathLike[str], out: str | os.PathLike[str], per_class: int = 4, seed: int = 0,
           frames: int = 6, thumb_height: int = 180, progress: Callable[[int], None] | None = None,
           originals: str | os.PathLike[str] | None = None, order: str = "class",
           audit_csv: str | os.PathLike[str] | None = None, preview_seconds: float = 10.0) -> SampleSummary:
    """``originals``: the input folder given to anonymize (sidecars name each input relative to it).
    ``order``: see :func:`order_clips`; ``audit_csv``: ``qa audit``'s CSV (default: the dataset's
    ``.privvid/audit.csv`` when there is one); ``preview_seconds``: length of the preview videos
    (0: none, the page then loops the frames)."""
    root, out = Path(root), Path(out)
    base = Path(originals) if originals is not None else None
    if frames < 1:
        raise QAError(f"--frames must be at least 1, got {frames}")
    if thumb_height < MIN_THUMB:
        raise QAError(f"--height must be at least {MIN_THUMB} px, got {thumb_height}")
    if not preview_seconds >= 0:
        raise QAError(f"--preview-seconds must be 0 or more, got {preview_seconds}")
    if order not in ORDERS:
        raise QAError(f"--order must be one of {', '.join(ORDERS)}, got {order!r}")
    if base is not None and not base.exists():
        raise QAError(f"--originals {base} not found: give the IN that privvid anonymize was given")
    if root.is_dir() and (out.resolve() == root.resolve() or root.resolve() in out.resolve().parents):
        # the QA folder holds frames and previews of the originals: never inside the dataset that is shared
        raise QAError(f"--out {out} is inside the dataset {root}: the QA folder holds frames of the original, "
                      "unanonymised clips; write it outside the dataset")
    if audit_csv is None and (root / AUDIT_CSV).is_file():
        audit_csv = root / AUDIT_CSV
    audit_rows = read_audit(audit_csv) if audit_csv is not None else None
    clips = scan(root)
    chosen = order_clips(choose(clips, per_class, seed), order, seed, audit_rows)
    _keep_verdicts_with_their_clips(out, {f"{n:04d}": clip.rel for n, clip in enumerate(chosen)})
    counts: dict[str, int] = {}
    for clip in clips:
        counts[clip.label] = counts.get(clip.label, 0) + 1
    media = out / MEDIA_DIR
    if media.is_dir() and any(media.iterdir()) and not (out / SAMPLE_FILE).is_file():
        # a finished sample replaces media/ whole: one that no sample lists is not privvid's to delete
        raise QAError(f"--out {out} holds a {MEDIA_DIR}/ folder that no sample.json lists; write the sample into "
                      "another folder")
    from privvid.runtime.lock import one_writer

    with one_writer(out, out, ".sample.lock"):
        return _write_sample(out, root, chosen, counts, base, seed, per_class, frames, thumb_height, order,
                             audit_csv, audit_rows, preview_seconds, progress)


def _write_sample(out: Path, root: Path, chosen: list[AnonClip], counts: dict[str, int], base: Path | None,
                  seed: int, per_class: int, frames: int, thumb_height: int, order: str, audit_csv: Any,
                  audit_rows: dict[str, Any] | None, preview_seconds: float,
                  progress: Callable[[int], None] | None) -> SampleSummary:
    """The sample's frames, previews and sample.json, written into a hidden folder of ``out`` and moved in place
    at the end: a run that is stopped leaves the QA folder as it was (no previews of originals without the
    sample.json that lists them). The caller holds ``out``'s lock."""
    for left in [*out.glob(f"{STAGE_PREFIX}*"), out / f".{MEDIA_DIR}.old"]:   # what a killed run left
        if left.is_dir():
            shutil.rmtree(left, ignore_errors=True)
    stage = Path(tempfile.mkdtemp(dir=out, prefix=STAGE_PREFIX))
    (stage / MEDIA_DIR).mkdir()
    try:
        items = _draw(chosen, stage, base, root, frames, thumb_height, preview_seconds, audit_rows, progress)
        short = {label: n for label, n in counts.items() if n < per_class}
        doc = {
            "dataset": str(root.resolve()), "seed": seed, "per_class": per_class, "frames": frames,
            "order": order, "preview_seconds": preview_seconds,
            "audit": str(Path(audit_csv).resolve()) if audit_csv is not None else None,
            "classes": counts, "short_classes": short, "items": items,
        }
        (stage / SAMPLE_FILE).write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
        old = out / f".{MEDIA_DIR}.old"
        shutil.rmtree(old, ignore_errors=True)
        if (out / MEDIA_DIR).exists():
            os.replace(out / MEDIA_DIR, old)
        os.replace(stage / MEDIA_DIR, out / MEDIA_DIR)
        os.replace(stage / SAMPLE_FILE, out / SAMPLE_FILE)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return SampleSummary(out, items, counts, short)


def _draw(chosen: list[AnonClip], stage: Path, base: Path | None, root: Path, frames: int, thumb_height: int,
          preview_seconds: float, audit_rows: dict[str, Any] | None,
          progress: Callable[[int], None] | None) -> list[dict[str, Any]]:
    """Each chosen clip's item for sample.json, its frames and previews written under ``stage``."""
    items = []
    for number, clip in enumerate(chosen):
        item_id = f"{number:04d}"
        original = clip.original_in(base)
        item: dict[str, Any] = {
            "id": item_id, "class": clip.label, "rel": clip.rel, "mode": clip.mode,
            "anonymised": str(clip.video.resolve()),
            "original": str(original.resolve()) if original else None,   # like "anonymised": not cwd-relative
            "anonymised_frames": [], "original_frames": [], "problems": [],
            "preview": None, "clip_frames": _clip_frames(clip), "marks": check_marks(clip.sidecar),
            "audit": audit_rows.get(clip.rel) if audit_rows is not None else None,
        }
        if clip.problem:   # written in part (its sidecar unreadable, or its video gone): shown on its card
            item["problems"].append(clip.problem)
        short: list[str] = []
        try:
            anon = grab_frames(clip.video, frames, problems=short) if clip.video.is_file() else []
        except BadInput as exc:
            item["problems"].append(f"anonymised clip unreadable: {exc}")
            anon = []
        item["problems"].extend(f"anonymised clip: {why}" for why in short)
        size = (anon[0].shape[1], anon[0].shape[0]) if anon else None
        if anon:
            size = _thumb_size(size[0], size[1], thumb_height)
            import cv2

            anon = [cv2.resize(f, size, interpolation=cv2.INTER_AREA) for f in anon]
        for i, frame in enumerate(anon):
            name = f"{MEDIA_DIR}/{item_id}_anon_{i:02d}.jpg"
            _write_jpeg(stage / name, frame)
            item["anonymised_frames"].append(name)
        if original is None:
            item["problems"].append("original unknown: the sidecar names the input relative to the folder given "
                                    "to anonymize; pass --originals IN")
        elif not original.exists():
            item["problems"].append(f"original not found: {original}")
        else:
            try:
                # as many as the anonymised clip gave (a clip written at another frame rate has another count)
                for i, frame in enumerate(grab_frames(original, len(anon) or frames, size)):
                    name = f"{MEDIA_DIR}/{item_id}_orig_{i:02d}.jpg"
                    _write_jpeg(stage / name, frame)
                    item["original_frames"].append(name)
            except BadInput as exc:
                item["problems"].append(f"original unreadable: {exc}")
        if size is not None and preview_seconds > 0:
            masks = output_paths(Path(root), clip.rel)["masks"]   # written by anonymize --save-masks
            try:
                item["preview"], problems = write_previews(
                    clip.video, original if item["original_frames"] else None, masks if masks.is_file() else None,
                    stage, item_id, size, preview_seconds, written_rate(clip.sidecar))
                item["problems"].extend(problems)
            except BadInput as exc:
                item["problems"].append(f"preview failed: {exc}")
        items.append(item)
        if progress is not None:
            progress(1)
    return items


def _keep_verdicts_with_their_clips(out: Path, ids: dict[str, str]) -> None:
    """Refuse to write a sample whose ids name other clips over one that reviewers' verdicts refer to: the
    review page and the report match verdicts by id, so they would land on the wrong clips."""
    from privvid.qa.sheet import VERDICTS_FILE   # (sheet imports this module)

    verdicts = sorted(p.name for p in [*out.glob(VERDICTS_FILE), *out.glob("verdicts-*.json")]) if out.is_dir() else []
    if not verdicts or not (out / SAMPLE_FILE).is_file():
        return
    try:
        old = {str(i.get("id")): i.get("rel") for i in load_sample(out).get("items", [])}
    except (QAError, ValueError, AttributeError):   # a damaged sample.json: nothing to keep the verdicts to
        old = {}
    moved = [(i, rel, ids.get(i)) for i, rel in sorted(old.items()) if ids.get(i) != rel]
    if moved:
        i, was, now = moved[0]
        raise QAError(f"{out} holds verdicts ({', '.join(verdicts[:3])}) for another sample: id {i} was {was}, "
                      f"it would now be {now or 'no clip'}; write this sample into another folder (or move the "
                      "verdicts away first)")


def _clip_frames(clip: AnonClip) -> int | None:
    """Frames of the anonymised clip, as its sidecar records them."""
    frames = (clip.sidecar.get("output") or {}).get("frames")
    return frames if isinstance(frames, int) and not isinstance(frames, bool) else None


def load_sample(folder: str | os.PathLike[str]) -> dict[str, Any]:
    """``FOLDER/sample.json`` as ``qa sample`` wrote it; QAError naming the file when it is missing or not one."""
    path = Path(folder) / SAMPLE_FILE
    if not path.is_file():
        if (Path(folder) / ".privvid").is_dir():   # the dataset itself, not a QA folder drawn from it
            raise QAError(f"{folder} is an anonymised dataset, not a QA folder: run `privvid qa sample {folder} "
                          "--out QA` (QA outside the dataset) first, then give QA")
        raise QAError(f"{path} not found; run `privvid qa sample DATASET --out {folder}` first")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, RecursionError) as exc:
        raise QAError(f"{path} is not valid JSON ({exc}); draw the sample again with `privvid qa sample`") from None
    items = doc.get("items") if isinstance(doc, dict) else None
    if not isinstance(items, list) or not all(
            isinstance(i, dict) and isinstance(i.get("id"), str) and isinstance(i.get("rel"), str) for i in items):
        raise QAError(f"{path} is not a sample written by `privvid qa sample` (it needs a list of items, each with "
                      "an id and a rel); draw the sample again")
    return doc
