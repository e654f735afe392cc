"""Executors (inline, local processes, Ray), the resumable run ledger, progress display."""

from privvid.runtime.executors import InlineExecutor, ProcessExecutor, RayExecutor, WorkerDied, make_executor
from privvid.runtime.ledger import Ledger
from privvid.runtime.progress import RunProgress

__all__ = ["InlineExecutor", "Ledger", "ProcessExecutor", "RayExecutor", "RunProgress", "WorkerDied",
           "make_executor"]
