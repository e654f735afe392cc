"""Where jobs run: in this process, in a local process pool, or on a Ray cluster.

Every executor takes a picklable function and items and yields ``(item, result)`` as
jobs finish. The function must catch its own errors and return them as results; an
executor only reports what kills a worker (a crash in native code), as ``WorkerDied``.
"""

from __future__ import annotations

import concurrent.futures as cf
import ctypes
import multiprocessing as mp
import os
import signal
import socket
import sys
import threading
import time
from typing import Any, Callable, Iterable, Iterator, Protocol

from privvid.errors import ConfigError, PrivvidError


class WorkerDied(PrivvidError):
    """The process running a job ended abnormally (e.g. a segfault in a native library)."""


class Executor(Protocol):
    name: str

    def map_unordered(self, fn: Callable[[Any], Any], items: Iterable[Any],
                      started: Callable[[Any], None] | None = None) -> Iterator[tuple[Any, Any]]: ...


class InlineExecutor:
    """Runs jobs one after another in this process (``--workers 1``). ``started(item)`` is called just
    before each job, so the caller can record which job a crash of this process took down."""

    name = "inline"

    def map_unordered(self, fn: Callable[[Any], Any], items: Iterable[Any],
                      started: Callable[[Any], None] | None = None) -> Iterator[tuple[Any, Any]]:
        for item in items:
            if started is not None:
                started(item)
            yield item, fn(item)


def one_core() -> None:
    """Keep this worker process to one core: codecs, OpenCV and OpenMP/BLAS pools single-threaded. In a
    parallel run each worker has a core of its own; threads reaching for the others only contend."""
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    from privvid.io.video import set_codec_threads

    set_codec_threads(1)
    try:
        import cv2

        cv2.setNumThreads(1)
    except ImportError:  # pragma: no cover - opencv is a dependency
        pass


def _on_one_core(fn: Callable[[Any], Any], item: Any) -> Any:
    one_core()
    return fn(item)


def _worker_init(parent: int) -> None:
    # Ctrl-C (and the hang-up of a closed terminal) reaches every process of the terminal's group. A worker
    # stopped by it at any point of a clip (inside a lock, a renderer, a native call) could hang the run on
    # its way out, or count as a crash of its clip; the parent alone handles it and stops the workers
    # (:func:`_stop_workers`); their clips are done again on resume
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    _die_with_parent(parent)
    one_core()


def _stop_workers(pool: cf.ProcessPoolExecutor) -> None:
    """End a pool's worker processes now (the run was interrupted): the clips they were working on are
    left unwritten (outputs are written atomically; temp files are cleared by the next run)."""
    processes = list((getattr(pool, "_processes", None) or {}).values())
    for process in processes:
        process.kill()
    for process in processes:
        process.join(timeout=10)
    pool.shutdown(wait=False, cancel_futures=True)


def _die_with_parent(parent: int) -> None:
    """Pool-worker initializer: a worker must not outlive the run that started it (a kill -9 of the
    parent would otherwise leave workers writing into OUT, then waiting forever). Linux: the kernel sends
    SIGKILL when the parent dies; everywhere: a thread that exits when the parent is gone."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent:  # the parent died before the line above ran
        os._exit(1)

    def watch() -> None:
        while True:
            time.sleep(1.0)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, name="privvid-parent-watch", daemon=True).start()


class ProcessExecutor:
    """A pool of ``workers`` spawned processes; a job whose worker dies is retried once alone."""

    name = "processes"

    def __init__(self, workers: int) -> None:
        self.workers = max(1, workers)

    def _pool(self, workers: int) -> cf.ProcessPoolExecutor:
        return cf.ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn"),
                                      initializer=_worker_init, initargs=(os.getpid(),))

    def map_unordered(self, fn: Callable[[Any], Any], items: Iterable[Any],
                      started: Callable[[Any], None] | None = None) -> Iterator[tuple[Any, Any]]:
        suspects: list[Any] = []
        with self._pool(self.workers) as pool:
            futures = {pool.submit(fn, item): item for item in items}
            try:
                for future in cf.as_completed(futures):
                    item = futures[future]
                    try:
                        yield item, future.result()
                    except cf.process.BrokenProcessPool:
                        suspects.append(item)
            except BaseException:   # Ctrl-C, SIGTERM, or the caller stopped reading: do not wait for the clips
                _stop_workers(pool)
                raise
            finally:
                for future in futures:
                    future.cancel()
        # a crashed worker breaks the whole pool: rerun each job it took down in a pool of its own,
        # so one bad clip cannot fail its neighbours
        for item in suspects:
            with self._pool(1) as pool:
                try:
                    yield item, pool.submit(fn, item).result()
                except cf.process.BrokenProcessPool:
                    yield item, WorkerDied("the worker process died while processing this clip")
                except BaseException:
                    _stop_workers(pool)
                    raise


def check_ray_address(address: str, timeout: float = 5.0) -> None:
    """Fail in one line, before any work, where the Ray cluster at ``address`` ("host:port" or
    "ray://host:port"; "auto" and "local" are Ray's to resolve) does not answer: Ray itself keeps trying
    to reach it for minutes."""
    target = address.strip()
    if target.lower() in ("auto", "local", ""):
        return
    hostport = target.split("://", 1)[-1].rstrip("/")
    host, sep, port = hostport.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise ConfigError(f"--ray-address must look like HOST:PORT, ray://HOST:PORT or auto, got {address!r}")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            pass
    except OSError as exc:
        raise ConfigError(f"no Ray cluster answers at {address} ({exc.strerror or exc}); start one with "
                          "`ray start --head` or fix --ray-address") from None


class RayExecutor:
    """Jobs as Ray tasks (one CPU each) on a running cluster (``address``) or a local one."""

    name = "ray"

    def __init__(self, address: str | None = None, num_cpus_per_job: float = 1.0) -> None:
        try:
            import ray
        except ImportError:
            raise PrivvidError("the ray executor needs Ray: pip install 'privvid[ray]'") from None
        self._ray = ray
        if not ray.is_initialized():
            ray.init(address=address, ignore_reinit_error=True, log_to_driver=False)
        self.num_cpus = num_cpus_per_job

    def map_unordered(self, fn: Callable[[Any], Any], items: Iterable[Any],
                      started: Callable[[Any], None] | None = None) -> Iterator[tuple[Any, Any]]:
        ray = self._ray
        # the task carries the job's name (Ray titles its worker process "ray::<name>")
        remote = ray.remote(num_cpus=self.num_cpus, max_retries=1)(_on_one_core).options(
            name=getattr(fn, "__name__", "privvid_job"))
        refs: dict[Any, Any] = {}
        try:
            for item in items:   # a stop while tasks are being submitted cancels those already submitted
                refs[remote.remote(fn, item)] = item
            pending = list(refs)
            while pending:
                done, pending = ray.wait(pending, num_returns=1)
                for ref in done:
                    item = refs.pop(ref)
                    try:
                        result = ray.get(ref)
                    except ray.exceptions.RayError as exc:
                        result = WorkerDied(f"ray task failed: {exc}")
                    yield item, result
        except BaseException:   # Ctrl-C, SIGTERM, or the caller stopped reading: no task may go on writing
            self._cancel(list(refs))
            raise

    def _cancel(self, refs: list[Any], timeout: float = 30.0) -> None:
        """Stop the tasks of ``refs`` (their worker processes are killed) and wait until Ray has ended them, so
        that none writes into OUT once the run has said which clips it left unfinished. A cancel can be lost
        while Ray hands a queued task to a worker: those still not ended are cancelled again each second."""
        ray = self._ray
        deadline = time.monotonic() + timeout
        left = list(refs)
        while left and time.monotonic() < deadline:
            for ref in left:
                try:
                    ray.cancel(ref, force=True)
                except Exception:  # noqa: BLE001 - a task that has just finished cannot be cancelled
                    pass
            try:
                _, left = ray.wait(left, num_returns=len(left), timeout=1.0)
            except Exception:  # noqa: BLE001 - best effort on the way out
                return


def make_executor(kind: str, workers: int, address: str | None = None) -> Executor:
    if kind == "ray":
        return RayExecutor(address)
    if kind != "local":
        raise PrivvidError(f"unknown executor {kind!r}; choose local or ray")
    return InlineExecutor() if workers <= 1 else ProcessExecutor(workers)
