"""Azure's storage emulator (Azurite, an npm package) on 127.0.0.1 for tests, reached as any
Azure client reaches one, through ``AZURE_STORAGE_CONNECTION_STRING`` (its ``BlobEndpoint``)::

    with AzuriteServer() as az:                 # az.url, az.container, az.env, az.uri("sweeps")
        env = {**os.environ, **az.env}
        az.stop(); az.start()                    # a restart: the data stays (kept on disk)

Azurite checks Shared Key and SAS signatures (a wrong key or SAS is refused, 403), and honours
``If-None-Match: *`` and ``If-Match`` on uploads and deletes, as Azure does.

:func:`install` puts Azurite under ``$PHANTOM_CACHE/azurite`` (``npm install azurite``, once);
:func:`available` says why it cannot be had (no npm, no registry) for a test to skip on.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

from phantom.cloud import AZURITE_ACCOUNT, AZURITE_KEY
from phantom.testing import end_process
from phantom.testing.gcs import OFF_MACHINE_ENV
from phantom.testing.s3 import free_port

VERSION = "3.37.0"


def _home() -> Path:
    root = os.environ.get("PHANTOM_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "phantom")
    return Path(root) / "azurite"


def executable() -> Path:
    return _home() / "node_modules" / ".bin" / "azurite-blob"


def install() -> str | None:
    """Install Azurite (once) with npm; None when it is there, else why it cannot be."""
    if executable().exists():
        return None
    if shutil.which("npm") is None or shutil.which("node") is None:
        return "Azurite needs node and npm, which are not installed"
    home = _home()
    home.mkdir(parents=True, exist_ok=True)
    try:
        subprocess.run(["npm", "install", "--prefix", str(home), "--no-audit", "--no-fund", "--silent",
                        f"azurite@{VERSION}"], check=True, capture_output=True, timeout=300)
    except (subprocess.SubprocessError, OSError) as exc:
        return f"npm could not install azurite@{VERSION} ({type(exc).__name__})"
    return None if executable().exists() else f"npm installed no azurite-blob under {home}"


class AzuriteServer:
    """Azurite's blob service on 127.0.0.1 with a fresh container (:meth:`new_container`)."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}/{AZURITE_ACCOUNT}"
        self.root = tempfile.mkdtemp(prefix="phantom-azurite-")
        self.proc: subprocess.Popen | None = None
        self.container = ""

    @property
    def connection_string(self) -> str:
        return (f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
                f"BlobEndpoint={self.url};")

    @property
    def env(self) -> dict[str, str]:
        return {"AZURE_STORAGE_CONNECTION_STRING": self.connection_string, **OFF_MACHINE_ENV}

    def uri(self, path: str = "") -> str:
        return f"abfs://{self.container}/{path}".rstrip("/")

    def start(self) -> AzuriteServer:
        if self.proc is not None and self.proc.poll() is None:
            return self
        why = install()
        if why:
            raise RuntimeError(why)
        self.proc = subprocess.Popen(
            [str(executable()), "--blobHost", "127.0.0.1", "--blobPort", str(self.port), "--location", self.root,
             "--skipApiVersionCheck", "--silent", "--loose"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        self._wait()
        return self

    def _wait(self, timeout: float = 30.0) -> None:
        import socket

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                if self.proc is not None and self.proc.poll() is not None:
                    break
                time.sleep(0.05)
        raise RuntimeError(f"Azurite did not answer at {self.url}")

    def stop(self) -> None:
        """Stop serving (clients get "connection refused"); the blobs stay on disk."""
        end_process(self.proc)
        self.proc = None

    def service(self):
        from azure.storage.blob import BlobServiceClient

        return BlobServiceClient.from_connection_string(self.connection_string)

    def new_container(self) -> str:
        name = f"phantom-{uuid.uuid4().hex[:10]}"
        self.service().create_container(name)
        return name

    def keys(self, prefix: str = "") -> list[str]:
        client = self.service().get_container_client(self.container)
        return sorted(b.name for b in client.list_blobs(name_starts_with=prefix or None))

    def sas(self, permission: str = "racwdl", hours: float = 2.0) -> str:
        """A container SAS (account-key signed) for :attr:`container`."""
        from datetime import datetime, timedelta, timezone

        from azure.storage.blob import ContainerSasPermissions, generate_container_sas

        return generate_container_sas(AZURITE_ACCOUNT, self.container, account_key=AZURITE_KEY,
                                      permission=ContainerSasPermissions.from_string(permission),
                                      expiry=datetime.now(timezone.utc) + timedelta(hours=hours))

    def __enter__(self) -> AzuriteServer:
        self.start()
        self.container = self.new_container()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)
