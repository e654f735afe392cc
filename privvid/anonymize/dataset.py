"""Whole datasets: discover clips, skip what the ledger says is done, run the rest, record everything.

A clip that fails for any reason is *quarantined*: nothing is written for it under the
output root, and its reason goes to the ledger and to ``.privvid/quarantine.jsonl``.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import privvid
from privvid.anonymize.pipeline import anonymize_clip, output_paths
from privvid.config import AnonymizeConfig
from privvid.errors import PrivvidError
from privvid.io.discover import STATE_DIR, ClipSource, content_hash, discover
from privvid.runtime.executors import WorkerDied, make_executor
from privvid.runtime.ledger import Ledger


@dataclass
class ClipOutcome:
    relpath: str
    source: str
    status: str                 # done | failed | skipped
    reason: str | None = None
    frames: int = 0
    seconds: float = 0.0
    coverage_mean: float | None = None
    notes: list[str] = field(default_factory=list)


@dataclass
class RunSummary:
    out_root: Path
    outcomes: list[ClipOutcome]
    ignored: list[Path]
    seconds: float

    def count(self, status: str) -> int:
        return sum(o.status == status for o in self.outcomes)

    @property
    def failed(self) -> list[ClipOutcome]:
        return [o for o in self.outcomes if o.status == "failed"]

    @property
    def frames(self) -> int:
        return sum(o.frames for o in self.outcomes if o.status == "done")


@dataclass(frozen=True)
class _Job:
    source: ClipSource
    out_root: Path
    cfg: AnonymizeConfig
    input_hash: str
    timeout: float | None


class ClipTimeout(PrivvidError):
    pass


def params_hash(cfg: AnonymizeConfig) -> str:
    blob = json.dumps({"version": privvid.__version__, "config": cfg.to_dict()}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _run_job(job: _Job) -> ClipOutcome:
    """Runs in a worker: anonymise one clip, turning every failure into a recorded outcome."""
    source = job.source
    use_alarm = bool(job.timeout) and hasattr(signal, "SIGALRM")
    if use_alarm:
        def on_alarm(signum: int, frame: Any) -> None:
            raise ClipTimeout(f"timed out after {job.timeout:g} s")

        previous = signal.signal(signal.SIGALRM, on_alarm)
        signal.setitimer(signal.ITIMER_REAL, float(job.timeout))  # type: ignore[arg-type]
    try:
        result = anonymize_clip(source, job.out_root, job.cfg, input_hash=job.input_hash)
        return ClipOutcome(source.relpath, str(source.path), "done", frames=result.frames,
                           seconds=result.seconds, coverage_mean=result.coverage_mean, notes=result.notes)
    except Exception as exc:  # noqa: BLE001 - any failure quarantines the clip
        # outputs of an earlier run with other parameters must not stand in for this one
        for path in output_paths(job.out_root, source.relpath).values():
            path.unlink(missing_ok=True)
        if isinstance(exc, PrivvidError):
            reason = _one_line(exc)
        else:
            detail = traceback.extract_tb(exc.__traceback__)[-1]
            where = f" (at {Path(detail.filename).name}:{detail.lineno})" if detail else ""
            reason = f"{type(exc).__name__}: {_one_line(exc)}{where}"
        return ClipOutcome(source.relpath, str(source.path), "failed", reason=reason)
    finally:
        if use_alarm:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def _clean_partials(out_root: Path) -> None:
    """Remove temp files a killed run left behind (never a finished output)."""
    for path in out_root.rglob(".*.partial*"):
        if path.is_file():
            path.unlink(missing_ok=True)


def _input_bytes(path: Path) -> int:
    """Size of a clip's input (a video file, or the files of a frame folder): a cheap stand-in for
    how long it takes."""
    try:
        if path.is_dir():
            return sum(f.stat().st_size for f in path.iterdir() if f.is_file())
        return path.stat().st_size
    except OSError:
        return 0


def preflight(cfg: AnonymizeConfig) -> None:
    """Fail before any clip (and before OUT is touched) on what every clip would fail on: an unknown
    mode or detector, a bad detector option, an embedded model file that is not installed."""
    from privvid.anonymize.modes import MODES
    from privvid.detect import validate_options

    MODES.resolve(cfg.mode)
    validate_options(cfg.detect)
    needs_ssd = cfg.detect.backend == "ssd" or cfg.check.active(cfg.mode) or (
        cfg.mode in ("remove", "mesh") and cfg.inpaint.guard)
    if needs_ssd:
        from privvid.runtime.models import SSD_PERSON, npm_model_path

        npm_model_path(SSD_PERSON)


def anonymize_dataset(
    input_path: str | os.PathLike[str],
    out_root: str | os.PathLike[str],
    cfg: AnonymizeConfig,
    workers: int = 1,
    executor: str = "local",
    ray_address: str | None = None,
    clip_timeout: float | None = None,
    on_clip: Callable[[ClipOutcome], None] | None = None,
    on_start: Callable[[int], None] | None = None,
) -> RunSummary:
    """Anonymise every clip under ``input_path`` into ``out_root`` (mirrored relative paths).

    Re-running the same command skips clips the ledger records as done with the same input
    and parameters; ``on_start(n_to_run)`` and ``on_clip(outcome)`` drive progress displays.
    """
    started = time.perf_counter()
    preflight(cfg)
    input_path, out_root = Path(input_path).resolve(), Path(out_root).resolve()
    if out_root == input_path or input_path in out_root.parents:
        raise PrivvidError(f"the output folder {out_root} must not be inside the input {input_path}")
    found = discover(input_path)
    out_root.mkdir(parents=True, exist_ok=True)
    state = out_root / STATE_DIR
    ledger = Ledger(state / "ledger.sqlite")
    _clean_partials(out_root)
    phash = params_hash(cfg)

    outcomes: list[ClipOutcome] = []
    jobs: list[_Job] = []
    for source in found.clips:
        try:
            digest = content_hash(source.path)
        except OSError as exc:
            outcome = ClipOutcome(source.relpath, str(source.path), "failed", reason=f"unreadable: {exc}")
            _record(ledger, state, outcome, phash, None)
            outcomes.append(outcome)
            continue
        paths = output_paths(out_root, source.relpath)
        if (ledger.is_done(source.relpath, digest, phash) and paths["video"].exists()
                and paths["sidecar"].exists()):
            row = ledger.get(source.relpath)
            outcomes.append(ClipOutcome(source.relpath, str(source.path), "skipped",
                                        frames=row.frames or 0 if row else 0))
            continue
        ledger.mark(source.relpath, str(source.path), phash, "running", input_hash=digest)
        jobs.append(_Job(source, out_root, cfg, digest, clip_timeout))

    if workers > 1:
        # biggest inputs first: with several workers a long clip started last would leave the
        # other workers idle at the end of the run (longest-processing-time-first scheduling)
        jobs.sort(key=lambda job: -_input_bytes(job.source.path))
    if on_start:
        on_start(len(jobs))
    runner = make_executor(executor, min(workers, max(1, len(jobs))), ray_address)
    hashes = {job.source.relpath: job.input_hash for job in jobs}
    try:
        for job, result in runner.map_unordered(_run_job, jobs):
            if isinstance(result, WorkerDied):
                result = ClipOutcome(job.source.relpath, str(job.source.path), "failed", reason=str(result))
            _record(ledger, state, result, phash, hashes[job.source.relpath])
            outcomes.append(result)
            if on_clip:
                on_clip(result)
    finally:
        ledger.close()
    outcomes.sort(key=lambda o: o.relpath)
    return RunSummary(out_root, outcomes, found.ignored, time.perf_counter() - started)


def _record(ledger: Ledger, state: Path, outcome: ClipOutcome, phash: str, digest: str | None) -> None:
    ledger.mark(outcome.relpath, outcome.source, phash, outcome.status, input_hash=digest,
                reason=outcome.reason, frames=outcome.frames, seconds=outcome.seconds)
    if outcome.status == "failed":
        with open(state / "quarantine.jsonl", "a") as handle:
            handle.write(json.dumps({"relpath": outcome.relpath, "source": outcome.source,
                                     "reason": outcome.reason, "params": phash, "time": time.time()}) + "\n")
