"""A refused storage operation named in one line: what refused, and where (phantom.storage_errors),
and a failed write leaves no *.tmp (phantom.storage)."""

from __future__ import annotations

import errno
import os

import botocore.exceptions
import pytest

from phantom.errors import ConfigError, StorageError
from phantom.storage import Store
from phantom.storage_errors import failing_path, storage_cause, storage_cause_text, storage_error, translated


def _client_error(code: str, status: int) -> botocore.exceptions.ClientError:
    return botocore.exceptions.ClientError(
        {"Error": {"Code": code, "Message": "x"}, "ResponseMetadata": {"HTTPStatusCode": status}}, "PutObject")


class _RayTaskError(Exception):
    """Ray's wrapper of a worker's exception keeps it as ``cause``."""

    def __init__(self, cause):
        super().__init__("ray::ImplicitFunc.train() failed")
        self.cause = cause


@pytest.mark.parametrize("exc, cause", [
    (OSError(errno.ENOSPC, "No space left on device", "/data/x.parquet.1a2b.tmp"), "no space left on the device"),
    (OSError(errno.EDQUOT, "Disk quota exceeded"), "the disk quota is exceeded"),
    (PermissionError(errno.EACCES, "Permission denied", "/data/plan.json"), "permission denied"),
    (OSError(errno.EROFS, "Read-only file system"), "the filesystem is read-only"),
    (OSError("When initiating multiple part upload for key 'sweeps/t/x.json' in bucket 'b': AWS Error "
             "ACCESS_DENIED during CreateMultipartUpload operation: Access Denied"), "access denied (by"),
    (OSError("When getting information for key 'x' in bucket 'b': AWS Error NETWORK_CONNECTION during "
             "HeadObject operation: curlCode: 7, Could not connect to server"), "the endpoint cannot be reached"),
    (_client_error("AccessDenied", 403), "access denied (by"),
    (_client_error("InvalidAccessKeyId", 403), "the credentials were refused"),
    (_client_error("SignatureDoesNotMatch", 403), "the credentials were refused"),
    (_client_error("NoSuchBucket", 404), "no such bucket"),
    (_client_error("403", 403), "access denied, or the credentials were refused"),
    (botocore.exceptions.EndpointConnectionError(endpoint_url="http://127.0.0.1:1"), "the endpoint cannot be reached"),
    (_RayTaskError(OSError(errno.ENOSPC, "No space left on device")), "no space left on the device"),
])
def test_storage_refusals_are_named(exc, cause):
    assert storage_cause(exc).startswith(cause)


@pytest.mark.parametrize("exc", [
    ValueError("bad value"), KeyError("pack"), EOFError("Ran out of input"), FileNotFoundError(2, "No such file"),
    _client_error("PreconditionFailed", 412), RuntimeError("CUDA out of memory"),
])
def test_other_errors_are_not_storage_refusals(exc):
    assert storage_cause(exc) is None


def test_the_path_is_the_file_or_object_when_the_error_names_it():
    assert failing_path(OSError(errno.ENOSPC, "No space left on device", "/d/x.tmp")) == "/d/x.tmp"
    assert failing_path(OSError("for key 'sweeps/t/a.json' in bucket 'b': AWS Error ACCESS_DENIED")) == \
        "s3://b/sweeps/t/a.json"
    err = storage_error(OSError(errno.ENOSPC, "No space left on device"), "/scratch/runs/lr50")
    assert isinstance(err, StorageError)
    assert str(err) == "storage refused: no space left on the device: /scratch/runs/lr50"


def test_a_message_read_back_as_text_is_classified_the_same():
    assert storage_cause_text("the worker was lost (OSError: [Errno 28] No space left on device)") == \
        "no space left on the device"
    assert storage_cause_text("ValueError: non-finite loss") is None


def test_translated_turns_only_storage_refusals_into_one_line():
    with pytest.raises(StorageError, match=r"^storage refused: permission denied: /x/plan.json$"):
        with translated("/x"):
            raise PermissionError(errno.EACCES, "Permission denied", "/x/plan.json")
    with pytest.raises(ConfigError):  # a user error keeps its own message
        with translated("/x"):
            raise ConfigError("bad key")
    with pytest.raises(KeyError):  # a bug keeps its traceback
        with translated("/x"):
            raise KeyError("pack")


def test_a_failed_write_leaves_no_tmp_file(tmp_path, monkeypatch):
    """Disk full at the rename (or the write): the *.tmp is removed, the error goes on."""
    store = Store.open(tmp_path / "sweep")
    store.write_text("old", "plan.json")

    def full(src, dst):
        raise OSError(errno.ENOSPC, "No space left on device", src)

    monkeypatch.setattr(os, "replace", full)
    with pytest.raises(OSError, match="No space left"):
        store.write_text("new", "plan.json")
    assert sorted(p.name for p in (tmp_path / "sweep").iterdir()) == ["plan.json"]
    assert (tmp_path / "sweep" / "plan.json").read_text() == "old"


def test_a_refusal_on_a_parent_marker_names_the_folder():
    """pyarrow creates the folder markers above a file on S3 first: a policy that refuses
    writes can refuse the marker of the storage root; the user's folder is what is named."""
    exc = OSError("When creating key 'sweeps/' in bucket 'b': AWS Error ACCESS_DENIED during PutObject "
                  "operation: Access Denied")
    err = storage_error(exc, "s3://b/sweeps/tiny")
    assert err is not None and str(err).endswith(": s3://b/sweeps/tiny"), str(err)
    other = storage_error(OSError("When creating key 'other/x' in bucket 'b': AWS Error ACCESS_DENIED "
                                  "during PutObject operation: Access Denied"), "s3://b/sweeps/tiny")
    assert other is not None and "s3://b/sweeps/tiny" not in str(other)
