"""One driver per sweep folder: ``run`` and ``resume`` hold ``STORAGE/NAME/sweep.lock``.

The lock file names its holder (host, pid, start time, a random token) and carries a
heartbeat that the holder refreshes every :data:`HEARTBEAT_S` seconds. A second driver exits
with one line naming the holder. A lock is *stale*, and is taken over with a line saying so,
when its holder is provably gone: on the same host, its pid no longer runs; on another host,
its heartbeat is older than :data:`STALE_AFTER_S`.

How the lock is made atomic depends on the storage:

- **a local or shared filesystem**: created with ``O_CREAT | O_EXCL``; a stale one is first
  renamed away (only one taker can win the rename).
- **S3 and S3-compatible stores** (MinIO, Ceph, R2, ...), through boto3 with the settings
  pyarrow uses (``AWS_ENDPOINT_URL``, keys, profiles, region): created with a conditional PUT
  (``If-None-Match: *``: exactly one of several creators succeeds); the heartbeat and the
  takeover of a stale lock are compare-and-swaps on the lock's ETag (``If-Match``: exactly
  one of several takers succeeds; a holder whose heartbeat loses the swap has been taken
  over, says so and stops beating); released with a conditional DELETE (``If-Match``).
- **a store that refuses conditional writes** (501 NotImplemented, or one that ignores them:
  checked once when the lock is taken), and other object stores (``gs://``, ``abfs://``: no
  client for their conditional writes here): *advisory* — written when absent, read back a
  second later to detect a concurrent writer, honoured through its heartbeat. One line says so.

The backends (each storage's create, read, take-over, heartbeat and release) live in
:mod:`phantom.orchestrator.lock_backends`; this module holds the lock and decides when it is stale.
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
from phantom.orchestrator.lock_backends import (  # read_lock and s3_client: part of this module's face
    AdvisoryLock,
    FileLock,
    NoConditionalWrites,
    S3Lock,
    read_lock,
    s3_client,
)

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


def is_stale(info: dict, now: float | None = None) -> bool:
    """Whether the holder is provably gone: same host, its pid no longer runs; another host,
    its heartbeat is older than :data:`STALE_AFTER_S`."""
    now = _now() if now is None else now
    if info.get("host") == socket.gethostname() and isinstance(info.get("pid"), int):
        return not _pid_alive(info["pid"])
    return now - float(info.get("heartbeat", 0)) > STALE_AFTER_S


def liveness(info: dict, now: float | None = None) -> str:
    """Why the holder counts as live or stale, in words (for ``sweep status``)."""
    now = _now() if now is None else now
    if info.get("host") == socket.gethostname() and isinstance(info.get("pid"), int):
        return f"pid {info['pid']} {'no longer runs' if is_stale(info, now) else 'runs'} on this host"
    age = now - float(info.get("heartbeat", 0))
    return f"last heartbeat {_age(age)} ago; stale after {_age(STALE_AFTER_S)}"


def _age(seconds: float) -> str:
    seconds = max(int(seconds), 0)
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h"


class SweepLock:
    """Context manager: hold the folder's lock (raising :class:`LockError` when another live
    driver holds it), refresh its heartbeat, release it (and the folder, when this lock made it
    and nothing else was written there) on exit.

    ``refused`` is the first storage refusal the heartbeat met (a full disk, a policy: see
    :mod:`phantom.storage_errors`), and ``on_refused(exc)``, when set, is called with it."""

    def __init__(self, store: Store, stream=None) -> None:
        self.store = store
        self.stream = stream or sys.stderr
        self.info = {"host": socket.gethostname(), "pid": os.getpid(), "started": _now(),
                     "heartbeat": _now(), "token": uuid.uuid4().hex}
        self.held = False
        self.lost = False  # another driver took the lock over while this one held it
        self.refused: BaseException | None = None
        self.on_refused = None
        self._made: list[str] = []  # folders this lock created (deepest first), removed if left empty
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.backend = _backend_for(store)

    @property
    def kind(self) -> str:
        return self.backend.kind

    # -- acquire / release ---------------------------------------------------------------------

    def acquire(self) -> SweepLock:
        store = self.store
        if store.is_local:
            path = store.root
            while not os.path.exists(path):
                self._made.append(path)
                path = os.path.dirname(path)
        try:
            if not isinstance(self.backend, S3Lock):  # S3 has no folders: no marker objects
                store.fs.create_dir(store.root, recursive=True)
            self._acquire()
        except BaseException:
            self._cleanup_folder()
            raise
        self.held = True
        self._thread = threading.Thread(target=self._beat, name="phantom-lock-heartbeat", daemon=True)
        self._thread.start()
        return self

    def _acquire(self) -> None:
        if isinstance(self.backend, AdvisoryLock) and self.backend.note:
            print(self.backend.note, file=self.stream, flush=True)
        for _ in range(4):
            try:
                if self._create():
                    return
            except NoConditionalWrites as exc:
                self._fall_back(exc)
                continue
            holder, version = self.backend.read()
            if holder is None:  # released meanwhile
                continue
            if holder.get("token") == self.info["token"]:  # our create landed; its answer was lost
                self.backend.version = version
                return
            if holder and not is_stale(holder):
                raise LockError(
                    f"sweep folder {self.store.uri} is in use by another driver: {describe_holder(holder)}; "
                    f"wait for it to finish or stop it (lock: {self.store.path(layout.LOCK_FILE)})"
                )
            what = describe_holder(holder) if holder else "an unreadable lock"
            print(f"taking over the stale lock of {what}: that driver is gone", file=self.stream, flush=True)
            try:
                if self.backend.take_over(self._text(), version):
                    return
            except NoConditionalWrites as exc:
                self._fall_back(exc)
            # another taker won: the next round finds it live and refuses
        raise LockError(f"could not take the lock of {self.store.uri}: another driver keeps taking it")

    def _create(self) -> bool:
        if not self.backend.create(self._text()):
            return False
        if isinstance(self.backend, S3Lock):
            self.backend.check_honoured(self._text())  # raises NoConditionalWrites
        return True

    def _fall_back(self, exc: NoConditionalWrites) -> None:
        print(f"note: {self.store.uri} refuses conditional writes ({exc}); the sweep lock is advisory there: "
              f"start one driver per folder", file=self.stream, flush=True)
        self.backend = AdvisoryLock(self.store, note=None)

    def release(self) -> None:
        if not self.held:
            return
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        try:
            if not self.lost:
                self.backend.release(self.info["token"])
        except Exception as exc:
            from phantom.storage_errors import storage_cause

            if storage_cause(exc) is None:
                raise
            # the storage refuses the delete: the lock stays, and its holder (this pid) being
            # gone, the next run or resume takes it over as stale
        finally:
            self.held = False
            self._cleanup_folder()

    def __enter__(self) -> SweepLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()

    # -- internals -----------------------------------------------------------------------------

    def _text(self) -> str:
        return json.dumps(self.info, indent=1)

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            self.info["heartbeat"] = _now()
            try:
                ours = self.backend.beat(self._text(), self.info["token"])
            except Exception as exc:  # noqa: BLE001 - storage trouble: try again at the next beat
                self._note_refusal(exc)
                continue
            if not ours:
                self.lost = True
                print("warning: the sweep lock was taken by another driver", file=self.stream, flush=True)
                return

    def _note_refusal(self, exc: BaseException) -> None:
        from phantom.storage_errors import storage_cause

        if self.refused is None and storage_cause(exc) is not None:
            self.refused = exc
            if self.on_refused is not None:
                self.on_refused(exc)

    def _cleanup_folder(self) -> None:
        """Remove the folders this lock created when nothing else was written in them (a
        command refused before it wrote anything leaves no trace)."""
        for path in self._made:
            try:
                os.rmdir(path)
            except OSError:  # not empty: the sweep wrote its plan, keep everything
                break
        self._made = []


def _backend_for(store: Store):
    if store.is_local:
        return FileLock(store)
    import pyarrow.fs as pafs

    if isinstance(store.fs, pafs.S3FileSystem):
        try:
            return S3Lock(store, s3_client(store.fs))
        except ImportError:  # boto3 missing
            reason = "boto3 is not installed"
    else:
        reason = f"no conditional writes are used for {store.uri.split('://', 1)[0]}:// stores"
    return AdvisoryLock(store, note=f"note: the sweep lock on {store.uri} is advisory ({reason}): "
                                    "start one driver per folder")
