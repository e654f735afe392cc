"""``privvid curate``: load a source, embed, select K classes, write the outputs.

Outputs in OUT:
  classes.txt        selected class names, one per line (sorted)
  selection.json     method, K, seed, encoders, clusters with members/counts, skipped videos
  subset.csv         the videos kept (at most ``max_per_class`` per selected class)
  separation.json    selection vs random selections of the same K (see knexus.separation_report)
  separation.md      the same as a markdown table
  separation.png     nearest-neighbour similarity histogram
"""

from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from privvid.curate.embed import EmbeddingCache, embed_classes, frame_fraction
from privvid.curate.encoders import IMAGE_ENCODERS, TEXT_ENCODERS, make_clip_pair
from privvid.curate.knexus import METHODS, Selection, check_k, knexus_select, plot_separation, random_select, separation_report
from privvid.curate.sources import CurationError, CurationSource, load_source, read_class_names
from privvid.io.atomic import write_text_atomic


def default_cache() -> Path:
    base = os.environ.get("PRIVVID_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "privvid")
    return Path(base) / "curate-embeddings.sqlite"


@dataclass(frozen=True)
class CurateConfig:
    k: int = 150
    method: str = "knexus"                     # knexus | random
    seed: int = 0
    restarts: int = 10                         # k-means++ initialisations
    max_per_class: int = 1000                  # videos kept per selected class
    image_encoder: str | None = "efficientnet-lite0"   # None: label text only
    text_encoder: str | None = "minilm"        # None: frames only
    clip_checkpoint: Path | None = None        # encoder "clip": open_clip checkpoint (both towers)
    clip_model: str = "ViT-B-32"
    embed_per_class: int | None = None         # embed at most this many videos per class (None = all)
    on_error: str = "skip"                     # unreadable videos: skip (recorded) | fail
    cache: Path | None = None                  # None = no cache
    random_draws: int = 100                    # random selections in the separation report
    reference: tuple[Path, ...] = ()           # class lists to compare the selection with (overlap)


@dataclass
class CurationResult:
    out: Path
    selection: Selection
    report: dict[str, Any]
    subset_rows: int
    skipped: list[dict]
    cache: dict[str, Any]
    source_kind: str
    classes: int
    dropped: dict[str, str] = field(default_factory=dict)   # classes left out: none of their videos readable
    overlaps: list[dict[str, Any]] = field(default_factory=list)   # one per reference list (see ``overlap``)


def _encoders(cfg: CurateConfig):
    if cfg.image_encoder == "clip" or cfg.text_encoder == "clip":
        image, text = make_clip_pair(cfg.clip_checkpoint, cfg.clip_model)
        return (image if cfg.image_encoder == "clip" else None), (text if cfg.text_encoder == "clip" else None)
    image = IMAGE_ENCODERS.create(cfg.image_encoder) if cfg.image_encoder else None
    text = TEXT_ENCODERS.create(cfg.text_encoder) if cfg.text_encoder else None
    return image, text


def curate(source: CurationSource, out: str | os.PathLike[str], cfg: CurateConfig,
           progress: Callable[[int], None] | None = None) -> CurationResult:
    if cfg.method not in METHODS:
        raise CurationError(f"unknown method {cfg.method!r}; choose one of: {', '.join(METHODS)}")
    if cfg.max_per_class < 1:
        raise CurationError(f"--max-per-class must be at least 1, got {cfg.max_per_class}")
    if cfg.random_draws < 1:
        raise CurationError(f"--random-draws must be at least 1 (the report compares with them), got {cfg.random_draws}")
    if cfg.restarts < 1:
        raise CurationError(f"--restarts must be at least 1, got {cfg.restarts}")
    if cfg.embed_per_class is not None and cfg.embed_per_class < 1:
        raise CurationError(f"--embed-per-class must be at least 1 (or left out: all), got {cfg.embed_per_class}")
    for kind, name, known in (("image", cfg.image_encoder, IMAGE_ENCODERS), ("text", cfg.text_encoder, TEXT_ENCODERS)):
        if name is not None and name != "clip" and name not in known.names():
            raise CurationError(f"unknown {kind} encoder {name!r}; choose one of: "
                                f"{', '.join([*known.names(), 'clip', 'none'])}")
    if isinstance(cfg.seed, bool) or not isinstance(cfg.seed, (int, np.integer)) or not 0 <= cfg.seed < 2 ** 32:
        raise CurationError(f"--seed must be a whole number from 0 to {2 ** 32 - 1}, got {cfg.seed!r}")
    check_k(cfg.k, len(source.labels))  # before any expensive embedding
    references = [(Path(path), read_reference(path)) for path in cfg.reference]
    out = Path(out)
    has_files = any(v.path is not None for vs in source.classes.values() for v in vs)
    image_encoder, text_encoder = _encoders(cfg)
    if not has_files:
        image_encoder = None
    cache = EmbeddingCache(cfg.cache)
    try:
        emb = embed_classes(source, image_encoder, text_encoder, seed=cfg.seed, cache=cache,
                            max_videos_per_class=cfg.embed_per_class, on_error=cfg.on_error,
                            progress=progress)
    finally:
        cache.close()
    if emb.dropped and cfg.k > len(emb.labels):
        raise CurationError(f"--k {cfg.k} but only {len(emb.labels)} classes have a readable video ("
                            + "; ".join(f"{label!r}: {why}" for label, why in list(emb.dropped.items())[:3]) + ")")
    if cfg.method == "knexus":
        selection = knexus_select(emb.labels, emb.vectors, emb.counts, cfg.k, cfg.seed, cfg.restarts)
    else:
        selection = random_select(emb.labels, cfg.k, cfg.seed)
    report = separation_report(emb.labels, emb.vectors, selection, cfg.random_draws, cfg.seed)

    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / "classes.txt", "".join(f"{c}\n" for c in sorted(selection.selected)))
    rows = _subset_rows(source, selection.selected, cfg, emb.skipped)
    _write_subset(out / "subset.csv", rows, source.kind)
    selection_doc = {
        "method": selection.method,
        "k": selection.k,
        "seed": selection.seed,
        "restarts": selection.restarts,
        "inertia": selection.inertia,
        "source": {"kind": source.kind, "path": source.origin, "classes": len(source.labels),
                   "videos": int(sum(emb.counts.values())), "missing_files": len(source.missing)},
        "encoder": emb.encoder,
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(cfg).items()},
        "selected": selection.selected,
        "counts": {label: int(emb.counts[label]) for label in selection.selected},
        "videos_embedded": {label: int(emb.used[label]) for label in selection.selected},
        "clusters": selection.clusters,
        "frames": emb.frames,
        "skipped": emb.skipped,
        "dropped_classes": emb.dropped,     # classes none of whose videos could be read (not candidates)
        "missing": list(source.missing),   # annotation rows with no file under the video root (their keys)
        "unclassed": list(source.unclassed),   # videos directly under a tree's root: in no class, not used
        "subset_videos": len(rows),
    }
    overlaps = [{"path": str(path), **overlap(selection.selected, names)} for path, names in references]
    if overlaps:
        selection_doc["reference_overlap"] = overlaps
    _write_json(out / "selection.json", selection_doc)
    _write_json(out / "separation.json", report)
    write_text_atomic(out / "separation.md", separation_markdown(report))
    plot_separation(report, out / "separation.png")
    return CurationResult(out, selection, report, len(rows), emb.skipped, emb.cache, source.kind,
                          len(source.labels), emb.dropped, overlaps)


def _subset_rows(source: CurationSource, selected: list[str], cfg: CurateConfig,
                 skipped: list[dict]) -> list[dict[str, str]]:
    bad = {(s["label"], s["key"]) for s in skipped}
    rows = []
    for label in sorted(selected):
        videos = [v for v in source.classes[label] if (label, v.key) not in bad]
        if len(videos) > cfg.max_per_class:
            # seeded, order-independent choice of which videos stay
            videos = sorted(videos, key=lambda v: frame_fraction(cfg.seed + 2, v.key))[: cfg.max_per_class]
        for video in sorted(videos, key=lambda v: v.key):
            row = {"label": label, "key": video.key, "path": os.path.abspath(video.path) if video.path else ""}  # any cwd
            if video.row is not None:
                row.update({c: video.row.get(c, "") for c in ("youtube_id", "time_start", "time_end", "split")})
            rows.append(row)
    return rows


def _write_subset(path: Path, rows: list[dict[str, str]], kind: str) -> None:
    columns = ["label", "key", "path"]
    if kind == "csv":
        columns += ["youtube_id", "time_start", "time_end", "split"]
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=columns)
    writer.writeheader()
    for row in rows:
        writer.writerow({c: row.get(c, "") for c in columns})
    write_text_atomic(path, text.getvalue())


def _write_json(path: Path, doc: Any) -> None:
    write_text_atomic(path, json.dumps(doc, indent=2, default=_json_default) + "\n")


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value)}")


def separation_markdown(report: dict[str, Any]) -> str:
    lines = [
        f"Separation of the {report['method']} selection (K={report['k']} of {report['classes']} classes) "
        f"vs {report['random_draws']} random selections of the same K",
        "",
        "| metric | selected | random mean ± std | random draws at least as good |",
        "|---|---|---|---|",
    ]
    for name, row in report["metrics"].items():
        arrow = "lower" if row["lower_is_better"] else "higher"
        lines.append(f"| {name} ({arrow} is better) | {row['selected']:.4f} | "
                     f"{row['random_mean']:.4f} ± {row['random_std']:.4f} | {row['random_at_least_as_good']:.0%} |")
    lines += ["", *(f"- {k}: {v}" for k, v in report["notes"].items()), ""]
    return "\n".join(lines)


def class_key(name: str) -> str:
    """A class name as lists of the same dataset spell it differently: Kinetics' annotation CSVs say
    ``tai chi``, its folder trees ``tai_chi``, some lists quote names or capitalise them."""
    return " ".join(name.strip().strip("\"'").replace("_", " ").split()).casefold()


def read_reference(path: str | os.PathLike[str]) -> list[str]:
    """A reference class list: one name per line, blank lines and ``#`` lines ignored."""
    return [name for _, name in read_class_names(path, "reference list")]


def overlap(selected: list[str], reference: list[str]) -> dict[str, Any]:
    """Shared classes between a selection and a reference list (e.g. the paper's Kinetics-150), names
    compared as ``class_key`` spells them (``tai_chi`` is ``tai chi``). ``shared_classes`` are the
    selection's own names."""
    ref = {class_key(name) for name in reference}
    sel = {class_key(name): name for name in selected}
    shared = sorted(sel[key] for key in sel.keys() & ref)
    return {"shared": len(shared), "selected": len(sel), "reference": len(ref),
            "jaccard": len(shared) / max(1, len(sel.keys() | ref)), "shared_classes": shared}


__all__ = ["CurateConfig", "CurationResult", "curate", "default_cache", "load_source", "overlap", "read_reference"]
