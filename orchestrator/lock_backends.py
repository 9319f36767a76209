"""How the sweep lock file is created, refreshed, taken over and released, by storage
(:mod:`phantom.orchestrator.lock` holds the lock and decides; the guarantees are described there).

- :class:`FileLock`: a local or shared filesystem, ``O_CREAT | O_EXCL``, a rename aside for a
  takeover;
- :class:`S3Lock`: S3 and S3-compatible stores, conditional PUT / DELETE on the lock object
  (``If-None-Match``, ``If-Match`` on its ETag) through a boto3 client (:func:`s3_client`);
- :class:`AdvisoryLock`: a store without conditional writes, write and read back;
- :class:`ConditionalLock`: the protocol of every store with conditional writes (S3 here, GCS and
  Azure in :mod:`phantom.orchestrator.lock_cloud`): create if absent, refresh and take over if
  unchanged, delete if unchanged.
"""

from __future__ import annotations

import json
import os
import time
import uuid

from phantom import layout
from phantom.storage import Store


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





class NoConditionalWrites(Exception):
    """The store refuses (or ignores) conditional writes."""


class FileLock:
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


class AdvisoryLock(FileLock):
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


class ConditionalLock:
    """An object store with conditional writes: the lock object is written only if it is absent
    (create) or still the version this driver last saw (take over, heartbeat), and deleted only
    if it is still the version read. The protocol is here once; each store says how it writes,
    reads and deletes under a condition (:meth:`_put_if`, :meth:`read`, :meth:`_delete_if`)."""

    kind = "atomic (conditional writes)"

    def __init__(self, store: Store) -> None:
        self.store = store
        bucket, _, prefix = store.root.partition("/")
        self.bucket = bucket  # the bucket or container
        self.key = f"{prefix}/{layout.LOCK_FILE}" if prefix else layout.LOCK_FILE
        self.version: str | None = None  # the version (ETag, generation) this driver last wrote

    def _put_if(self, text: str, version: str | None) -> str | None:
        """Write the lock if it is at ``version`` (None: if there is none); the new version, or
        None when the condition failed."""
        raise NotImplementedError

    def _delete_if(self, version: str | None) -> None:
        """Delete the lock if it is still at ``version`` (a failed condition is no error)."""
        raise NotImplementedError

    def read(self) -> tuple[dict | None, str | None]:
        """(the lock's content, its version); (None, None) when there is none; ({}, version)
        when it cannot be read as JSON."""
        raise NotImplementedError

    def create(self, text: str) -> bool:
        self.version = self._put_if(text, None)
        return self.version is not None

    def take_over(self, text: str, version) -> bool:
        if version is None:
            return False
        self.version = self._put_if(text, version)
        return self.version is not None

    def beat(self, text: str, token: str) -> bool:
        version = self._put_if(text, self.version)
        if version is None:  # swapped under us, unless our own last write landed unanswered
            current, version = self.read()
            if not current or current.get("token") != token:
                return False
            version = self._put_if(text, version)
            if version is None:
                return False
        self.version = version
        return True

    def release(self, token: str) -> None:
        current, version = self.read()
        if not current or current.get("token") != token:
            return  # taken over: not ours to delete
        self._delete_if(version)


class S3Lock(ConditionalLock):
    """S3 and S3-compatible stores: conditional PUT / DELETE on the lock object, through boto3."""

    kind = "atomic (S3 conditional writes)"

    def __init__(self, store: Store, client) -> None:
        super().__init__(store)
        self.client = client  # lock.s3_client(store.fs)

    def _put_if(self, text: str, version: str | None) -> str | None:
        return self._put(text, **({"IfNoneMatch": "*"} if version is None else {"IfMatch": version}))

    def _put(self, text: str, **condition) -> str | None:
        """PUT the lock under ``condition``; its ETag, or None when the condition failed."""
        try:
            return self.client.put_object(Bucket=self.bucket, Key=self.key, Body=text.encode(),
                                          ContentType="application/json", **condition)["ETag"]
        except Exception as exc:
            if refuses_conditions(exc):
                raise NoConditionalWrites(error_code(exc)) from None
            if error_code(exc) in ("PreconditionFailed", "412", "ConditionalRequestConflict", "409",
                              "NoSuchKey", "404"):
                return None
            raise

    def check_honoured(self, text: str) -> None:
        """A second create of the lock, and a swap on a wrong ETag, must both be refused; a
        store that ignores the conditions accepts them (rewriting our own lock unchanged)."""
        for condition in ({"IfNoneMatch": "*"}, {"IfMatch": '"00000000000000000000000000000000"'}):
            if self._put(text, **condition) is not None:
                raise NoConditionalWrites(f"it ignored {next(iter(condition))}")

    def read(self) -> tuple[dict | None, str | None]:
        try:
            obj = self.client.get_object(Bucket=self.bucket, Key=self.key)
        except Exception as exc:
            if error_code(exc) in ("NoSuchKey", "404"):
                return None, None
            raise
        etag = obj["ETag"]
        try:
            return json.loads(obj["Body"].read()), etag
        except ValueError:
            return {}, etag

    def _delete_if(self, version: str | None) -> None:
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self.key, IfMatch=version)
        except Exception as exc:
            if refuses_conditions(exc) or error_code(exc) in ("InvalidArgument", "400"):
                self.client.delete_object(Bucket=self.bucket, Key=self.key)  # read as ours just before
            elif error_code(exc) not in ("PreconditionFailed", "412", "NoSuchKey", "404"):
                raise


def error_code(exc: BaseException) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code") or response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))


def refuses_conditions(exc: BaseException) -> bool:
    response = getattr(exc, "response", None) or {}
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return error_code(exc) == "NotImplemented" or status == 501


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
