"""The S3 server the tests use (phantom.testing.s3), in-process and as a separate process:
pyarrow and boto3 reach it through the standard AWS variables, a stop keeps the data."""

from __future__ import annotations

import botocore.exceptions
import pyarrow.fs as pafs
import pytest

from phantom.testing.s3 import S3Process

pytestmark = pytest.mark.timeout(120)


def test_pyarrow_reads_aws_endpoint_url(s3_server):
    """pyarrow's FileSystem.from_uri honours AWS_ENDPOINT_URL (and the keys) from the
    environment the fixture set: no URI option needed."""
    s3_server.client().put_object(Bucket=s3_server.bucket, Key="a/b.txt", Body=b"hello")
    fs, root = pafs.FileSystem.from_uri(s3_server.uri("a"))
    assert root == f"{s3_server.bucket}/a"
    with fs.open_input_stream(f"{root}/b.txt") as src:
        assert src.read() == b"hello"
    with fs.open_output_stream(f"{root}/c.txt") as out:
        out.write(b"written by pyarrow")
    assert s3_server.client().get_object(Bucket=s3_server.bucket, Key="a/c.txt")["Body"].read() == b"written by pyarrow"


def test_stop_refuses_connections_and_start_keeps_the_data(s3_server):
    s3 = s3_server.client()
    s3.put_object(Bucket=s3_server.bucket, Key="k", Body=b"kept")
    s3_server.stop()
    with pytest.raises(botocore.exceptions.EndpointConnectionError):
        s3.get_object(Bucket=s3_server.bucket, Key="k")
    s3_server.start()
    assert s3.get_object(Bucket=s3_server.bucket, Key="k")["Body"].read() == b"kept"
    with s3_server.writes_refused():
        with pytest.raises(botocore.exceptions.ClientError, match="AccessDenied"):
            s3.put_object(Bucket=s3_server.bucket, Key="k2", Body=b"x")
        assert s3.get_object(Bucket=s3_server.bucket, Key="k")["Body"].read() == b"kept"  # reads still work
    s3.put_object(Bucket=s3_server.bucket, Key="k2", Body=b"x")


def test_the_server_as_a_separate_process():
    server = S3Process().open()
    try:
        s3 = server.client()
        s3.put_object(Bucket=server.bucket, Key="k", Body=b"kept")
        server.stop()
        with pytest.raises(botocore.exceptions.EndpointConnectionError):
            s3.get_object(Bucket=server.bucket, Key="k")
        server.start()
        assert s3.get_object(Bucket=server.bucket, Key="k")["Body"].read() == b"kept"
        server.kill()  # the data lived in that process's memory
        with pytest.raises(botocore.exceptions.EndpointConnectionError):
            s3.get_object(Bucket=server.bucket, Key="k")
    finally:
        server.close()
