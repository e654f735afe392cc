"""One run per output folder: an exclusive ``flock`` on ``OUT/.privvid/lock``, released when the run (or
its process, however it dies) ends. While held, the lock file says who holds it, for the message of a second
run; a run that ends normally empties it (one that is killed leaves its text, which the next run replaces)."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import IO, Any, Iterator

from privvid.errors import ConfigError


class OutputLocked(ConfigError):
    """Another privvid run is writing into the same output folder."""


class RunLock:
    """``state_dir/name``, locked for ``folder`` (default: the folder holding ``state_dir``). ``remove``: the
    lock file goes when the run ends (a folder that holds nothing else is left as it was). ``required``
    False: where the file system has no locks (NFS without lockd, Lustre without ``flock``) the run goes
    on unlocked and ``unlocked`` says why; True: that is an error naming the file."""

    def __init__(self, state_dir: Path, name: str = "lock", folder: Path | None = None,
                 remove: bool = False, required: bool = True) -> None:
        self.path = Path(state_dir) / name
        self.folder = Path(folder) if folder is not None else self.path.parent.parent
        self.remove = remove
        self.required = required
        self.unlocked: str | None = None
        self._handle: IO[str] | None = None

    def acquire(self) -> "RunLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(20):
            handle = open(self.path, "a+", encoding="utf-8")
            try:
                _lock_soon(handle)
            except BlockingIOError:
                handle.seek(0)
                text = handle.read()
                dead = _dead_holder(text)
                if dead is not None and _lock_soon(handle, tries=int(ORPHAN_WAIT / 0.25), wait=0.25, fail=False):
                    pass   # the processes a killed run had started (data loader workers) have let go
                else:
                    if dead is not None:   # who holds it now: another run may have taken it meanwhile
                        handle.seek(0)
                        text = handle.read()
                        dead = _dead_holder(text)
                    handle.close()
                    if dead is not None:
                        raise OutputLocked(
                            f"the run that wrote into {self.folder} (pid {dead}) has died, but processes it started "
                            f"still hold the lock after {ORPHAN_WAIT:.0f} s (`pgrep -f privvid` lists them); stop "
                            "them, then run again") from None
                    raise OutputLocked(f"another privvid run is writing into {self.folder} ({_holder(text)}); wait "
                                       "for it to finish or stop it, then run again") from None
            except OSError as exc:
                handle.close()
                if exc.errno not in _NO_LOCKS:
                    raise OSError(exc.errno, exc.strerror, str(self.path)) from None
                if self.required:
                    raise OutputLocked(f"{self.path} cannot be locked here ({exc.strerror}: the file system "
                                       "has no locks); write the output to a local disk") from None
                self.unlocked = exc.strerror
                if self.remove:
                    self.path.unlink(missing_ok=True)
                return self
            try:   # the file a run that ended just now unlinked is no lock: open the one at the path again
                same = os.fstat(handle.fileno()).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            handle.close()
        else:
            raise OutputLocked(f"{self.path} keeps changing; is another run starting and stopping there?")
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": time.time(),
                                 "command": " ".join(sys.argv)[:500]}))
        handle.flush()
        self._handle = handle
        return self

    def holder(self) -> str | None:
        """Who holds the lock now (their pid, host, start and command), or None when no run does. It takes a
        shared lock for an instant to find out; :meth:`acquire` tries again for a while before it takes a lock
        it meets for another run's."""
        try:
            handle = open(self.path, encoding="utf-8")
        except OSError:
            return None
        with handle:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return _holder(handle.read())
            except OSError:
                return None   # no locks on this file system: nothing to tell
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
        return None

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


def _lock_soon(handle: IO[str], tries: int = 10, wait: float = 0.02, fail: bool = True) -> bool:
    """The exclusive lock, tried a few times over 0.2 s: a dry run's :meth:`RunLock.holder` holds a shared one
    for an instant, and a run starting then must not take it for another run. ``fail`` False: False instead
    of BlockingIOError when it stays held."""
    for left in range(tries - 1, -1, -1):
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if not left:
                if fail:
                    raise
                return False
            time.sleep(wait)
    return False


# how long a run waits for the processes a killed run started (they hold its lock: a forked process shares the
# locked file) to notice and exit; torch's data loader workers check their parent every 5 s
ORPHAN_WAIT = 12.0


def _dead_holder(text: str) -> int | None:
    """The pid the lock file names when that process is gone from this host (its children may hold the lock
    on), else None."""
    try:
        doc = json.loads(text)
        pid, host = int(doc["pid"]), str(doc["host"])
    except (ValueError, KeyError, TypeError):
        return None
    if host != socket.gethostname() or pid <= 0:
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return pid
    except OSError:
        return None   # alive, owned by someone else
    return None


_NO_LOCKS = {errno.ENOLCK, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP}


def _holder(text: str) -> str:
    try:
        doc = json.loads(text)
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(doc["started"])))
        return f"pid {doc['pid']} on {doc['host']}, started {started}: {doc.get('command', '')}".strip()
    except (ValueError, KeyError, TypeError):
        return "holder unknown"


@contextlib.contextmanager
def one_writer(folder: str | os.PathLike[str], state_dir: str | os.PathLike[str], name: str = "lock"
               ) -> Iterator[RunLock]:
    """One run at a time writes into ``folder``: ``state_dir/name`` locked while the block runs (the lock file
    goes at the end; where the file system has no locks the run goes on, with a warning that nothing stops a
    second one), and the folders made for the lock removed again where the run left them empty (a run refused
    or failing before it wrote anything leaves no folder behind; a state folder of its own, always)."""
    folder, state_dir = Path(folder), Path(state_dir)
    # a state folder of its own inside ``folder`` (OUT/.privvid) goes whenever it is left empty
    made = [state_dir] if state_dir != folder else []
    made += [p for p in (state_dir, *state_dir.parents) if not p.exists() and p not in made]
    lock = RunLock(state_dir, name, folder=folder, remove=True, required=False)
    try:
        with lock:
            if lock.unlocked:
                sys.stderr.write(f"warning: {folder} cannot be locked ({lock.unlocked}): nothing stops a second run "
                                 "from writing into it at the same time\n")
            yield lock
    finally:
        for made_folder in made:
            try:
                made_folder.rmdir()   # only while the run left nothing in it
            except OSError:
                break
