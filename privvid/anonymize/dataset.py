"""Whole datasets: discover clips, skip what the ledger says is done, run the rest, record everything.

A clip that fails for any reason is *quarantined*: nothing is written for it under the
output root, and its reason goes to the ledger and to ``.privvid/quarantine.jsonl``.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import signal
import sqlite3
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import privvid
from privvid.anonymize.pipeline import anonymize_clip, output_paths
from privvid.config import FILL_MODES, MODE_SETTINGS, AnonymizeConfig, MeshConfig, refuse_other_modes
from privvid.errors import ConfigError, PrivvidError
from privvid.io.atomic import file_in_the_way, write_text_atomic
from privvid.io.discover import STATE_DIR, ClipSource, Discovery, content_hash, discover
from privvid.io.layout import OUTPUT_SUFFIXES
from privvid.io.video import VIDEO_EXTENSIONS
from privvid.runtime.executors import WorkerDied, make_executor
from privvid.runtime.ledger import Ledger
from privvid.runtime.lock import RunLock


@dataclass
class ClipOutcome:
    relpath: str
    source: str                 # the input, relative to the input root
    status: str                 # done | failed | skipped (already done) | planned (dry run)
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
    skipped_inputs: list[tuple[Path, str]] = field(default_factory=list)  # not read, and why (a FIFO ...)
    renamed: list[tuple[str, str]] = field(default_factory=list)
    dry_run: bool = False
    stopped: str | None = None   # why the run ended before its last clip (Ctrl-C, SIGTERM, an error) ...
    unfinished: list[str] = field(default_factory=list)   # ... and the clips it left for the next run
    live: str | None = None      # dry run: the run writing into OUT now (who), if one is
    input_root: Path | None = None   # IN (the folder of IN for a list or a clip): skipped inputs are named from it

    def to_dict(self) -> dict[str, Any]:
        counts = {s: self.count(s) for s in ("done", "skipped", "failed", "planned")}
        return {"out": str(self.out_root) if self.dry_run else ".", "seconds": round(self.seconds, 3),
                "dry_run": self.dry_run, "counts": counts, "frames": self.frames,
                "clips": [asdict(o) for o in self.outcomes],
                "inputs_skipped": [{"path": self._shown(p), "reason": r} for p, r in self.skipped_inputs],
                "renamed": [{"input": a, "output": b + OUTPUT_SUFFIXES["video"]} for a, b in self.renamed],
                "ignored_files": len(self.ignored), "stopped": self.stopped, "unfinished": self.unfinished,
                **({"live_run": self.live} if self.dry_run else {})}

    def _shown(self, path: Path) -> str:
        """An input as summary.json names it: relative to IN (a list's rows as the list gives them), never
        absolute (the record keeps no absolute path unless asked to); its name where it lies elsewhere."""
        if self.input_root is not None and self.input_root != Path(self.input_root.anchor):   # not from /
            for root in (self.input_root, self.input_root.resolve()):
                try:
                    return Path(os.path.normpath(path)).relative_to(root).as_posix()
                except ValueError:
                    continue
        return path.name

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


class ClipTimeout(BaseException):
    """A clip ran past ``--clip-timeout``. Raised by the alarm wherever the clip's code is, so it is not an
    ``Exception``: a handler inside the clip that catches every failure of its own part (a body that
    cannot be fitted is dropped, a backend's error is recorded) must not take it for one and let the clip
    run on without a limit. :func:`_run_job` turns it into the clip's failure; it never leaves a worker."""


# how long the alarm waits before trying again when it lands while a module is being imported (a module
# left half-imported would break every later clip of the same process)
_ALARM_RETRY_S = 0.05


def _importing(frame: Any) -> bool:
    """Whether ``frame`` or a frame that called it runs importlib's machinery (a module is being
    imported)."""
    while frame is not None:
        if frame.f_code.co_filename.startswith("<frozen importlib"):
            return True
        frame = frame.f_back
    return False


def _alarm_handler(timeout: float) -> Callable[[int, Any], None]:
    def on_alarm(signum: int, frame: Any) -> None:
        if _importing(frame):
            signal.setitimer(signal.ITIMER_REAL, _ALARM_RETRY_S)
            return
        raise ClipTimeout(f"timed out after {timeout:g} s")

    return on_alarm


def params_hash(cfg: AnonymizeConfig) -> str:
    blob = json.dumps({"version": privvid.__version__, "config": cfg.resolved().to_dict()}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _run_job(job: _Job) -> ClipOutcome:
    """Runs in a worker: anonymise one clip, turning every failure into a recorded outcome."""
    try:
        return _run_job_timed(job)
    except ClipTimeout as exc:
        # wherever the alarm went off (in the clip, or in recording another failure of it), the timer is off
        # by now: the clip fails and nothing of it stays
        _remove_outputs(job.out_root, job.source.relpath)
        return ClipOutcome(job.source.relpath, job.source.input_rel, "failed", reason=_one_line(exc))


def _run_job_timed(job: _Job) -> ClipOutcome:
    source = job.source
    use_alarm = bool(job.timeout) and hasattr(signal, "SIGALRM")
    if use_alarm:
        previous = signal.signal(signal.SIGALRM, _alarm_handler(float(job.timeout)))  # type: ignore[arg-type]
        signal.setitimer(signal.ITIMER_REAL, float(job.timeout))  # type: ignore[arg-type]
    try:
        started = time.time()
        result = anonymize_clip(source, job.out_root, job.cfg, input_hash=job.input_hash)
        # an earlier run's masks / params that this run did not write again must not sit beside the new clip
        _remove_outputs(job.out_root, source.relpath, older_than=started)
        return ClipOutcome(source.relpath, source.input_rel, "done", frames=result.frames,
                           seconds=result.seconds, coverage_mean=result.coverage_mean, notes=result.notes)
    except Exception as exc:  # noqa: BLE001 - any failure quarantines the clip (a ClipTimeout: _run_job)
        if isinstance(exc, PrivvidError):
            reason = _one_line(exc)
        else:
            detail = traceback.extract_tb(exc.__traceback__)[-1]
            where = f" (at {Path(detail.filename).name}:{detail.lineno})" if detail else ""
            reason = f"{type(exc).__name__}: {_one_line(exc)}{where}"
        # outputs of an earlier run with other parameters must not stand in for this one
        left = _remove_outputs(job.out_root, source.relpath)
        if left:
            reason += f"; could not remove an earlier output ({left}): delete it by hand"
        return ClipOutcome(source.relpath, source.input_rel, "failed", reason=reason)
    finally:
        if use_alarm:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)


def _wanted(cfg: AnonymizeConfig) -> tuple[str, ...]:
    """The outputs a finished clip of this run has (a clip missing one of them is done again)."""
    extra = (("masks",) if cfg.save_masks else ()) + (("params",) if cfg.mode == "mesh" and cfg.mesh.save_params else ())
    return ("video", "sidecar") + extra


def _present(paths: dict[str, Path], wanted: tuple[str, ...]) -> bool:
    """Whether a clip's outputs are all there: files with something in them (an output emptied or cut to
    nothing after the run, by a full disk or a careless copy, is done again)."""
    try:
        return all(paths[kind].stat().st_size > 0 for kind in wanted)
    except OSError:
        return False


def _remove_outputs(out_root: Path, relpath: str, older_than: float | None = None) -> str:
    """Delete a clip's outputs (only those last written before ``older_than``, a time.time(), when given);
    return what could not be deleted (a read-only folder) as one line."""
    problems = []
    for path in output_paths(out_root, relpath).values():
        try:
            if older_than is not None and (not path.exists() or path.stat().st_mtime >= older_than):
                continue
            path.unlink(missing_ok=True)
        except OSError as exc:
            problems.append(f"{path.name}: {exc.strerror or exc}")
    return ", ".join(problems)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def _clean_partials(out_root: Path) -> None:
    """Remove temp files a killed run left behind (never a finished output)."""
    for path in out_root.rglob(".*.partial*"):
        try:
            if path.is_file():
                path.unlink(missing_ok=True)
        except OSError:
            continue  # a read-only folder: the file is hidden and never read as an output


def _input_bytes(path: Path) -> int:
    """Size of a clip's input (a video file, or the files of a frame folder): a cheap stand-in for
    how long it takes."""
    try:
        if path.is_dir():
            return sum(f.stat().st_size for f in path.iterdir() if f.is_file())
        return path.stat().st_size
    except OSError:
        return 0


MIN_FREE_BYTES = 64 << 20  # a run does not start on a disk with less room than this


def preflight(cfg: AnonymizeConfig) -> None:
    """Fail before any clip (and before OUT is touched) on what every clip would fail on: an unknown
    mode, detector, inpainter or pose source, a bad option, a model file that is missing, corrupt or
    pickle-based (without ``trust_model_files``), an embedded model file that is not installed. ``cfg`` as
    it runs (:meth:`AnonymizeConfig.resolved`, which ``anonymize_dataset`` applies first)."""
    from privvid.anonymize.modes import MODES
    from privvid.detect import DETECTORS, validate_options
    from privvid.inpaint import INPAINTERS

    MODES.resolve(cfg.mode)
    validate_options(cfg.detect)
    if cfg.mode != "mesh":
        # a model file or mesh setting no part of this mode reads is a mistake to say, not to skip (as --weights
        # with ssd)
        unread = [flag for flag, given in (("--body-model", cfg.mesh.body_model is not None),
                                           ("--pose-weights", cfg.mesh.pose_weights is not None),
                                           ("--mesh-fallback", cfg.mesh.fallback is not None),
                                           ("--save-params", cfg.mesh.save_params),
                                           ("--mesh-faces", cfg.mesh.render_faces != MeshConfig.render_faces),
                                           ("--mesh-min-frames", cfg.mesh.min_frames != MeshConfig.min_frames))
                  if given]
        if unread:
            raise ConfigError(f"{' and '.join(unread)} {'is' if len(unread) == 1 else 'are'} read by --mode mesh only, "
                              f"not by --mode {cfg.mode}")
    # a Python caller's settings: those other than their default
    refuse_other_modes(cfg.mode, [name for name in MODE_SETTINGS if getattr(cfg, name) != getattr(AnonymizeConfig, name)])
    INPAINTERS.resolve(cfg.inpaint.backend)
    needs_ssd = cfg.detect.backend == "ssd" or cfg.check.active(cfg.mode) or (
        cfg.mode in FILL_MODES and cfg.inpaint.guard)
    if needs_ssd:
        from privvid.runtime.models import SSD_PERSON, npm_model_path

        npm_model_path(SSD_PERSON)
    user_files = getattr(DETECTORS.resolve(cfg.detect.backend), "user_files", False)
    if user_files or cfg.detect.weights is not None or cfg.detect.sam_weights is not None:
        # user weights: load them once here, so a missing or corrupt file is one message, not N quarantined
        # clips
        try:
            DETECTORS.create(cfg.detect.backend, cfg.detect)
        except PrivvidError:
            raise
        except Exception as exc:  # noqa: BLE001 - a library's own error about the file
            files = " / ".join(str(p) for p in (cfg.detect.weights, cfg.detect.sam_weights) if p is not None)
            raise ConfigError(f"the {cfg.detect.backend} detector cannot load {files} (corrupt or not a "
                              f"{cfg.detect.backend} model?): {type(exc).__name__}: {_one_line(exc)}") from None
    if cfg.mode == "mesh":
        from privvid.mesh import POSE_SOURCES

        POSE_SOURCES.resolve(cfg.mesh.pose_backend)
        if cfg.mesh.pose_weights is not None:
            from privvid.io.model_files import check_model_file

            check_model_file(cfg.mesh.pose_weights, "ultralytics pose weights", "Fix --pose-weights.",
                             trust=cfg.mesh.trust_model_files, allowed=("tflite", "onnx"))
        if cfg.mesh.body_model is not None:
            from privvid.mesh.body_model import load_body_model

            load_body_model(cfg.mesh.body_model, cfg.mesh.gender, trust=cfg.mesh.trust_model_files)


def _check_run(workers: int, executor: str, clip_timeout: float | None, ray_address: str | None = None) -> None:
    if workers < 1:
        raise ConfigError(f"--workers must be >= 1, got {workers}")
    if executor not in ("local", "ray"):
        raise ConfigError(f"unknown executor {executor!r}; choose local or ray")
    if ray_address is not None:
        if executor != "ray":
            raise ConfigError("--ray-address is read by --executor ray only")
        from privvid.runtime.executors import check_ray_address

        check_ray_address(ray_address)
    if clip_timeout is not None and not clip_timeout > 0:
        raise ConfigError(f"--clip-timeout must be a number of seconds above 0, got {clip_timeout:g}")


def _recorded(sidecar: Path) -> tuple[list[str], float | None]:
    """A finished clip's notes and mean coverage, from its sidecar (none where it cannot be read)."""
    from privvid.io.layout import Sidecar, SidecarError

    try:
        side = Sidecar.read(sidecar)
        notes = side.raw.get("notes")
        return ([str(n) for n in notes] if isinstance(notes, list) else []), side.coverage_mean
    except (SidecarError, TypeError, ValueError, AttributeError):   # an edited sidecar: the clip stays done
        return [], None


def _input_root(input_path: Path) -> Path:
    return input_path if input_path.is_dir() else input_path.parent


def _nothing_to_do(found: Discovery, input_path: Path) -> str:
    text = (f"no video or frame folder found in {input_path} (videos by extension: "
            f"{' '.join(sorted(VIDEO_EXTENSIONS))})")
    if found.ignored:
        text += f"; {len(found.ignored)} other file(s) ignored, e.g. {found.ignored[0].name}"
    if found.skipped:
        path, reason = found.skipped[0]
        text += f"; {len(found.skipped)} input(s) skipped, e.g. {path.name}: {reason}"
    return text


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def _check_paths(found: Discovery, input_path: Path, out_root: Path) -> None:
    """No output may replace or sit on top of an input: OUT is neither inside the input nor holds it, and
    no output name is an input file (checked on resolved paths, so a symlink cannot sneak it past)."""
    if _inside(out_root, input_path):
        raise ConfigError(f"the output folder {out_root} must not be inside the input {input_path}")
    if _inside(input_path, out_root):
        raise ConfigError(f"the input {input_path} lies inside the output folder {out_root}: outputs could "
                          "replace input files; choose an output folder outside the input")
    inputs: set[Path] = set()
    for clip in found.clips:
        real = clip.path.resolve()
        inputs.add(real)
        if _inside(real, out_root):   # a list's videos can lie anywhere: not in OUT either
            raise ConfigError(f"the input {clip.path} lies inside the output folder {out_root}; choose an output "
                              "folder outside the inputs")
    for clip in found.clips:
        for path in output_paths(out_root, clip.relpath).values():
            real = path.resolve()
            if real in inputs or any(_inside(real, p) for p in inputs if p.is_dir()):
                raise ConfigError(f"the output {path} would overwrite the input {real}; choose another "
                                  "output folder")


def _prepare_out(out_root: Path) -> Path:
    """Create OUT and its state folder and prove a file can be written there (exit 2 before any work)."""
    state = out_root / STATE_DIR
    try:
        state.mkdir(parents=True, exist_ok=True)
        probe = state / f".write-test-{os.getpid()}"
        with open(probe, "wb") as handle:
            handle.write(b"\0" * 4096)
            handle.flush()
            os.fsync(handle.fileno())
        probe.unlink()
    except OSError as exc:
        full = exc.errno == errno.ENOSPC
        raise ConfigError(f"cannot write into the output folder {out_root}: "
                          f"{'the disk is full' if full else exc.strerror or exc}") from None
    free = shutil.disk_usage(out_root).free
    if free < MIN_FREE_BYTES:
        raise ConfigError(f"the disk holding {out_root} has {free >> 20} MiB free; privvid needs at least "
                          f"{MIN_FREE_BYTES >> 20} MiB to start")
    return state


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
    on_warning: Callable[[str], None] | None = None,
    dry_run: bool = False,
) -> RunSummary:
    """Anonymise every clip under ``input_path`` into ``out_root`` (mirrored relative paths).

    Re-running the same command skips clips the ledger records as done with the same input
    and parameters; ``on_start(n_to_run)`` and ``on_clip(outcome)`` drive progress displays,
    ``on_warning(text)`` hears what the user should know before the work starts. Every bad setting
    raises ConfigError before OUT is touched; ``dry_run`` lists what would run and writes nothing.
    """
    started = time.perf_counter()
    cfg = cfg.resolved()
    _check_run(workers, executor, clip_timeout, ray_address)
    preflight(cfg)
    input_path, out_root = _resolved(input_path, "IN"), _resolved(out_root, "OUT")
    found = discover(input_path, exclude=out_root, once=True)
    _check_paths(found, input_path, out_root)
    if not found.clips:
        raise ConfigError(_nothing_to_do(found, input_path))
    warn = on_warning or (lambda text: None)
    phash = params_hash(cfg)
    if dry_run:
        blocking = file_in_the_way(out_root / STATE_DIR / "ledger.sqlite")
        if blocking is not None:   # what the run would stop at, before any clip
            raise ConfigError(f"cannot write into the output folder {out_root}: {blocking} is a file, not a folder")
        return _plan(found, out_root, phash, started, _wanted(cfg), input_path)

    state = _prepare_out(out_root)
    lock = RunLock(state).acquire()
    previous = _terminate_cleanly()
    try:
        ledger = Ledger(state / "ledger.sqlite")
        try:
            return _run(found, input_path, out_root, state, ledger, cfg, phash, workers, executor, ray_address,
                        clip_timeout, on_clip, on_start, warn, started)
        finally:
            ledger.close()
    finally:
        for signum, handler in previous.items():
            if handler is not None:   # None: a handler set outside Python, which cannot be put back
                signal.signal(signum, handler)
        lock.release()


def _resolved(path: str | os.PathLike[str], what: str) -> Path:
    if what == "IN" and Path(path).is_symlink():   # a link that leads nowhere, named as the user typed it
        try:
            os.stat(path)
        except FileNotFoundError:
            raise ConfigError(f"input not found: {path} is a link to {os.readlink(path)}, which leads to no "
                              "file") from None
        except OSError:
            pass   # a loop: said below
    try:
        return Path(path).resolve()
    except RuntimeError:   # a link that leads back to itself (Python's resolve says "Symlink loop")
        raise ConfigError(f"{what} {path} is a symbolic link loop (it leads back to itself)") from None
    except OSError as exc:   # newer Pythons: ELOOP as an OSError
        raise ConfigError(f"{what} {path}: {exc.strerror or exc}") from None


class Terminated(KeyboardInterrupt):
    """SIGTERM (kill, timeout, a batch scheduler's preemption) or SIGHUP (the terminal closed, an SSH session
    dropped) during a run: the run stops like on Ctrl-C, its unfinished clips go back to 'queued' and are not
    counted as crashes. ``exit_code`` is the shell's for that signal (143, 129)."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        self.exit_code = 128 + signum
        super().__init__(f"terminated ({signal.Signals(signum).name})")


_STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


def _terminate_cleanly() -> dict[int, Any]:
    """Turn SIGTERM and SIGHUP into :class:`Terminated` for the run (main thread only); return the previous
    handlers, to be put back."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        return {}

    def handler(signum: int, frame: Any) -> None:
        raise Terminated(signum)

    previous: dict[int, Any] = {}
    for signum in _STOP_SIGNALS:
        if signal.getsignal(signum) is signal.SIG_IGN:   # nohup: the user asked for the run to outlive the terminal
            continue
        previous[signum] = signal.signal(signum, handler)
    return previous


def renamed_lines(out_root: Path, renamed: list[tuple[str, str]]) -> list[str]:
    """One line per input whose output takes another name (said by the run and by ``--dry-run``)."""
    return [f"{rel} is written as {output_paths(out_root, name)['video'].relative_to(out_root).as_posix()} "
            "(its name collides with another input's or is too long)" for rel, name in renamed]


def _run(found: Discovery, input_path: Path, out_root: Path, state: Path, ledger: Ledger, cfg: AnonymizeConfig,
         phash: str, workers: int, executor: str, ray_address: str | None, clip_timeout: float | None,
         on_clip: Callable[[ClipOutcome], None] | None, on_start: Callable[[int], None] | None,
         warn: Callable[[str], None], started: float) -> RunSummary:
    _clean_partials(out_root)
    others = {h: n for h, n in ledger.params_in_use().items() if h != phash}
    if others:
        warn(f"{sum(others.values())} clip(s) in {out_root} were made with other settings; each clip this run "
             "processes is rewritten with the new ones (use another output folder to keep both)")
    for line in renamed_lines(out_root, found.renamed):
        warn(line)
    current = {c.relpath for c in found.clips}
    stale = [r for r in ledger.relpaths("done") if r not in current]
    if stale:
        warn(f"{len(stale)} clip(s) in {out_root} no longer match an input (renamed, removed, or renamed to avoid "
             f"a collision): {', '.join(stale[:5])}{' ...' if len(stale) > 5 else ''}; they stay in OUT, and "
             "readers of OUT will see them: delete them, or write into a fresh folder")

    outcomes: list[ClipOutcome] = []
    jobs: list[_Job] = []
    finished: set[str] = set()
    stopped: str | None = None
    results: Iterator[tuple[_Job, Any]] | None = None
    try:   # a stop while the inputs are hashed and queued is a stop of the run too
        for source in found.clips:
            try:
                digest = content_hash(source.path)
            except OSError as exc:
                outcome = ClipOutcome(source.relpath, source.input_rel, "failed", reason=f"unreadable: {exc}")
                _record(ledger, state, outcome, phash, None)
                outcomes.append(outcome)
                continue
            paths = output_paths(out_root, source.relpath)
            row = ledger.get(source.relpath)
            if row is not None and row.done_with(digest, phash) and _present(paths, _wanted(cfg)):
                notes, coverage = _recorded(paths["sidecar"])   # its warnings stay in the table and summary.json
                outcomes.append(ClipOutcome(source.relpath, source.input_rel, "skipped", frames=row.frames or 0,
                                            coverage_mean=coverage, notes=notes))
                continue
            if row is not None and row.status == "running":
                # this run holds OUT's lock, so the run that left the row 'running' died inside this clip
                crashes = ledger.crashed(source.relpath)
                if crashes >= CRASH_LIMIT:
                    outcome = ClipOutcome(source.relpath, source.input_rel, "failed", reason=(
                        f"the process died while processing this clip in {crashes} runs (killed from outside, out of memory, or a crash in native code); "
                        "quarantined so the rest can run. To see where it crashes, run that clip alone with the same settings "
                        "under `python -X faulthandler -m privvid.cli.main anonymize ...`"))
                    _remove_outputs(out_root, source.relpath)
                    _record(ledger, state, outcome, phash, digest)
                    outcomes.append(outcome)
                    continue
            ledger.mark(source.relpath, _source_text(source, cfg), phash, "queued", input_hash=digest)
            jobs.append(_Job(source, out_root, cfg, digest, clip_timeout))

        if workers > 1:
            # biggest inputs first: with several workers a long clip started last would leave the
            # other workers idle at the end of the run (longest-processing-time-first scheduling)
            jobs.sort(key=lambda job: -_input_bytes(job.source.path))
        if on_start:
            on_start(len(jobs))
        runner = make_executor(executor, min(workers, max(1, len(jobs))), ray_address)
        hashes = {job.source.relpath: job.input_hash for job in jobs}
        results = runner.map_unordered(_run_job, jobs, started=lambda j: _mark_running(ledger, j))
        for job, result in results:
            if isinstance(result, WorkerDied):
                result = ClipOutcome(job.source.relpath, job.source.input_rel, "failed", reason=str(result))
            try:
                _record(ledger, state, result, phash, hashes[job.source.relpath])
            except (OSError, sqlite3.Error) as exc:  # the state folder went read-only or the disk filled
                result.notes.append(f"not recorded in the ledger: {getattr(exc, 'strerror', None) or exc}")
            finished.add(job.source.relpath)
            outcomes.append(result)
            if on_clip:
                on_clip(result)
    except BaseException as exc:
        stopped = (str(exc) if isinstance(exc, Terminated) else "interrupted (Ctrl-C)"
                   if isinstance(exc, KeyboardInterrupt) else f"error: {_one_line(exc)}")
        raise
    finally:
        close = getattr(results, "close", None)   # a generator: its executor's workers stop before the summary
        if close is not None:                     # says what is left
            try:
                close()
            except BaseException:  # noqa: BLE001 - a second Ctrl-C while they stop: the summary is still written
                pass
        # an interrupted run (Ctrl-C, an error in this process) leaves its unfinished clips queued, not
        # 'running': only a run that died without this clean-up counts as a crash of its clip
        for job in jobs:
            if job.source.relpath not in finished:
                try:
                    ledger.set_status(job.source.relpath, "queued")
                except Exception:  # noqa: BLE001 - best effort on the way out
                    break
        settled = {o.relpath for o in outcomes}
        unfinished = sorted(c.relpath for c in found.clips if c.relpath not in settled)
        outcomes.sort(key=lambda o: o.relpath)
        summary = RunSummary(out_root, outcomes, found.ignored, time.perf_counter() - started,
                             skipped_inputs=found.skipped, renamed=found.renamed, stopped=stopped,
                             unfinished=unfinished if stopped else [], input_root=_input_root(input_path))
        _write_summary(state, summary, cfg, phash, input_path)
    return summary


CRASH_LIMIT = 2  # runs that may die inside one clip before it is quarantined


def _mark_running(ledger: Ledger, job: _Job) -> None:
    try:
        ledger.set_status(job.source.relpath, "running")
    except sqlite3.Error:
        pass  # a full disk: the clip still runs; only crash counting for it is lost


def _source_text(source: ClipSource, cfg: AnonymizeConfig) -> str:
    return str(source.path) if cfg.record_paths else source.input_rel


def _plan(found: Discovery, out_root: Path, phash: str, started: float, wanted: tuple[str, ...],
          input_path: Path) -> RunSummary:
    """What a run would do, from the ledger if OUT has one; writes nothing."""
    db = out_root / STATE_DIR / "ledger.sqlite"
    ledger = Ledger(db) if db.is_file() else None
    live = RunLock(out_root / STATE_DIR).holder()
    outcomes = []
    try:
        for source in found.clips:
            paths = output_paths(out_root, source.relpath)
            status = "planned"
            row = ledger.get(source.relpath) if ledger is not None else None
            reason: str | None = _plan_reason(row, live is not None)
            # the run would count the death that left a row 'running' too, and quarantine at the limit
            deaths = ledger.crashes(source.relpath) + 1 if ledger is not None and row is not None \
                and row.status == "running" and live is None else 0
            if deaths >= CRASH_LIMIT:
                status, reason = "failed", f"would be quarantined: the process died while processing it in {deaths} runs"
            elif row is not None and row.status == "done" and _present(paths, wanted):
                try:
                    if row.done_with(content_hash(source.path), phash):
                        status, reason = "skipped", None
                    else:
                        reason = "input or settings changed"
                except OSError as exc:
                    reason = f"unreadable: {exc}"
            outcomes.append(ClipOutcome(source.relpath, source.input_rel, status, reason=reason))
    finally:
        if ledger is not None:
            ledger.close()
    return RunSummary(out_root, outcomes, found.ignored, time.perf_counter() - started,
                      skipped_inputs=found.skipped, renamed=found.renamed, dry_run=True, live=live,
                      input_root=_input_root(input_path))


def _plan_reason(row: Any, live: bool) -> str:
    """Why a dry run would run a clip, from its ledger row (None: OUT has never seen it); ``live``: a run is
    writing into OUT now, so its queued and running rows are its work, not what a stopped run left."""
    if row is None:
        return "new"
    if live and row.status in ("queued", "running"):
        return "being processed by the run writing into OUT now" if row.status == "running" else \
            "queued by the run writing into OUT now"
    if row.status == "queued":
        return "unfinished (the last run stopped before it was done)"
    if row.status == "running":
        return "unfinished (the last run died while processing it)"
    if row.status == "failed":
        return f"failed before: {row.reason}" if row.reason else "failed before"
    return "outputs missing"   # 'done' whose files are gone (the caller checks the files and hashes)


def _write_summary(state: Path, summary: RunSummary, cfg: AnonymizeConfig, phash: str, input_path: Path) -> None:
    """``OUT/.privvid/summary.json``: the last run, for scripts (the table is for people)."""
    doc = summary.to_dict()
    doc.update({"privvid_version": privvid.__version__, "mode": cfg.mode, "params_hash": phash,
                "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
    if cfg.record_paths:
        doc["input"] = str(input_path)
    try:
        write_text_atomic(state / "summary.json", json.dumps(doc, indent=1))
    except OSError:
        pass  # the summary is a convenience; the ledger and sidecars are the record


def _record(ledger: Ledger, state: Path, outcome: ClipOutcome, phash: str, digest: str | None) -> None:
    ledger.mark(outcome.relpath, outcome.source, phash, outcome.status, input_hash=digest,
                reason=outcome.reason, frames=outcome.frames, seconds=outcome.seconds)
    if outcome.status == "failed":
        with open(state / "quarantine.jsonl", "a") as handle:
            handle.write(json.dumps({"relpath": outcome.relpath, "source": outcome.source,
                                     "reason": outcome.reason, "params": phash, "time": time.time()}) + "\n")
