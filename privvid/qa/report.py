"""``privvid qa report``: pass rate with a Wilson 95% interval, overall and per class.

Given several verdict files (one per reviewer, as in PPMA's three-reviewer check), every
(clip, reviewer) verdict counts once in the review-level numbers, and a clip counts as
"fully removed" only when every reviewer who saw it said pass.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Sequence

from privvid.qa.dataset import QAError
from privvid.qa.sheet import VERDICTS

Z95 = 1.959963984540054  # two-sided 95% normal quantile


def wilson(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion; (0, 1) when n = 0."""
    if n < 0 or successes < 0 or successes > n:
        raise ValueError(f"need 0 <= successes <= n, got {successes} of {n}")
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def _load(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise QAError(f"verdict file not found: {path}")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise QAError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("verdicts"), dict):
        raise QAError(f"{path} has no 'verdicts' object; is it a file saved by the QA sheet?")
    for item_id, entry in doc["verdicts"].items():
        if not isinstance(entry, dict) or entry.get("verdict") not in VERDICTS:
            raise QAError(f"{path}: clip {item_id}: verdict must be one of {', '.join(VERDICTS)}")
        if "class" not in entry:
            raise QAError(f"{path}: clip {item_id} has no class")
    return doc


def _rate(passed: int, n: int) -> dict[str, Any]:
    low, high = wilson(passed, n)
    return {"passed": passed, "n": n, "rate": passed / n if n else None, "ci95": [low, high]}


def report(paths: Sequence[str | os.PathLike[str]], sample: dict[str, Any] | None = None) -> dict[str, Any]:
    """Statistics of one or more verdict files. ``sample`` (sample.json) adds unreviewed counts."""
    if not paths:
        raise QAError("give at least one verdicts.json")
    docs = [_load(Path(p)) for p in paths]
    reviews: list[tuple[str, str, str]] = []   # (clip id, class, verdict)
    for doc in docs:
        for item_id, entry in doc["verdicts"].items():
            reviews.append((item_id, str(entry["class"]), entry["verdict"]))
    if not reviews:
        raise QAError("the verdict file(s) hold no verdicts yet")

    counts = {v: 0 for v in VERDICTS}
    per_class: dict[str, dict[str, Any]] = {}
    clip_verdicts: dict[str, list[str]] = {}
    clip_class: dict[str, str] = {}
    for item_id, label, verdict in reviews:
        counts[verdict] += 1
        row = per_class.setdefault(label, {v: 0 for v in VERDICTS})
        row[verdict] += 1
        clip_verdicts.setdefault(item_id, []).append(verdict)
        clip_class[item_id] = label

    classes = {}
    for label in sorted(per_class):
        row = per_class[label]
        n = sum(row[v] for v in VERDICTS)
        classes[label] = {"counts": row, **_rate(row["pass"], n)}
    clips_passed = sum(all(v == "pass" for v in vs) for vs in clip_verdicts.values())
    out = {
        "files": [str(p) for p in paths],
        "reviewers": [doc.get("reviewer", "") for doc in docs],
        "reviews": _rate(counts["pass"], len(reviews)),
        "clips": _rate(clips_passed, len(clip_verdicts)),
        "counts": counts,
        "per_class": classes,
    }
    if sample is not None:
        ids = {item["id"] for item in sample.get("items", [])}
        out["unreviewed"] = sorted(ids - set(clip_verdicts))
        out["sampled"] = len(ids)
    return out


def report_markdown(rep: dict[str, Any]) -> str:
    def fmt(r: dict[str, Any]) -> str:
        if not r["n"]:
            return "n/a"
        return f"{r['rate']:.1%} ({r['passed']}/{r['n']}), 95% CI {r['ci95'][0]:.1%}-{r['ci95'][1]:.1%}"

    lines = [f"- reviews passed: {fmt(rep['reviews'])}",
             f"- clips passed by every reviewer: {fmt(rep['clips'])}",
             "- verdicts: " + ", ".join(f"{k} {v}" for k, v in rep["counts"].items()), "",
             "| class | pass rate | 95% CI | " + " | ".join(VERDICTS) + " |",
             "|---|---|---|" + "---|" * len(VERDICTS)]
    for label, row in rep["per_class"].items():
        lines.append(f"| {label} | {row['rate']:.1%} ({row['passed']}/{row['n']}) | "
                     f"{row['ci95'][0]:.1%}-{row['ci95'][1]:.1%} | "
                     + " | ".join(str(row["counts"][v]) for v in VERDICTS) + " |")
    return "\n".join(lines) + "\n"
