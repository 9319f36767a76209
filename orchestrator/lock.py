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
    """The lock's holder, or None when the folder is not locked (``{}``: the file is unreadable)."""
    if not store.exists(layout.LOCK_FILE):
        return None
    try:
        return json.loads(store.read_text(layout.LOCK_FILE))
    except FileNotFoundError:  # released between the two calls
        return None
    except (OSError, ValueError):
        return {}


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
            if not isinstance(self.backend, _S3):  # S3 has no folders: no marker objects
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
        if isinstance(self.backend, _Advisory) and self.backend.note:
            print(self.backend.note, file=self.stream, flush=True)
        for _ in range(4):
            try:
                if self._create():
                    return
            except _NoConditionalWrites as exc:
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
            except _NoConditionalWrites as exc:
                self._fall_back(exc)
            # another taker won: the next round finds it live and refuses
        raise LockError(f"could not take the lock of {self.store.uri}: another driver keeps taking it")

    def _create(self) -> bool:
        if not self.backend.create(self._text()):
            return False
        if isinstance(self.backend, _S3):
            self.backend.check_honoured(self._text())  # raises _NoConditionalWrites
        return True

    def _fall_back(self, exc: _NoConditionalWrites) -> None:
        print(f"note: {self.store.uri} refuses conditional writes ({exc}); the sweep lock is advisory there: "
              f"start one driver per folder", file=self.stream, flush=True)
        self.backend = _Advisory(self.store, note=None)

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


# ----------------------------------------------------------------------------------------------
# how the lock file is created, refreshed, taken over and released, by storage


class _NoConditionalWrites(Exception):
    """The store refuses (or ignores) conditional writes."""


class _Local:
    """A local or shared filesystem: ``O_CREAT | O_EXCL``, and a rename aside for a takeover."""

    kind = "atomic (filesystem: create-exclusive)"

    def __init__(self, store: Store) -> None:
        self.store = store
        self.path = store.path(layout.LOCK_FILE)
        self.version = None

    def create(self, text: str) -> bool:
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
        except BaseException:  # a full disk: no empty lock file left behind
            os.unlink(self.path)
            raise
        return True

    def read(self) -> tuple[dict | None, object]:
        return read_lock(self.store), None

    def take_over(self, text: str, version) -> bool:
        aside = f"{self.path}.{uuid.uuid4().hex[:8]}.stale"
        try:
            os.rename(self.path, aside)  # only one taker wins; the others find the winner's lock
        except FileNotFoundError:
            return False
        os.unlink(aside)
        return self.create(text)

    def beat(self, text: str, token: str) -> bool:
        current = read_lock(self.store)
        if not current or current.get("token") != token:
            return False
        self.store.write_text(text, layout.LOCK_FILE)
        return True

    def release(self, token: str) -> None:
        current = read_lock(self.store)
        if current and current.get("token") == token:
            self.store.delete(layout.LOCK_FILE)


class _Advisory(_Local):
    """An object store without conditional writes: check, write, read back a second later."""

    kind = "advisory (no conditional writes)"
    READ_BACK_S = 1.0  # a concurrent writer's PUT lands within this; the last one wins

    def __init__(self, store: Store, note: str | None) -> None:
        super().__init__(store)
        self.note = note

    def create(self, text: str) -> bool:
        if self.store.exists(layout.LOCK_FILE):
            return False
        self.store.write_text(text, layout.LOCK_FILE)
        time.sleep(self.READ_BACK_S)
        current = read_lock(self.store) or {}
        return current.get("token") == json.loads(text)["token"]

    def take_over(self, text: str, version) -> bool:
        self.store.delete(layout.LOCK_FILE)
        return self.create(text)


class _S3(_Local):
    """S3 and S3-compatible stores: conditional PUT / DELETE on the lock object, through boto3."""

    kind = "atomic (S3 conditional writes)"

    def __init__(self, store: Store) -> None:
        super().__init__(store)
        self.client = s3_client(store.fs)
        bucket, _, prefix = store.root.partition("/")
        self.bucket = bucket
        self.key = f"{prefix}/{layout.LOCK_FILE}" if prefix else layout.LOCK_FILE
        self.version: str | None = None  # the ETag of the lock as this driver last wrote it

    def _put(self, text: str, **condition) -> str | None:
        """PUT the lock under ``condition``; its ETag, or None when the condition failed."""
        try:
            return self.client.put_object(Bucket=self.bucket, Key=self.key, Body=text.encode(),
                                          ContentType="application/json", **condition)["ETag"]
        except Exception as exc:
            if _refuses_conditions(exc):
                raise _NoConditionalWrites(_code(exc)) from None
            if _code(exc) in ("PreconditionFailed", "412", "ConditionalRequestConflict", "409",
                              "NoSuchKey", "404"):
                return None
            raise

    def create(self, text: str) -> bool:
        self.version = self._put(text, IfNoneMatch="*")
        return self.version is not None

    def check_honoured(self, text: str) -> None:
        """A second create of the lock, and a swap on a wrong ETag, must both be refused; a
        store that ignores the conditions accepts them (rewriting our own lock unchanged)."""
        for condition in ({"IfNoneMatch": "*"}, {"IfMatch": '"00000000000000000000000000000000"'}):
            if self._put(text, **condition) is not None:
                raise _NoConditionalWrites(f"it ignored {next(iter(condition))}")

    def read(self) -> tuple[dict | None, str | None]:
        try:
            obj = self.client.get_object(Bucket=self.bucket, Key=self.key)
        except Exception as exc:
            if _code(exc) in ("NoSuchKey", "404"):
                return None, None
            raise
        etag = obj["ETag"]
        try:
            return json.loads(obj["Body"].read()), etag
        except ValueError:
            return {}, etag

    def take_over(self, text: str, version) -> bool:
        if version is None:
            return False
        self.version = self._put(text, IfMatch=version)
        return self.version is not None

    def beat(self, text: str, token: str) -> bool:
        etag = self._put(text, IfMatch=self.version)
        if etag is None:  # swapped under us, unless our own last write landed unanswered
            current, etag = self.read()
            if not current or current.get("token") != token:
                return False
            etag = self._put(text, IfMatch=etag)
            if etag is None:
                return False
        self.version = etag
        return True

    def release(self, token: str) -> None:
        current, etag = self.read()
        if not current or current.get("token") != token:
            return  # taken over: not ours to delete
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self.key, IfMatch=etag)
        except Exception as exc:
            if _refuses_conditions(exc) or _code(exc) in ("InvalidArgument", "400"):
                self.client.delete_object(Bucket=self.bucket, Key=self.key)  # checked just above
            elif _code(exc) not in ("PreconditionFailed", "412", "NoSuchKey", "404"):
                raise


def _code(exc: BaseException) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code") or response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))


def _refuses_conditions(exc: BaseException) -> bool:
    response = getattr(exc, "response", None) or {}
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return _code(exc) == "NotImplemented" or status == 501


def s3_client(fs):
    """A boto3 S3 client for a pyarrow ``S3FileSystem``, with the settings pyarrow resolved:
    its endpoint (from ``AWS_ENDPOINT_URL``, a profile or the URI's ``endpoint_override``),
    region, addressing style and explicit keys; otherwise boto3's own chain (environment,
    profiles, instance roles), which is pyarrow's too."""
    import boto3
    from botocore.config import Config

    try:
        opts = fs.__reduce__()[1][0]  # the options pyarrow built the filesystem with
    except Exception:  # noqa: BLE001 - an S3FileSystem without them: boto3's defaults
        opts = {}
    endpoint = opts.get("endpoint_override") or None
    if endpoint and "://" not in endpoint:
        endpoint = f"{opts.get('scheme') or 'https'}://{endpoint}"
    region = opts.get("region") or getattr(fs, "region", None) or None
    virtual = opts.get("force_virtual_addressing") or not endpoint  # pyarrow's choice
    config = Config(s3={"addressing_style": "virtual" if virtual and endpoint else ("auto" if virtual else "path")},
                    retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=10, read_timeout=30)
    keys = {}
    if opts.get("access_key"):
        keys = {"aws_access_key_id": opts["access_key"], "aws_secret_access_key": opts.get("secret_key"),
                "aws_session_token": opts.get("session_token") or None}
    return boto3.session.Session().client("s3", endpoint_url=endpoint, region_name=region, config=config, **keys)


def _backend_for(store: Store):
    if store.is_local:
        return _Local(store)
    import pyarrow.fs as pafs

    if isinstance(store.fs, pafs.S3FileSystem):
        try:
            return _S3(store)
        except ImportError:  # boto3 missing
            reason = "boto3 is not installed"
    else:
        reason = f"no conditional writes are used for {store.uri.split('://', 1)[0]}:// stores"
    return _Advisory(store, note=f"note: the sweep lock on {store.uri} is advisory ({reason}): "
                                 "start one driver per folder")
