"""An S3-compatible server on 127.0.0.1 for tests: moto's S3 behind its own little WSGI server.

Clients reach it exactly as they reach any S3-compatible store — through the standard AWS
settings, which pyarrow's ``S3FileSystem`` (``FileSystem.from_uri``, pyarrow >= 15 reads
``AWS_ENDPOINT_URL``) and boto3 both honour::

    with S3Server() as s3:                      # a fresh bucket, credentials that are checked
        env = {**os.environ, **s3.env}          # AWS_ENDPOINT_URL, keys, region
        subprocess.run(["phantom", "sweep", "run", "sweep.yaml", "--storage", s3.uri("sweeps")], env=env)

What makes it a fair stand-in for S3 (measured against moto 5.2):

- **Credentials are checked.** The server enforces IAM authentication: ``env`` carries the keys
  of an IAM user allowed ``s3:*``; other keys get ``InvalidAccessKeyId`` or
  ``SignatureDoesNotMatch`` (403), as on S3. :meth:`S3Server.refuse_writes` attaches a policy
  denying ``PutObject``/``DeleteObject`` (``AccessDenied``, as a bucket policy would).
- **Conditional writes are atomic.** moto honours ``If-None-Match: *`` and ``If-Match`` on
  ``PutObject`` and ``If-Match`` on ``DeleteObject`` (412 ``PreconditionFailed``), but checks
  and writes in two steps; S3 makes each conditional write atomic, so this server handles
  mutating requests (PUT, POST, DELETE) one at a time. Reads stay concurrent.
  ``conditional = "refuse"`` answers a conditional write with ``501 NotImplemented``, as a
  store that does not offer them does. (A store that silently ignores the headers cannot be
  imitated here: the headers are signed, so the server cannot drop them.)
- **Stopping keeps the data.** :meth:`S3Server.stop` closes the listening socket (clients get
  "connection refused", as from a stopped server) and :meth:`S3Server.start` listens again on
  the same port with the same objects, like a server restarted over its disk.

From a shell, or as a separate process a test can stop, restart and kill::

    python -m phantom.testing.s3 --port 9000 [--bucket NAME]

prints one JSON line (``url``, ``bucket``, ``env``, ``admin_env``) once it serves; ``SIGUSR1``
stops listening, ``SIGUSR2`` listens again (the data stays), ``SIGTERM``/``SIGINT`` end it (its
data, held in memory, goes with it). :class:`S3Process` drives it from a test.

moto's state is global to its process: servers in one process share objects and IAM users
(each server names its users uniquely), and enabling authentication applies to all of them.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import uuid
from contextlib import contextmanager

from phantom.testing import end_process

REGION = "us-east-1"
CONDITION_HEADERS = ("HTTP_IF_NONE_MATCH", "HTTP_IF_MATCH")
_NOT_IMPLEMENTED = (
    '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>NotImplemented</Code>'
    "<Message>A header you provided implies functionality that is not implemented</Message>"
    "<Header>{header}</Header></Error>"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def new_bucket_name() -> str:
    return f"phantom-{uuid.uuid4().hex[:10]}"


def client_env(url: str, access_key: str, secret_key: str) -> dict[str, str]:
    """The environment a client needs (pyarrow, boto3, DuckDB's S3 settings read these too)."""
    return {
        "AWS_ENDPOINT_URL": url,
        "AWS_ACCESS_KEY_ID": access_key,
        "AWS_SECRET_ACCESS_KEY": secret_key,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        "AWS_EC2_METADATA_DISABLED": "true",  # never wait for an instance-metadata service
    }


class _Gate:
    """The WSGI application: moto's, with mutating requests serialized and the conditional-write
    behaviour switchable."""

    def __init__(self, app) -> None:
        self.app = app
        self.lock = threading.Lock()
        self.conditional = "honour"  # "honour" | "refuse"

    def __call__(self, environ, start_response):
        method = environ.get("REQUEST_METHOD")
        if method in ("PUT", "DELETE") and self.conditional == "refuse":
            present = [h for h in CONDITION_HEADERS if h in environ]
            if present:
                header = present[0][5:].replace("_", "-").title()
                body = _NOT_IMPLEMENTED.format(header=header).encode()
                start_response("501 Not Implemented",
                               [("Content-Type", "application/xml"), ("Content-Length", str(len(body)))])
                return [body]
        if method in ("PUT", "POST", "DELETE"):
            with self.lock:  # S3's conditional writes are atomic; moto's check-then-write is not
                return list(self.app(environ, start_response))
        return self.app(environ, start_response)


def _handler():
    from moto.moto_server.werkzeug_app import MotoRequestHandler

    class QuietHandler(MotoRequestHandler):
        def log(self, type: str, message: str, *args) -> None:  # noqa: A002 - werkzeug's name
            if type == "error":
                super().log(type, message, *args)

        def log_request(self, *args, **kwargs) -> None:
            pass

    return QuietHandler


class S3Server:
    """moto's S3 on ``127.0.0.1:port`` in this process (a thread), with a bucket and an IAM user.

    ``url``, ``bucket``, ``env`` (the client environment), ``uri(path)`` (``s3://bucket/path``);
    :meth:`stop` / :meth:`start` (the data stays), :meth:`refuse_writes`, :meth:`new_bucket`,
    :meth:`close`. A context manager."""

    def __init__(self, port: int | None = None, bucket: str | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.bucket = bucket or new_bucket_name()
        self._server = None
        self._thread: threading.Thread | None = None
        self._gate: _Gate | None = None
        self.user = f"phantom-{uuid.uuid4().hex[:8]}"
        self.env: dict[str, str] = {}
        self.admin_env: dict[str, str] = {}

    # -- life ----------------------------------------------------------------------------------

    def open(self) -> S3Server:
        """Start serving, create the IAM users and the bucket, then enforce authentication."""
        self.start()
        import requests

        admin = self._iam_user(f"admin-{self.user}", "*", client_env(self.url, "any", "any"))
        self.admin_env = client_env(self.url, *admin)
        self.env = client_env(self.url, *self._iam_user(self.user, "s3:*", self.admin_env))
        self.new_bucket(self.bucket)
        requests.post(f"{self.url}/moto-api/reset-auth", data=b"0", timeout=10).raise_for_status()
        return self

    def start(self) -> None:
        """Listen on the port (again): the objects stored before a :meth:`stop` are still there."""
        if self._server is not None:
            return
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
        from werkzeug.serving import make_server

        if self._gate is None:
            self._gate = _Gate(DomainDispatcherApplication(create_backend_app))
        self._server = make_server("127.0.0.1", self.port, self._gate, threaded=True, request_handler=_handler())
        self._thread = threading.Thread(target=self._server.serve_forever, name="phantom-s3", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop listening (clients: connection refused); the data stays for :meth:`start`."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(10)
        self._server = self._thread = None

    @property
    def running(self) -> bool:
        return self._server is not None

    def close(self) -> None:
        self.stop()

    def __enter__(self) -> S3Server:
        return self.open()

    def __exit__(self, *exc) -> None:
        self.close()

    # -- what tests use ------------------------------------------------------------------------

    def uri(self, path: str = "") -> str:
        return f"s3://{self.bucket}/{path.lstrip('/')}".rstrip("/")

    @property
    def conditional(self) -> str:
        return self._gate.conditional

    @conditional.setter
    def conditional(self, mode: str) -> None:
        if mode not in ("honour", "refuse"):
            raise ValueError(f"conditional must be 'honour' or 'refuse', not {mode!r}")
        self._gate.conditional = mode

    def client(self, admin: bool = False):
        """A boto3 S3 client with the user's (or the admin's) credentials."""
        return _client("s3", self.admin_env if admin else self.env)

    def new_bucket(self, name: str | None = None) -> str:
        name = name or new_bucket_name()
        _client("s3", self.admin_env).create_bucket(Bucket=name)
        return name

    def refuse_writes(self) -> None:
        """Deny the user ``PutObject`` and ``DeleteObject`` (reads still work): ``AccessDenied``."""
        policy = {"Version": "2012-10-17", "Statement": [
            {"Effect": "Deny", "Action": ["s3:PutObject", "s3:DeleteObject"], "Resource": "*"}]}
        _client("iam", self.admin_env).put_user_policy(UserName=self.user, PolicyName="refuse-writes",
                                                      PolicyDocument=json.dumps(policy))

    def allow_writes(self) -> None:
        iam = _client("iam", self.admin_env)
        try:
            iam.delete_user_policy(UserName=self.user, PolicyName="refuse-writes")
        except iam.exceptions.NoSuchEntityException:
            pass

    @contextmanager
    def writes_refused(self):
        self.refuse_writes()
        try:
            yield self
        finally:
            self.allow_writes()

    def keys(self, prefix: str = "") -> list[str]:
        """Every object key in the bucket under ``prefix`` (read with the admin's credentials)."""
        s3 = self.client(admin=True)
        out: list[str] = []
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            out += [o["Key"] for o in page.get("Contents", [])]
        return out

    # -- internals -----------------------------------------------------------------------------

    def _iam_user(self, name: str, actions: str, env: dict[str, str]) -> tuple[str, str]:
        iam = _client("iam", env)
        iam.create_user(UserName=name)
        policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}]}
        iam.put_user_policy(UserName=name, PolicyName="allow", PolicyDocument=json.dumps(policy))
        key = iam.create_access_key(UserName=name)["AccessKey"]
        return key["AccessKeyId"], key["SecretAccessKey"]


def _client(service: str, env: dict[str, str]):
    import boto3

    return boto3.session.Session().client(
        service, endpoint_url=env["AWS_ENDPOINT_URL"], region_name=env["AWS_DEFAULT_REGION"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"], aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"])


class S3Process(S3Server):
    """The same server in a separate process (``python -m phantom.testing.s3``): :meth:`stop`
    and :meth:`start` signal it (the data stays); :meth:`kill` ends it (the data goes)."""

    def __init__(self, port: int | None = None, bucket: str | None = None) -> None:
        super().__init__(port, bucket)
        self.proc: subprocess.Popen | None = None
        self._listening = False

    def open(self) -> S3Process:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "phantom.testing.s3", "--port", str(self.port), "--bucket", self.bucket],
            stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the S3 server process exited ({self.proc.wait()}) before it served")
        info = json.loads(line)
        self.env, self.admin_env, self.user = info["env"], info["admin_env"], info["user"]
        self._listening = True
        return self

    def start(self) -> None:
        if self.proc is not None and not self._listening:
            self._signal_and_wait(signal.SIGUSR2, "listening")
            self._listening = True

    def stop(self) -> None:
        if self.proc is not None and self._listening:
            self._signal_and_wait(signal.SIGUSR1, "stopped")
            self._listening = False

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None and self._listening

    @property
    def conditional(self) -> str:
        raise NotImplementedError("the conditional-write mode is set in-process only (S3Server)")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._listening = False

    def close(self) -> None:
        end_process(self.proc)
        if self.proc is not None and self.proc.stdout:
            self.proc.stdout.close()
        self._listening = False

    def _signal_and_wait(self, sig: int, word: str) -> None:
        self.proc.send_signal(sig)
        line = self.proc.stdout.readline().strip()
        if line != word:
            raise RuntimeError(f"the S3 server process answered {line!r} to {signal.Signals(sig).name}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m phantom.testing.s3", description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=None, help="port on 127.0.0.1 (default: a free one)")
    parser.add_argument("--bucket", default=None, help="bucket to create (default: phantom-<random>)")
    args = parser.parse_args(argv)
    server = S3Server(args.port, args.bucket).open()
    events: list[int] = []
    wake = threading.Event()

    def on_signal(sig, frame) -> None:
        events.append(sig)
        wake.set()

    for sig in (signal.SIGUSR1, signal.SIGUSR2, signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, on_signal)
    print(json.dumps({"url": server.url, "bucket": server.bucket, "user": server.user,
                      "env": server.env, "admin_env": server.admin_env}), flush=True)
    while True:
        wake.wait()
        wake.clear()
        while events:
            sig = events.pop(0)
            if sig == signal.SIGUSR1:
                server.stop()
                print("stopped", flush=True)
            elif sig == signal.SIGUSR2:
                server.start()
                print("listening", flush=True)
            else:
                server.close()
                return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
