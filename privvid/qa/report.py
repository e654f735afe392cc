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


def cohen_kappa(a: Sequence[str], b: Sequence[str], categories: Sequence[str] = VERDICTS) -> float | None:
    """Cohen's kappa of two reviewers' verdicts on the same clips (in the same order); None when undefined
    (no clips, or both always gave the same single verdict)."""
    n = len(a)
    if n == 0 or n != len(b):
        return None
    observed = sum(x == y for x, y in zip(a, b)) / n
    expected = sum((a.count(c) / n) * (b.count(c) / n) for c in categories)
    return None if expected >= 1.0 else (observed - expected) / (1 - expected)


def fleiss_kappa(ratings: Sequence[Sequence[str]], categories: Sequence[str] = VERDICTS) -> float | None:
    """Fleiss' kappa for clips each rated by the same number (>= 2) of reviewers; None when undefined."""
    rows = [list(r) for r in ratings]
    if not rows or len({len(r) for r in rows}) != 1 or len(rows[0]) < 2:
        return None
    n, raters = len(rows), len(rows[0])
    counts = [[r.count(c) for c in categories] for r in rows]
    p_i = [(sum(x * x for x in row) - raters) / (raters * (raters - 1)) for row in counts]
    p_bar = sum(p_i) / n
    p_j = [sum(row[j] for row in counts) / (n * raters) for j in range(len(categories))]
    p_e = sum(p * p for p in p_j)
    return None if p_e >= 1.0 else (p_bar - p_e) / (1 - p_e)


def merge(clip_verdicts: dict[str, dict[str, str]]) -> tuple[dict[str, str], list[str]]:
    """Majority verdict per clip (reviewer -> verdict); ties are listed for adjudication and get no merged
    verdict. A clip seen by one reviewer takes that verdict."""
    merged, ties = {}, []
    for clip, by_reviewer in sorted(clip_verdicts.items()):
        votes: dict[str, int] = {}
        for verdict in by_reviewer.values():
            votes[verdict] = votes.get(verdict, 0) + 1
        top = max(votes.values())
        leaders = [v for v, c in votes.items() if c == top]
        if len(leaders) == 1:
            merged[clip] = leaders[0]
        else:
            ties.append(clip)
    return merged, ties


def agreement(docs: Sequence[dict[str, Any]], names: Sequence[str]) -> dict[str, Any]:
    """Per-reviewer pass rates, pairwise Cohen's kappa, Fleiss' kappa over clips every reviewer saw, the
    clips they disagree on, merged verdicts and ties."""
    by_clip: dict[str, dict[str, str]] = {}
    classes: dict[str, str] = {}
    per_reviewer = {}
    for name, doc in zip(names, docs):
        verdicts = doc["verdicts"]
        passed = sum(e["verdict"] == "pass" for e in verdicts.values())
        per_reviewer[name] = _rate(passed, len(verdicts))
        for clip, entry in verdicts.items():
            by_clip.setdefault(clip, {})[name] = entry["verdict"]
            classes[clip] = str(entry["class"])
    pairs = {}
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            shared = sorted(c for c, v in by_clip.items() if a in v and b in v)
            pairs[f"{a} / {b}"] = {"clips": len(shared), "kappa": cohen_kappa([by_clip[c][a] for c in shared],
                                                                               [by_clip[c][b] for c in shared])}
    everyone = sorted(c for c, v in by_clip.items() if len(v) == len(names))
    fleiss = fleiss_kappa([[by_clip[c][r] for r in names] for c in everyone]) if len(names) >= 2 else None
    disagree = [{"clip": c, "class": classes[c], "verdicts": by_clip[c]} for c in sorted(by_clip)
                if len(set(by_clip[c].values())) > 1]
    merged, ties = merge(by_clip)
    merged_pass = sum(v == "pass" for v in merged.values())
    return {"per_reviewer": per_reviewer, "cohen": pairs, "fleiss": {"clips": len(everyone), "kappa": fleiss},
            "disagreements": disagree, "merged": merged, "ties": ties, "merged_rate": _rate(merged_pass, len(merged))}


def _audit_flags(audit_csv: Path) -> dict[str, dict[str, Any]]:
    """clip rel -> the audit's row (flagged, reason, suspicion) from ``qa audit``'s CSV."""
    import csv

    if not audit_csv.is_file():
        raise QAError(f"audit CSV not found: {audit_csv} (run privvid qa audit DATASET first)")
    try:
        with open(audit_csv, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            if not {"rel", "flagged"} <= set(reader.fieldnames or ()):
                raise QAError(f"{audit_csv} is not a qa audit CSV (it has no 'rel' and 'flagged' columns)")
            return {row["rel"]: row for row in reader}
    except (UnicodeDecodeError, csv.Error) as exc:
        raise QAError(f"{audit_csv} is not a qa audit CSV ({exc})") from None


def _same_sample(docs: Sequence[dict[str, Any]], paths: Sequence[str | os.PathLike[str]],
                 sample: dict[str, Any] | None) -> None:
    """The verdict files are of one sample (clip ids such as 0000 mean another clip in another sample) and,
    with ``sample``, of that one; no file is given twice (its reviews would count twice)."""
    seen: dict[Path, str] = {}
    for p in paths:
        real = Path(p).resolve()
        if real in seen:
            raise QAError(f"{p} is given twice (as {seen[real]} too): each reviewer's file counts once")
        seen[real] = str(p)

    def named(doc: dict[str, Any]) -> tuple[str, ...] | None:
        # the dataset by its folder's name: a dataset moved since the sample was drawn is the same one
        given = doc.get("sample")
        if not isinstance(given, dict):
            return None
        return (Path(str(given.get("dataset", ""))).name, str(given.get("seed")), str(given.get("per_class")))

    by_name: dict[str, str] = {}
    for doc, p in zip(docs, paths):   # a copy of one reviewer's file under another name
        name = doc.get("reviewer")
        if isinstance(name, str) and name.strip():
            if name.strip() in by_name:
                raise QAError(f"{p} and {by_name[name.strip()]} both hold reviewer {name.strip()!r}'s verdicts: "
                              "each reviewer counts once (give one of them)")
            by_name[name.strip()] = str(p)

    def rels(doc: dict[str, Any]) -> dict[str, str] | None:
        # the clip each id names, where every verdict says it (the sheet writes it)
        got = {i: e.get("rel") for i, e in doc["verdicts"].items()}
        return got if all(isinstance(r, str) and r for r in got.values()) else None

    want = named({"sample": sample}) if sample is not None else None
    first = "--sample's sample.json"
    want_rels = ({str(i.get("id")): i.get("rel") for i in sample.get("items", [])} if sample is not None else None)
    rel_of = {item.get("id"): item.get("rel") for item in (sample or {}).get("items", [])}
    for doc, p in zip(docs, paths):
        got = named(doc)
        mine = rels(doc)
        if got is not None and want is None:
            want, first, want_rels = got, str(p), mine
        elif got is not None and got != want:
            # another seed or per-class count of the same dataset may still draw the same clips under the same
            # ids (qa sample allows that over saved verdicts): then the verdicts are of this sample
            assert want is not None
            same = got[0] == want[0] and mine is not None and want_rels is not None and all(
                i in want_rels and want_rels[i] == r for i, r in mine.items())
            if not same:
                raise QAError(f"{p} holds verdicts on another sample than {first}: it was drawn with dataset "
                              f"{got[0]}, seed {got[1]}, {got[2]} per class, against dataset {want[0]}, seed "
                              f"{want[1]}, {want[2]} per class, and its clip ids name other clips")
        for item_id, entry in doc["verdicts"].items():
            if entry.get("rel") and rel_of.get(item_id) and rel_of[item_id] != entry["rel"]:
                raise QAError(f"{p}: clip {item_id} is {entry['rel']} there and {rel_of[item_id]} in "
                              "--sample's sample.json: verdicts of another sample")


def _load(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise QAError(f"verdict file not found: {path}")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, RecursionError) as exc:   # not JSON, not UTF-8, nested too deeply
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


def report(paths: Sequence[str | os.PathLike[str]], sample: dict[str, Any] | None = None,
           audit_csv: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Statistics of one or more verdict files (one per reviewer): pass rates with Wilson intervals, per class
    and per reviewer, agreement (Cohen's and Fleiss' kappa), disagreements, merged majority verdicts and ties.
    ``sample`` (sample.json) adds unreviewed counts; ``audit_csv`` puts ``qa audit``'s flags beside them."""
    if not paths:
        raise QAError("give at least one verdicts.json")
    docs = [_load(Path(p)) for p in paths]
    _same_sample(docs, paths, sample)
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
    names = [doc.get("reviewer") or Path(p).stem for doc, p in zip(docs, paths)]
    if len(set(names)) != len(names):
        names = [f"{n} ({i + 1})" for i, n in enumerate(names)]
    out["agreement"] = agreement(docs, names)
    if sample is not None:
        ids = {item["id"] for item in sample.get("items", [])}
        out["unreviewed"] = sorted(ids - set(clip_verdicts))
        out["sampled"] = len(ids)
    if audit_csv is not None:
        flags = _audit_flags(Path(audit_csv))
        rel_of, mode_of = {}, {}
        for doc in docs:
            for clip, entry in doc["verdicts"].items():
                rel_of[clip] = entry.get("rel", "")
                if entry.get("mode"):
                    mode_of[clip] = str(entry["mode"])
        for item in (sample or {}).get("items", []):
            if isinstance(item, dict) and item.get("id") in rel_of and item.get("mode"):
                mode_of[item["id"]] = str(item["mode"])
        if not any(rel in flags for rel in rel_of.values()):
            raise QAError(f"the audit {audit_csv} covers none of the reviewed clips (an audit of another "
                          "dataset?); run privvid qa audit on the dataset the sample was drawn from")
        # the same clip names in an output of another mode (OUT_blur beside OUT_remove) are other clips
        for clip, mode in sorted(mode_of.items()):
            row = flags.get(rel_of.get(clip, ""))
            if row is not None and row.get("mode") and row["mode"] != mode:
                raise QAError(f"the audit {audit_csv} is of {row['mode']} clips, the reviewed clip {clip} "
                              f"({rel_of[clip]}) is a {mode} clip (an audit of another dataset?); run privvid "
                              "qa audit on the dataset the sample was drawn from")
        beside = []
        for clip in sorted(clip_verdicts):
            row = flags.get(rel_of.get(clip, ""))
            beside.append({"clip": clip, "rel": rel_of.get(clip, ""), "verdicts": clip_verdicts[clip],
                           "merged": out["agreement"]["merged"].get(clip),
                           "audit_flagged": None if row is None else row.get("flagged") in ("True", "true", "1"),
                           "audit_reason": None if row is None else row.get("reason", "")})
        out["audit"] = beside
        # reviewers failed a clip the audit passed: by majority, or on a tie (a tie holds a fail)
        out["audit_missed"] = [b["clip"] for b in beside if b["audit_flagged"] is False and b["merged"] != "pass"]
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
    ag = rep.get("agreement")
    if ag:
        lines += ["", "| reviewer | pass rate |", "|---|---|"]
        lines += [f"| {name} | {fmt(r)} |" for name, r in ag["per_reviewer"].items()]
        def kappa(k: float | None) -> str:
            return "n/a" if k is None else f"{k:.3f}"
        if ag["cohen"]:
            lines += ["", "| reviewers | clips both saw | Cohen's kappa |", "|---|---|---|"]
            lines += [f"| {pair} | {v['clips']} | {kappa(v['kappa'])} |" for pair, v in ag["cohen"].items()]
        lines += ["", f"- Fleiss' kappa over the {ag['fleiss']['clips']} clips every reviewer saw: "
                      f"{kappa(ag['fleiss']['kappa'])}",
                  f"- merged (majority) verdicts: {fmt(ag['merged_rate'])} pass; ties to adjudicate: "
                  + (", ".join(ag["ties"]) if ag["ties"] else "none"),
                  f"- clips the reviewers disagree on: {len(ag['disagreements'])}"
                  + (" (" + ", ".join(d["clip"] for d in ag["disagreements"]) + ")" if ag["disagreements"] else "")]
    if "audit" in rep:
        flagged = sum(bool(b["audit_flagged"]) for b in rep["audit"])
        lines += [f"- automatic audit: {flagged} of {len(rep['audit'])} reviewed clips flagged; reviewers failed "
                  f"{len(rep['audit_missed'])} clip(s) the audit passed"
                  + (f" ({', '.join(rep['audit_missed'])})" if rep["audit_missed"] else ""),
                  "", "| clip | file | verdicts | merged | audit |", "|---|---|---|---|---|"]
        for b in rep["audit"]:
            flag = "not audited" if b["audit_flagged"] is None else ("flagged: " + (b["audit_reason"] or "yes")
                                                                      if b["audit_flagged"] else "passed")
            lines.append(f"| {b['clip']} | `{b['rel']}` | {', '.join(b['verdicts'])} | {b['merged'] or 'tie'} | "
                         f"{flag} |")
    return "\n".join(lines) + "\n"
