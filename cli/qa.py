"""``privvid qa``: review samples, the review sheet, pass-rate reports and the privacy audit."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

console = Console()
app = typer.Typer(help="Quality and privacy checks of an anonymised dataset.", no_args_is_help=True)


@app.command("sample")
def sample_command(
    dataset: Path = typer.Argument(..., help="Output folder of privvid anonymize."),
    out: Path = typer.Option(..., "--out", help="QA folder to write (sample.json, media/)."),
    per_class: int = typer.Option(4, help="Clips per class (PPMA: 4, Mask2Mesh: 5)."),
    seed: int = typer.Option(0),
    frames: int = typer.Option(6, help="Frames shown per clip."),
    height: int = typer.Option(180, help="Height of the frames shown (px)."),
    originals: Optional[Path] = typer.Option(None, "--originals", help="The input folder (or clip) given to "
                                             "anonymize: sidecars name each input relative to it."),
    order: str = typer.Option("class", "--order", help="Order of the clips on the review page: class (class, then "
                              "path), random (seeded shuffle) or risk (the audit's most suspicious first; needs "
                              "the audit CSV)."),
    audit: Optional[Path] = typer.Option(None, "--audit", help="qa audit's CSV (default DATASET/.privvid/audit.csv "
                                         "when it exists): its flag and suspicion are shown per clip."),
    preview_seconds: float = typer.Option(10.0, "--preview-seconds", help="Length of the preview videos "
                                          "(original, anonymised, mask overlay); 0 = frames only."),
) -> None:
    """Draw a seeded, class-balanced sample; extract original/anonymised frames and preview videos for review."""
    from privvid.qa import sample

    result = sample(dataset, out, per_class=per_class, seed=seed, frames=frames, thumb_height=height,
                    originals=originals, order=order, audit_csv=audit, preview_seconds=preview_seconds)
    problems = sum(bool(i["problems"]) for i in result.items)
    masks = sum(bool((i.get("preview") or {}).get("mask")) for i in result.items)
    console.print(f"sampled {len(result.items)} clips from {len(result.classes)} class(es) into {escape(str(out))} "
                  f"(order: {order}; {masks} with a mask overlay)")
    if result.short_classes:
        console.print(f"[yellow]{len(result.short_classes)} class(es) have fewer than {per_class} clips[/yellow]: "
                      + ", ".join(f"{escape(k)} ({v})" for k, v in sorted(result.short_classes.items())[:10]))
    if problems:
        console.print(f"[yellow]{problems} clip(s) with problems[/yellow] (an original missing or unreadable, a clip "
                      "cut short or written in part); each is named on its card and in sample.json")
    console.print(f"next: privvid qa sheet {escape(str(out))}   then   privvid qa serve {escape(str(out))} [--reviewer NAME]")


@app.command("sheet")
def sheet_command(folder: Path = typer.Argument(..., help="QA folder written by `privvid qa sample`.")) -> None:
    """Write the HTML review page (index.html) for a sample."""
    from privvid.qa import write_sheet

    path = write_sheet(folder)
    console.print(f"wrote {escape(str(path))}")
    console.print(f"review with saving to {escape(str(folder))}/verdicts.json: privvid qa serve {escape(str(folder))}   "
                  f"(one file per reviewer: --reviewer NAME saves {escape(str(folder))}/verdicts-NAME.json; "
                  "or open the file and use its download button)")


@app.command("serve")
def serve_command(
    folder: Path = typer.Argument(..., help="QA folder written by `privvid qa sample`."),
    port: int = typer.Option(8765, help="Port to listen on (0 = any free port)."),
    host: str = typer.Option("127.0.0.1", help="Address to listen on. Anything but a loopback address makes the "
                                               "page and the raw original frames reachable from the network."),
    verdicts: Optional[Path] = typer.Option(None, help="Where verdicts are saved (default FOLDER/verdicts.json, "
                                            "or FOLDER/verdicts-NAME.json with --reviewer)."),
    reviewer: Optional[str] = typer.Option(None, "--reviewer", help="Reviewer name (letters, digits, _ and -): "
                                           "saves to FOLDER/verdicts-NAME.json, one file per reviewer."),
) -> None:
    """Serve the review page; every verdict is saved to verdicts.json (verdicts-NAME.json with --reviewer)."""
    from privvid.qa import make_server
    from privvid.qa.sheet import is_loopback

    server = make_server(folder, host=host, port=port, verdicts=verdicts, reviewer=reviewer)
    wildcard = host.strip("[]") in ("0.0.0.0", "::")
    if not is_loopback(host):
        shown = escape(host)
        Console(stderr=True).print(
            f"[yellow]warning:[/yellow] --host {shown} is not a loopback address: the review page and the raw "
            "original frames of the sampled clips are reachable from the network, with no password. Requests are "
            "answered only when addressed to " + ("a loopback name (bind a specific address to review from another "
                                                  "machine)" if wildcard else f"a loopback name or {shown}") + ".")
    url_host = "127.0.0.1" if wildcard else str(server.server_address[0])
    saving = f"; reviewer {escape(reviewer)}" if reviewer else ""
    console.print(f"review page: http://{url_host}:{server.server_address[1]}/index.html  (Ctrl-C stops{saving})")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


@app.command("report")
def report_command(
    verdicts: List[Path] = typer.Argument(..., help="verdicts.json file(s), one per reviewer."),
    sample_folder: Optional[Path] = typer.Option(None, "--sample", help="QA folder, to count unreviewed clips."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Also write the statistics as JSON."),
    audit: Optional[Path] = typer.Option(None, "--audit", help="qa audit's CSV (DATASET/.privvid/audit.csv): its "
                                         "flags beside the verdicts."),
    markdown: Optional[Path] = typer.Option(None, "--markdown", help="Also write the report as Markdown (for "
                                            "the datasheet)."),
) -> None:
    """Pass rate with a Wilson 95% interval, overall, per class and per reviewer; agreement (Cohen's and
    Fleiss' kappa), disagreements, merged majority verdicts and ties; the audit's flags beside them."""
    from privvid.io.atomic import check_out_file, write_text_atomic
    from privvid.qa import report
    from privvid.qa.report import report_markdown
    from privvid.qa.sample import load_sample

    for path, flag in ((json_out, "--json"), (markdown, "--markdown")):
        if path is not None:
            check_out_file(path, flag)
    sample = load_sample(sample_folder) if sample_folder else None
    rep = report(verdicts, sample, audit)
    table = Table(title="QA verdicts per class")
    for col in ("class", "pass rate", "95% CI", "pass", "person visible", "artefact", "occlusion"):
        table.add_column(col, justify="left" if col == "class" else "right")
    for label, row in rep["per_class"].items():
        c = row["counts"]
        table.add_row(escape(label), f"{row['rate']:.1%} ({row['passed']}/{row['n']})",
                      f"{row['ci95'][0]:.1%}-{row['ci95'][1]:.1%}", str(c["pass"]), str(c["person_visible"]),
                      str(c["artefact"]), str(c["occlusion"]))
    r = rep["reviews"]
    table.add_section()
    table.add_row("all reviews", f"{r['rate']:.1%} ({r['passed']}/{r['n']})",
                  f"{r['ci95'][0]:.1%}-{r['ci95'][1]:.1%}", *(str(rep["counts"][v]) for v in
                                                              ("pass", "person_visible", "artefact", "occlusion")))
    console.print(table)
    c = rep["clips"]
    console.print(f"clips passed by every reviewer: {c['rate']:.1%} ({c['passed']}/{c['n']}), "
                  f"95% CI {c['ci95'][0]:.1%}-{c['ci95'][1]:.1%}; reviewers: {len(rep['files'])}")
    if rep.get("unreviewed"):
        console.print(f"[yellow]{len(rep['unreviewed'])} of {rep['sampled']} sampled clips have no verdict yet[/yellow]")
    ag = rep["agreement"]
    if len(ag["per_reviewer"]) > 1:
        rt = Table(title="reviewers")
        for col in ("reviewer", "pass rate", "95% CI"):
            rt.add_column(col, justify="left" if col == "reviewer" else "right")
        for name, r in ag["per_reviewer"].items():
            rt.add_row(escape(name), f"{r['rate']:.1%} ({r['passed']}/{r['n']})" if r["n"] else "n/a",
                       f"{r['ci95'][0]:.1%}-{r['ci95'][1]:.1%}")
        console.print(rt)
        for pair, v in ag["cohen"].items():
            k = "n/a" if v["kappa"] is None else f"{v['kappa']:.3f}"
            console.print(f"Cohen's kappa {escape(pair)}: {k} over {v['clips']} clips")
        fk = ag["fleiss"]["kappa"]
        console.print(f"Fleiss' kappa: {'n/a' if fk is None else f'{fk:.3f}'} over {ag['fleiss']['clips']} clips; "
                      f"{len(ag['disagreements'])} disagreement(s); merged verdicts pass "
                      f"{ag['merged_rate']['passed']}/{ag['merged_rate']['n']}; ties to adjudicate: "
                      + (", ".join(ag["ties"]) or "none"))
    if "audit" in rep:
        flagged = sum(bool(b["audit_flagged"]) for b in rep["audit"])
        console.print(f"audit: {flagged} of {len(rep['audit'])} reviewed clips flagged; reviewers failed "
                      f"{len(rep['audit_missed'])} clip(s) the audit passed")
    if json_out:
        write_text_atomic(json_out, json.dumps(rep, indent=2) + "\n")
        console.print(f"wrote {escape(str(json_out))}")
    if markdown:
        write_text_atomic(markdown, report_markdown(rep))
        console.print(f"wrote {escape(str(markdown))}")


@app.command("audit")
def audit_command(
    dataset: Path = typer.Argument(..., help="Output folder of privvid anonymize."),
    out: Optional[Path] = typer.Option(None, "--out", help="Per-clip CSV (default DATASET/.privvid/audit.csv; "
                                       "required for a folder privvid did not write, such as an input folder)."),
    frames: int = typer.Option(16, help="Frames checked per clip."),
    person: str = typer.Option("pose", help="Person checker: pose (MediaPipe BlazePose), a privvid detector "
                                            "backend name (e.g. yolo), or none."),
    person_weights: Optional[Path] = typer.Option(None, help="Weights for a detector backend (yolo): .tflite / .onnx."),
    trust_model_files: bool = typer.Option(False, "--trust-model-files", help="Load a pickle-based --person-weights "
                                           "(.pt: it can run code)."),
    face: bool = typer.Option(True, "--face/--no-face", help="Also run MediaPipe face detection."),
    threshold: float = typer.Option(0.5, help="Detection score counted as a hit."),
    min_hits: int = typer.Option(2, help="Frames with a hit needed to flag a clip."),
    tiles: int = typer.Option(2, help="Also check an N x N grid of overlapping crops (finds small people); 1 = off."),
    top: int = typer.Option(20, help="Most suspicious clips shown."),
) -> None:
    """Re-detect people and faces on every video of the dataset; rank clips so reviewers see suspicious
    ones first. A video without a sidecar is flagged too. Exits 1 when any clip is flagged."""
    from privvid.errors import ConfigError
    from privvid.io.atomic import write_text_atomic
    from privvid.qa import AuditConfig, audit, audit_output, summary, write_audit

    if top < 0:
        raise ConfigError(f"--top must be 0 or more, got {top}")
    target = audit_output(dataset, out)
    cfg = AuditConfig(frames=frames, person=person, person_weights=person_weights, face=face,
                      trust_model_files=trust_model_files,
                      threshold=threshold, min_hits=min_hits, tiles=tiles)
    with console.status("auditing ..."):
        result = audit(dataset, cfg)
    csv_path = write_audit(result, target)
    summ = summary(result)
    write_text_atomic(csv_path.with_suffix(".json"), json.dumps(summ, indent=2) + "\n")
    table = Table(title=f"audit: {summ['flagged']} of {summ['clips']} clips flagged "
                        f"(person: {summ['checkers']['person']}, face: {summ['checkers']['face']})")
    # short headers (explained below the table): the clip's name keeps its width in an 80-column terminal
    for col in ("rank", "clip", "flagged", "suspicion", "person", "face", "check"):
        table.add_column(col, justify="left" if col == "clip" else "right", overflow="fold")
    for row in result.rows[:top]:
        marks = ([] if row.sidecar else ["no sidecar"]) + ([row.error] if row.error else [])
        table.add_row(str(row.rank), escape(row.rel) + "".join(f" [red]{escape(m)}[/red]" for m in marks),
                      "[red]yes[/red]" if row.flagged else "no", f"{row.suspicion:.2f}",
                      f"{row.person_hits}/{row.frames_checked} ({row.person_max_score:.2f})",
                      f"{row.face_hits}/{row.frames_checked} ({row.face_max_score:.2f})",
                      f"{row.check_flagged} / {row.check_solid}" if row.check == "on" else row.check)
    console.print(table)
    if summ["same_detector_as_removal"]:
        console.print(f"[yellow]note:[/yellow] for {summ['same_detector_as_removal']} clip(s) the person checker uses "
                      "the model that did the removal; pass --person yolo --person-weights FILE for an independent check")
    raw = [row.rel for row in result.rows if not row.sidecar]
    if raw:
        console.print(f"[red]{len(raw)} video file(s) without a sidecar[/red] (not written by privvid anonymize; "
                      "raw files?), audited and flagged: " + ", ".join(escape(r) for r in raw[:10])
                      + (" ..." if len(raw) > 10 else ""))
    part = [row.rel for row in result.rows if row.in_part]
    if part:
        console.print(f"[red]{len(part)} clip(s) written in part[/red] (a sidecar that cannot be read, or a video "
                      "gone), flagged: " + ", ".join(escape(r) for r in part[:10]) + (" ..." if len(part) > 10 else ""))
    console.print("person / face: checked frames with a hit (highest score); check: frames the written-frame check "
                  "mended while the clip was made / boxes it painted solid")
    console.print(f"wrote {escape(str(csv_path))} and {escape(str(csv_path.with_suffix('.json')))} (column reason: why a "
                  "clip is flagged)")
    if summ["flagged"]:
        raise typer.Exit(1)


def register(main: typer.Typer) -> None:
    main.add_typer(app, name="qa")
