"""``privvid curate``: pick K distinct classes (K-NEXUS) or K random ones from a labelled source."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table


console = Console()


def curate(
    source: Optional[Path] = typer.Argument(None, help="Class-per-folder tree or Kinetics annotation CSV."),
    out: Path = typer.Option(..., "--out", help="Output folder (classes.txt, selection.json, subset.csv, separation.*)."),
    k: int = typer.Option(150, "--k", help="Number of classes to keep."),
    method: str = typer.Option("knexus", help="knexus | random"),
    video_root: Optional[Path] = typer.Option(None, help="CSV source: folder holding <youtube_id>_<start>_<end>.* clips."),
    labels_only: Optional[Path] = typer.Option(None, help="A file with one class name per line (no videos)."),
    split: Optional[str] = typer.Option(None, help="CSV source: only rows of this split (e.g. train)."),
    max_per_class: int = typer.Option(1000, help="Videos kept per selected class in subset.csv."),
    seed: int = typer.Option(0, help="Seed of the frame choice, k-means++ and the random method."),
    restarts: int = typer.Option(10, help="k-means++ initialisations (the best inertia wins)."),
    image_encoder: str = typer.Option("efficientnet-lite0", help="efficientnet-lite0 | clip | none"),
    text_encoder: str = typer.Option("minilm", help="minilm | clip | none"),
    clip_checkpoint: Optional[Path] = typer.Option(None, help="Encoder clip: local open_clip checkpoint."),
    clip_model: str = typer.Option("ViT-B-32", help="Encoder clip: open_clip architecture name."),
    embed_per_class: Optional[int] = typer.Option(None, help="Embed at most N videos per class (default: all)."),
    on_error: str = typer.Option("skip", help="Unreadable videos: skip (listed in selection.json) | fail."),
    cache: Optional[Path] = typer.Option(None, help="Embedding cache file (default ~/.cache/privvid/curate-embeddings.sqlite)."),
    no_cache: bool = typer.Option(False, "--no-cache", help="Do not read or write the embedding cache."),
    random_draws: int = typer.Option(100, help="Random selections compared in the separation report."),
    reference: List[Path] = typer.Option([], help="Class list(s) to compare the selection with (overlap)."),
) -> None:
    """Select K classes with K-NEXUS or at random, and report how separated the selection is."""
    from privvid.curate import CurateConfig, curate as run_curate, default_cache, load_source

    src = load_source(source, video_root=video_root, labels_only=labels_only, split=split)
    cfg = CurateConfig(
        k=k, method=method, seed=seed, restarts=restarts, max_per_class=max_per_class,
        image_encoder=None if image_encoder == "none" else image_encoder,
        text_encoder=None if text_encoder == "none" else text_encoder,
        clip_checkpoint=clip_checkpoint, clip_model=clip_model, embed_per_class=embed_per_class,
        on_error=on_error, cache=None if no_cache else (cache or default_cache()), random_draws=random_draws,
        reference=tuple(reference),
    )
    videos = sum(1 for vs in src.classes.values() for v in vs if v.path is not None)
    console.print(f"{src.kind} source: {len(src.labels)} classes, {videos} video files")
    if src.unclassed:
        console.print(f"[yellow]warning:[/yellow] {len(src.unclassed)} video(s) directly under "
                      f"{escape(str(source))} are in no class folder and not used (listed under \"unclassed\" "
                      f"in selection.json), e.g. {escape(', '.join(src.unclassed[:3]))}", highlight=False)

    def show(message, category, filename, lineno, file=None, line=None) -> None:   # noqa: ANN001
        console.print(f"[yellow]warning:[/yellow] {escape(str(message))}", highlight=False)

    with console.status("embedding and clustering ..."), warnings.catch_warnings():
        warnings.showwarning = show   # the message alone, not the library line that raised it
        result = run_curate(src, out, cfg)

    table = Table(title=f"{result.selection.method}: K={result.selection.k} of {result.classes} classes "
                        f"vs {result.report['random_draws']} random selections")
    table.add_column("metric")
    table.add_column("selected", justify="right")
    table.add_column("random mean ± std", justify="right")
    table.add_column("random as good", justify="right")
    for name, row in result.report["metrics"].items():
        table.add_row(f"{name} ({'lower' if row['lower_is_better'] else 'higher'} better)",
                      f"{row['selected']:.4f}", f"{row['random_mean']:.4f} ± {row['random_std']:.4f}",
                      f"{row['random_at_least_as_good']:.0%}")
    console.print(table)
    if result.skipped:
        console.print(f"[yellow]{len(result.skipped)} unreadable video(s) skipped[/yellow] (see selection.json)")
    if result.dropped:
        console.print(f"[yellow]{len(result.dropped)} class(es) left out, none of their videos readable[/yellow]: "
                      + ", ".join(escape(label) for label in list(result.dropped)[:10])
                      + (" ..." if len(result.dropped) > 10 else ""), highlight=False)
    if src.missing:
        console.print(f"[yellow]{len(src.missing)} annotation row(s) have no file under the video root[/yellow] "
                      f"(listed under \"missing\" in selection.json), e.g. {escape(', '.join(src.missing[:3]))}", highlight=False)
    used = result.cache
    if used.get("path"):
        console.print(f"embedding cache {escape(str(used['path']))}: {used['hits']} hit(s), {used['misses']} miss(es)")
    for shared in result.overlaps:
        console.print(f"overlap with {escape(Path(shared['path']).name)}: {shared['shared']} of {shared['selected']} "
                      f"selected classes are in its {shared['reference']} (Jaccard {shared['jaccard']:.3f}; "
                      "selection.json: reference_overlap)", highlight=False)
    console.print(f"wrote {escape(str(out))}/classes.txt, selection.json, subset.csv ({result.subset_rows} videos), "
                  "separation.md/.json/.png")


def register(app: typer.Typer) -> None:
    app.command("curate")(curate)
