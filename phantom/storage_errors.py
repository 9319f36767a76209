"""Storage that refuses a read or a write, said in one line: what refused, and where.

A refused write (a full disk, a quota, a permission, a bucket policy, an endpoint that does
not answer, credentials the store does not know) surfaces as whatever the layer that met it
raises: ``OSError`` with an errno from the local filesystem, pyarrow's ``OSError`` with an
``AWS Error ...`` text from S3, botocore's exceptions from the lock's boto3 client, Ray's
``RayTaskError`` around any of them from a worker. :func:`storage_cause` reads the chain of an
exception and names the cause in words, or returns None when it is not a storage refusal (a
bug keeps its traceback); :func:`storage_error` makes the :class:`~phantom.errors.StorageError`
the command line prints as one line.
"""

from __future__ import annotations

import errno
from contextlib import contextmanager
import re

from phantom.errors import StorageError

_ERRNO = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "the disk quota is exceeded",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.EROFS: "the filesystem is read-only",
}
_UNREACHABLE = "the endpoint cannot be reached (is the server up? check AWS_ENDPOINT_URL)"
_CREDENTIALS = "the credentials were refused (check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or AWS_PROFILE)"
_DENIED = "access denied (by the credentials' permissions or a bucket policy)"
_EITHER = "access denied, or the credentials were refused"  # a HEAD's 403 has no body to tell
_NO_BUCKET = "no such bucket"
_FULL = "the store is full or over its quota"
_CODES = {  # S3 error codes (botocore's ClientError, pyarrow's "AWS Error <CODE>" text)
    "AccessDenied": _DENIED, "ACCESS_DENIED": _DENIED, "AllAccessDisabled": _DENIED,
    "InvalidAccessKeyId": _CREDENTIALS, "INVALID_ACCESS_KEY_ID": _CREDENTIALS,
    "SignatureDoesNotMatch": _CREDENTIALS, "SIGNATURE_DOES_NOT_MATCH": _CREDENTIALS,
    "InvalidToken": _CREDENTIALS, "ExpiredToken": _CREDENTIALS, "EXPIRED_TOKEN": _CREDENTIALS,
    "NoSuchBucket": _NO_BUCKET, "NO_SUCH_BUCKET": _NO_BUCKET,
    "QuotaExceeded": _FULL, "XMinioStorageFull": _FULL, "InsufficientStorage": _FULL,
    "NETWORK_CONNECTION": _UNREACHABLE,
}
_PYARROW_KEY = re.compile(r"key '([^']*)' in bucket '([^']*)'")
_PYARROW_BUCKET = re.compile(r"[Bb]ucket '([^']*)' (?:not found|does not exist)")


def _chain(exc: BaseException):
    """The exception, its causes and contexts, and what Ray wrapped (``RayTaskError.cause``)."""
    seen: set[int] = set()
    todo = [exc]
    while todo:
        e = todo.pop(0)
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        todo += [getattr(e, "cause", None), e.__cause__, e.__context__]


def _one(exc: BaseException) -> str | None:
    from phantom.cloud_check import azure_cause, gcs_cause

    if isinstance(exc, OSError) and exc.errno in _ERRNO:
        return _ERRNO[exc.errno]
    cloud = gcs_cause(exc) or azure_cause(exc)
    if cloud:
        return cloud
    name = type(exc).__name__
    if name in ("EndpointConnectionError", "ConnectTimeoutError", "ConnectionClosedError", "ReadTimeoutError"):
        return _UNREACHABLE
    if name in ("NoCredentialsError", "PartialCredentialsError"):
        return "no credentials found (set AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or AWS_PROFILE)"
    response = getattr(exc, "response", None)
    if isinstance(response, dict) and "Error" in response:  # botocore ClientError
        code = str(response["Error"].get("Code", ""))
        if code in _CODES:
            return _CODES[code]
        if code in ("404", "NoSuchKey", "NotFound"):
            return None
        if code == "403":  # a HEAD has no body: credentials or permissions
            return _EITHER
    text = str(exc)
    if isinstance(exc, OSError):
        match = re.search(r"AWS Error (\w+)", text)
        if match and match.group(1) in _CODES:
            cause = _CODES[match.group(1)]
            if cause == _DENIED and "No response body" in text:  # a HEAD: either
                return _EITHER
            return cause
        if _PYARROW_BUCKET.search(text):
            return _NO_BUCKET
        return storage_cause_text(text)
    return None


def storage_cause(exc: BaseException) -> str | None:
    """The cause of a refused storage operation in words, or None when ``exc`` is not one."""
    for e in _chain(exc):
        cause = _one(e)
        if cause:
            return cause
    return None


_TEXT = [  # what the messages of the exceptions above say, for a message read back as text
    (re.compile(r"\[errno 28\]|no space left on device", re.I), _ERRNO[errno.ENOSPC]),
    (re.compile(r"\[errno 122\]|disk quota exceeded", re.I), _ERRNO[errno.EDQUOT]),
    (re.compile(r"\[errno 30\]|read-only file system", re.I), _ERRNO[errno.EROFS]),
    (re.compile(r"\[errno 13\]|permission denied", re.I), _ERRNO[errno.EACCES]),
    (re.compile(r"InvalidAccessKeyId|INVALID_ACCESS_KEY_ID|SignatureDoesNotMatch|SIGNATURE_DOES_NOT_MATCH"),
     _CREDENTIALS),
    (re.compile(r"AccessDenied|ACCESS_DENIED"), _DENIED),
    (re.compile(r"NoSuchBucket|NO_SUCH_BUCKET"), _NO_BUCKET),
    (re.compile(r"AWS Error NETWORK_CONNECTION|Could not connect to the endpoint"), _UNREACHABLE),
    # pyarrow's GCS (google-cloud-cpp) and Azure (Azure SDK for C++) messages
    (re.compile(r"google::cloud::Status\((UNAVAILABLE|DEADLINE_EXCEEDED)"), "gcs-unreachable"),
    (re.compile(r"google::cloud::Status\(UNAUTHENTICATED"), "gcs-credentials"),
    (re.compile(r"google::cloud::Status\(PERMISSION_DENIED"), _DENIED),
    (re.compile(r"AuthenticationFailed|Server failed to authenticate the request"), "azure-credentials"),
    (re.compile(r"AuthorizationFailure|AuthorizationPermissionMismatch"), _DENIED),
    (re.compile(r"ContainerNotFound"), "no such container"),
    (re.compile(r"Failed to connect to|Couldn't connect to server|Connection refused", re.I), "azure-unreachable"),
]


def storage_cause_text(text: str) -> str | None:
    """:func:`storage_cause` for a message (a trial record's ``error``, a log line)."""
    from phantom import cloud_check as cc

    named = {"gcs-unreachable": cc.GCS_UNREACHABLE, "gcs-credentials": cc.GCS_CREDENTIALS,
             "azure-credentials": cc.AZURE_CREDENTIALS, "azure-unreachable": cc.AZURE_UNREACHABLE}
    for pattern, cause in _TEXT:
        if pattern.search(text or ""):
            if cause == "azure-unreachable" and "google::cloud" in (text or ""):
                return cc.GCS_UNREACHABLE
            return named.get(cause, cause)
    return None


def is_transient(cause: str | None) -> bool:
    """An endpoint that does not answer may answer again (a restarted server): retried, not
    a reason to stop a sweep at once. Every other refusal stays until someone acts."""
    from phantom.cloud_check import AZURE_UNREACHABLE, GCS_UNREACHABLE

    return cause in (_UNREACHABLE, GCS_UNREACHABLE, AZURE_UNREACHABLE)


def failing_path(exc: BaseException) -> str | None:
    """The file or object the refused operation was on, when the exception says."""
    for e in _chain(exc):
        filename = getattr(e, "filename", None)
        if isinstance(e, OSError) and filename:
            return str(filename)
        text = str(e)
        match = _PYARROW_KEY.search(text)
        if match:
            return f"s3://{match.group(2)}/{match.group(1)}".rstrip("/")
        match = _PYARROW_BUCKET.search(text)
        if match:
            return f"s3://{match.group(1)}"
    return None


def storage_error(exc: BaseException, where: str) -> StorageError | None:
    """A one-line :class:`StorageError` for a refused storage operation (``where``: the folder
    it was for, named when the exception names no file), or None when ``exc`` is not one."""
    cause = storage_cause(exc)
    if cause is None:
        return None
    from phantom.cloud import redact

    path = failing_path(exc) or where
    if where and where.split("?", 1)[0].startswith(path.rstrip("/") + "/"):
        # refused on a parent of the folder (pyarrow creates the folder markers above a file on
        # S3 first): the folder is what the user knows
        path = where
    return StorageError(redact(f"storage refused: {cause}: {path}"))


def check_store(store) -> None:
    """Fail early, in one line, when an object store cannot be reached, refuses the
    credentials, or has no such bucket (reads only: nothing is written). Local paths pass."""
    import pyarrow.fs as pafs

    from phantom import cloud, cloud_check

    if store.location is not None and store.scheme in cloud.GCS_SCHEMES + cloud.AZURE_SCHEMES:
        cloud_check.check(store.location)
        return
    if not isinstance(store.fs, pafs.S3FileSystem):
        return
    bucket = store.root.split("/", 1)[0]
    try:
        with translated(f"s3://{bucket}"):
            info = store.fs.get_file_info(bucket)
    except StorageError as exc:
        if _EITHER not in str(exc):
            raise
        with translated(f"s3://{bucket}"):  # a listing's 403 says which (its body has the code)
            store.fs.get_file_info(pafs.FileSelector(bucket, allow_not_found=True))
        raise
    if info.type == pafs.FileType.NotFound:
        raise StorageError(f"storage refused: {_NO_BUCKET}: s3://{bucket}")


@contextmanager
def translated(where: str):
    """Turn a storage refusal raised inside into a one-line :class:`StorageError` naming the
    cause and the path (``where`` when the exception names none); anything else goes through."""
    from phantom.errors import PhantomError

    try:
        yield
    except PhantomError:
        raise
    except Exception as exc:  # noqa: BLE001
        err = storage_error(exc, where)
        if err is None:
            raise
        raise err from None
