"""One driver per sweep folder: ``run`` and ``resume`` hold ``STORAGE/NAME/sweep.lock``.

The lock file names its holder (host, pid, start time, a random token) and carries a
heartbeat that the holder refreshes every :data:`HEARTBEAT_S` seconds. A second driver exits
with one line naming the holder. A lock is *stale*, and is taken over with a line saying so,
when its holder is provably gone: on the same host, its pid no longer runs; on another host,
its heartbeat is older than :data:`STALE_AFTER_S`.

On a local or shared filesystem the lock is created atomically (``O_CREAT | O_EXCL``) and a
stale one is first renamed away (only one taker can win the rename). An object store offers
no atomic create-if-absent through pyarrow: there the lock is advisory — written when absent,
read back to detect a concurrent writer, and honoured through its heartbeat.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
import time
import uuid
from datetime import datetime, timezone

from phantom import layout
from phantom.errors import PhantomError
from phantom.storage import Store

HEARTBEAT_S = 30.0  # the holder rewrites the heartbeat this often
STALE_AFTER_S = 300.0  # a lock from another host whose heartbeat is older is taken over


class LockError(PhantomError):
    """The sweep folder is held by another driver."""


def _now() -> float:
    return time.time()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def describe_holder(info: dict) -> str:
    started = datetime.fromtimestamp(info.get("started", 0), timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    return f"host {info.get('host')} pid {info.get('pid')} (since {started})"


def read_lock(store: Store) -> dict | None:
    """The lock's holder, or None when the folder is not locked (or the file is unreadable)."""
    if not store.exists(layout.LOCK_FILE):
        return None
    try:
        return json.loads(store.read_text(layout.LOCK_FILE))
    except (OSError, ValueError):
        return {}


def is_stale(info: dict, now: float | None = None) -> bool:
    now = _now() if now is None else now
    if info.get("host") == socket.gethostname() and isinstance(info.get("pid"), int):
        return not _pid_alive(info["pid"])
    return now - float(info.get("heartbeat", 0)) > STALE_AFTER_S


class SweepLock:
    """Context manager: hold the folder's lock (raising :class:`LockError` when another live
    driver holds it), refresh its heartbeat, release it (and the folder, when this lock made it
    and nothing else was written there) on exit."""

    def __init__(self, store: Store, stream=None) -> None:
        self.store = store
        self.stream = stream or sys.stderr
        self.info = {"host": socket.gethostname(), "pid": os.getpid(), "started": _now(),
                     "heartbeat": _now(), "token": uuid.uuid4().hex}
        self.held = False
        self._made: list[str] = []  # folders this lock created (deepest first), removed if left empty
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- acquire / release ---------------------------------------------------------------------

    def acquire(self) -> SweepLock:
        store = self.store
        if store.is_local:
            path = store.root
            while not os.path.exists(path):
                self._made.append(path)
                path = os.path.dirname(path)
        store.fs.create_dir(store.root, recursive=True)
        for _ in range(3):
            if self._create():
                break
            holder = read_lock(store)
            if holder is None:  # released meanwhile
                continue
            if holder and not is_stale(holder):
                self._cleanup_folder()
                raise LockError(
                    f"sweep folder {store.uri} is in use by another driver: {describe_holder(holder)}; "
                    f"wait for it to finish or stop it (lock: {store.path(layout.LOCK_FILE)})"
                )
            what = describe_holder(holder) if holder else "an unreadable lock"
            print(f"taking over the stale lock of {what}: that driver is gone", file=self.stream, flush=True)
            self._discard_stale()
        else:
            self._cleanup_folder()
            raise LockError(f"could not take the lock of {store.uri}: another driver keeps taking it")
        self.held = True
        self._thread = threading.Thread(target=self._beat, name="phantom-lock-heartbeat", daemon=True)
        self._thread.start()
        return self

    def release(self) -> None:
        if not self.held:
            return
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        current = read_lock(self.store)
        if current and current.get("token") == self.info["token"]:
            self.store.delete(layout.LOCK_FILE)
        self.held = False
        self._cleanup_folder()

    def __enter__(self) -> SweepLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()

    # -- internals -----------------------------------------------------------------------------

    def _text(self) -> str:
        return json.dumps(self.info, indent=1)

    def _create(self) -> bool:
        """Create the lock file if absent: atomically on a filesystem, check-then-write (then
        read back) on an object store."""
        if self.store.is_local:
            path = self.store.path(layout.LOCK_FILE)
            try:
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                return False
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(self._text())
            return True
        if self.store.exists(layout.LOCK_FILE):
            return False
        self.store.write_text(self._text(), layout.LOCK_FILE)
        time.sleep(1.0)  # a concurrent writer's PUT lands within this; the last one wins
        current = read_lock(self.store) or {}
        return current.get("token") == self.info["token"]

    def _discard_stale(self) -> None:
        if self.store.is_local:
            path = self.store.path(layout.LOCK_FILE)
            aside = f"{path}.{uuid.uuid4().hex[:8]}.stale"
            try:
                os.rename(path, aside)  # only one taker wins; the others retry and find ours
            except FileNotFoundError:
                return
            os.unlink(aside)
        else:
            self.store.delete(layout.LOCK_FILE)

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            current = read_lock(self.store)
            if not current or current.get("token") != self.info["token"]:
                print("warning: the sweep lock was taken by another driver", file=self.stream, flush=True)
                return
            self.info["heartbeat"] = _now()
            try:
                self.store.write_text(self._text(), layout.LOCK_FILE)
            except OSError:
                pass  # try again at the next beat

    def _cleanup_folder(self) -> None:
        """Remove the folders this lock created when nothing else was written in them (a
        command refused before it wrote anything leaves no trace)."""
        for path in self._made:
            try:
                os.rmdir(path)
            except OSError:  # not empty: the sweep wrote its plan, keep everything
                break
        self._made = []
