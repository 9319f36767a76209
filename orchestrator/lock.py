"""One driver per sweep folder: ``run`` and ``resume`` hold ``STORAGE/NAME/sweep.lock``.

The lock file names its holder (host, pid, start time, a random token; once it runs on a Ray
cluster, that cluster and its Ray job) and carries a heartbeat that the holder refreshes every
:data:`HEARTBEAT_S` seconds. A second driver exits with one line naming the holder, when its
lock will be stale, and how to take it over now. A lock is *stale*, and is taken over with a
line saying so, when its holder is provably gone: on the same host, its pid no longer runs; on
a Ray cluster that still answers, its job has ended in Ray's own state; otherwise, its
heartbeat is older than :data:`STALE_AFTER_S`. ``resume --take-over HOST:PID`` takes a lock
over at once, unless its holder is provably alive (:func:`holder_state`).

How the lock is made atomic depends on the storage:

- **a local or shared filesystem**: created with ``O_CREAT | O_EXCL``; a stale one is first
  renamed away (only one taker can win the rename).
- **S3 and S3-compatible stores** (MinIO, Ceph, R2, ...), through boto3 with the settings
  pyarrow uses (``AWS_ENDPOINT_URL``, keys, profiles, region): created with a conditional PUT
  (``If-None-Match: *``: exactly one of several creators succeeds); the heartbeat and the
  takeover of a stale lock are compare-and-swaps on the lock's ETag (``If-Match``: exactly
  one of several takers succeeds; a holder whose heartbeat loses the swap has been taken
  over, says so and stops beating); released with a conditional DELETE (``If-Match``).
- **GCS and Azure Blob storage**: the same with their own conditions (GCS ``ifGenerationMatch``,
  ``0`` to create; Azure ``If-None-Match: *`` / ``If-Match``): :mod:`phantom.orchestrator.lock_cloud`.
- **a store that refuses conditional writes** (501 NotImplemented, or one that ignores them:
  checked once when the lock is taken), and other object stores: *advisory* — written when
  absent, read back a second later to detect a concurrent writer, honoured through its
  heartbeat. One line says so.

The backends (each storage's create, read, take-over, heartbeat and release) live in
:mod:`phantom.orchestrator.lock_backends`; this module holds the lock and decides when it is stale.
"""

from __future__ import annotations

import json
import math
import os
import shlex
import socket
import sys
import threading
import time
import uuid
from dataclasses import dataclass
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
from phantom.orchestrator.lock_cloud import AzureLock, GcsLock

HEARTBEAT_S = 15.0  # the holder rewrites the heartbeat this often
STALE_AFTER_S = 60.0  # a lock from another host whose heartbeat is older is taken over (4 beats missed)
RAY_CHECK_S = 5.0  # how long to wait for the holder's Ray cluster to say whether its job runs


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


@dataclass(frozen=True)
class Holder:
    """What is known of a lock's holder: ``stale`` (provably gone: its lock may be taken),
    ``alive`` (provably running: it may not be taken over, even on request), ``why`` in words,
    and ``stale_at`` (when a fresh heartbeat will be old enough; None when not heartbeat-bound)."""

    stale: bool
    alive: bool
    why: str
    stale_at: float | None = None


def holder_state(info: dict, now: float | None = None) -> Holder:
    """Whether the holder is provably gone or alive: same host, its pid; a Ray cluster that
    answers, its job; otherwise its heartbeat's age against :data:`STALE_AFTER_S`."""
    now = _now() if now is None else now
    if not info:
        return Holder(True, False, "the lock is unreadable")
    if info.get("host") == socket.gethostname() and isinstance(info.get("pid"), int):
        if _pid_alive(info["pid"]):
            return Holder(False, True, f"pid {info['pid']} runs on this host")
        return Holder(True, False, f"pid {info['pid']} no longer runs on this host")
    ray = info.get("ray") or {}
    if ray.get("gcs") and ray.get("job"):
        running = ray_job_running(ray["gcs"], ray["job"], ray.get("cluster_id"))
        if running is True:
            return Holder(False, True, f"its Ray job {ray['job']} runs on the cluster at {ray['gcs']}")
        if running is False:
            return Holder(True, False, f"its Ray job {ray['job']} has ended on the cluster at {ray['gcs']}")
    beat = float(info.get("heartbeat", 0))
    age = now - beat
    if age > STALE_AFTER_S:
        return Holder(True, False, f"last heartbeat {_age(age)} ago (stale after {_age(STALE_AFTER_S)})")
    return Holder(False, False, f"last heartbeat {_age(age)} ago; stale in {_age(math.ceil(STALE_AFTER_S - age))} "
                                f"(at {_clock(beat + STALE_AFTER_S)})", beat + STALE_AFTER_S)


def is_stale(info: dict, now: float | None = None) -> bool:
    """Whether the holder is provably gone (:func:`holder_state`)."""
    return holder_state(info, now).stale


def liveness(info: dict, now: float | None = None) -> str:
    """Why the holder counts as live or stale, in words (for ``sweep status``)."""
    return holder_state(info, now).why


def holder_id(info: dict) -> str:
    """What ``--take-over`` names to take a lock over: ``HOST:PID``."""
    return f"{info.get('host')}:{info.get('pid')}"


def take_over_hint(uri: str, info: dict) -> str:
    """The whole command that takes the lock over now."""
    from phantom.orchestrator.hints import command

    address = (info.get("ray") or {}).get("gcs")
    return command("resume", uri, address, f"--take-over {shlex.quote(holder_id(info))}")


def ray_job_running(gcs: str, job: str, cluster_id: str | None = None, timeout: float = RAY_CHECK_S) -> bool | None:
    """Whether the Ray job ``job`` (hex) is alive on the cluster at ``gcs``, from the
    cluster's own state: None when the cluster does not answer within ``timeout``."""
    out: list = []

    def ask() -> None:
        try:
            import ray._raylet

            kw = {"cluster_id": cluster_id} if cluster_id else {}
            client = ray._raylet.GcsClient(address=gcs, **kw)
            jobs = client.get_all_job_info(timeout=timeout, skip_submission_job_info_field=True,
                                           skip_is_running_tasks_field=True)
            for job_id, data in jobs.items():
                if job_id.hex() == job:
                    out.append(not data.is_dead)
                    return
            out.append(False)  # the cluster answers and does not know the job: not running there
        except Exception:  # noqa: BLE001 - unreachable, another Ray version: the heartbeat decides
            out.append(None)

    thread = threading.Thread(target=ask, name="phantom-lock-ray-check", daemon=True)
    thread.start()
    thread.join(timeout + 1)
    return out[0] if out else None


def _clock(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).strftime("%H:%M:%S UTC")


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

    def __init__(self, store: Store, stream=None, take_over: str | None = None) -> None:
        self.store = store
        self.take_over = take_over  # HOST:PID of a holder to take over now (resume --take-over)
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
            if not isinstance(self.backend, (S3Lock, GcsLock, AzureLock)):  # no folder markers on object stores
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
            state = holder_state(holder)
            what = describe_holder(holder) if holder else "an unreadable lock"
            if not state.stale:
                self._refuse_or_take(holder, state)
                print(f"taking over the lock of {what} as asked (--take-over): {state.why}",
                      file=self.stream, flush=True)
            else:
                print(f"taking over the stale lock of {what}: that driver is gone ({state.why})",
                      file=self.stream, flush=True)
            try:
                if self.backend.take_over(self._text(), version):
                    return
            except NoConditionalWrites as exc:
                self._fall_back(exc)
            # another taker won: the next round finds it live and refuses
        raise LockError(f"could not take the lock of {self.store.uri}: another driver keeps taking it")

    def _refuse_or_take(self, holder: dict, state: Holder) -> None:
        """A live-looking holder: refuse (saying when the lock will be stale and how to take
        it over now), unless ``--take-over`` names this holder and it is not provably alive."""
        where = f"(lock: {self.store.uri.split('?', 1)[0]}/{layout.LOCK_FILE})"
        if self.take_over is None:
            when = "the next run or resume takes it over then" if state.stale_at else "wait for it to finish or stop it"
            hint = "" if state.alive else f"; if that driver is gone, take it over now: {take_over_hint(self.store.uri, holder)}"
            raise LockError(f"sweep folder {self.store.uri} is in use by another driver: {describe_holder(holder)}; "
                            f"{state.why}; {when}{hint} {where}")
        if self.take_over != holder_id(holder):
            raise LockError(f"--take-over {self.take_over}: the lock of {self.store.uri} is held by "
                            f"{holder_id(holder)} ({describe_holder(holder)}), not {self.take_over} {where}")
        if state.alive:
            raise LockError(f"refusing to take over the lock of {self.store.uri}: its holder is alive "
                            f"({describe_holder(holder)}; {state.why}) {where}")

    def attach_ray(self, gcs: str, job: str, cluster_id: str | None, address: str | None) -> None:
        """The driver runs on the Ray cluster at ``gcs`` as job ``job``: recorded in the lock
        (another driver then knows at once when this one is gone) and written now."""
        self.info["ray"] = {"gcs": gcs, "job": job, "cluster_id": cluster_id, "address": address}
        if self.held and not self.lost:
            try:
                self.backend.beat(self._text(), self.info["token"])
            except Exception as exc:  # noqa: BLE001 - the next beat tries again
                self._note_refusal(exc)

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

    from phantom import cloud

    if isinstance(store.fs, pafs.S3FileSystem):
        try:
            return S3Lock(store, s3_client(store.fs))
        except ImportError:  # boto3 missing
            reason = "boto3 is not installed"
    elif store.location is not None and store.scheme in cloud.GCS_SCHEMES:
        return GcsLock(store)
    elif store.location is not None and store.scheme in cloud.AZURE_SCHEMES:
        try:
            return AzureLock(store)
        except ImportError:
            reason = "azure-storage-blob is not installed"
    else:
        reason = f"no conditional writes are used for {store.uri.split('://', 1)[0]}:// stores"
    return AdvisoryLock(store, note=f"note: the sweep lock on {store.uri} is advisory ({reason}): "
                                    "start one driver per folder")
