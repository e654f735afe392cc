"""One run per output folder: an exclusive ``flock`` on ``OUT/.privvid/lock``, released when the run (or
its process, however it dies) ends. While held, the lock file says who holds it, for the message of a second
run; a run that ends normally empties it (one that is killed leaves its text, which the next run replaces)."""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import IO, Any

from privvid.errors import ConfigError


class OutputLocked(ConfigError):
    """Another privvid run is writing into the same output folder."""


class RunLock:
    """``state_dir/name``, locked for ``folder`` (default: the folder holding ``state_dir``). ``remove``: the
    lock file goes when the run ends (a folder that holds nothing else is left as it was)."""

    def __init__(self, state_dir: Path, name: str = "lock", folder: Path | None = None,
                 remove: bool = False) -> None:
        self.path = Path(state_dir) / name
        self.folder = Path(folder) if folder is not None else self.path.parent.parent
        self.remove = remove
        self._handle: IO[str] | None = None

    def acquire(self) -> "RunLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+", encoding="utf-8")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = _holder(handle.read())
            handle.close()
            raise OutputLocked(f"another privvid run is writing into {self.folder} ({holder}); wait for "
                               "it to finish or stop it, then run again") from None
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": time.time(),
                                 "command": " ".join(sys.argv)[:500]}))
        handle.flush()
        self._handle = handle
        return self

    def release(self) -> None:
        if self._handle is not None:
            try:  # the holder's command line (absolute paths) is only for a run that meets the lock
                self._handle.seek(0)
                self._handle.truncate()
            except OSError:
                pass  # a full or read-only disk: the stale text is harmless, the flock is what counts
            if self.remove:  # unlinked while still locked: a run that opened it meanwhile still meets the lock
                self.path.unlink(missing_ok=True)
            fcntl.flock(self._handle.fileno(), fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()


def _holder(text: str) -> str:
    try:
        doc = json.loads(text)
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(doc["started"])))
        return f"pid {doc['pid']} on {doc['host']}, started {started}: {doc.get('command', '')}".strip()
    except (ValueError, KeyError, TypeError):
        return "holder unknown"
