"""Clients for what pyarrow's filesystems do not offer on GCS and Azure: the preflight (is the
endpoint up, are the credentials accepted, is the bucket there: one line within seconds, reads
only) and the sweep lock's conditional writes (GCS ``ifGenerationMatch``, Azure ``If-Match`` /
``If-None-Match``). They use the same settings as the filesystems (:mod:`phantom.cloud`):
GCS through its JSON API with google-auth's credentials, Azure through azure-storage-blob.
"""

from __future__ import annotations

from phantom import cloud
from phantom.cloud import GCS_NONE, gcs_has_credentials  # noqa: F401  (part of this face)
from phantom.errors import StorageError

TIMEOUT_S = (3.0, 6.0)  # connect, read: a preflight answers within 10 s
GCS_SCOPE = "https://www.googleapis.com/auth/devstorage.read_write"

GCS_UNREACHABLE = ("the endpoint cannot be reached (is the server up? check CLOUD_STORAGE_EMULATOR_ENDPOINT "
                   "or the URI's endpoint_override)")
AZURE_UNREACHABLE = ("the endpoint cannot be reached (is the server up? check BlobEndpoint in "
                     "AZURE_STORAGE_CONNECTION_STRING or the URI's host)")
GCS_CREDENTIALS = "the credentials were refused (check GOOGLE_APPLICATION_CREDENTIALS)"
AZURE_CREDENTIALS = ("the credentials were refused (check AZURE_STORAGE_ACCOUNT_KEY, AZURE_STORAGE_SAS_TOKEN "
                     "or AZURE_STORAGE_CONNECTION_STRING)")
DENIED = "access denied (by the credentials' permissions or a bucket policy)"
NO_BUCKET = "no such bucket"
NO_CONTAINER = "no such container"


# ----------------------------------------------------------------------------------------------
# GCS


def gcs_session(loc: cloud.Location):
    """A requests session for the bucket's JSON API (authorised unless anonymous) and the
    API's base URL. StorageError in one line when there are no usable credentials."""
    import requests

    s = cloud.gcs_settings(loc)
    if s.anonymous:
        return requests.Session(), s.api
    if not gcs_has_credentials(s):
        raise StorageError(f"storage refused: {GCS_NONE}: {loc.uri}")
    import google.auth
    from google.auth.transport.requests import AuthorizedSession

    try:
        credentials, _ = google.auth.default(scopes=[GCS_SCOPE])
    except Exception as exc:  # noqa: BLE001 - a missing or malformed key file
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise StorageError(f"storage refused: the credentials cannot be read ({first}; check "
                           f"GOOGLE_APPLICATION_CREDENTIALS): {loc.uri}") from None
    return AuthorizedSession(credentials), s.api


def check_gcs(loc: cloud.Location) -> None:
    """The bucket answers, with these credentials (one GET of its metadata)."""
    bucket = loc.path.split("/", 1)[0]
    where = f"{loc.prefix}{bucket}"
    session, api = gcs_session(loc)
    try:
        r = session.get(f"{api}/storage/v1/b/{cloud.quote_path(bucket)}", timeout=TIMEOUT_S)
    except Exception as exc:  # noqa: BLE001
        raise StorageError(f"storage refused: {gcs_cause(exc) or GCS_UNREACHABLE}: {where}") from None
    if r.status_code == 404:
        raise StorageError(f"storage refused: {NO_BUCKET}: {where}")
    if r.status_code == 401:
        raise StorageError(f"storage refused: {GCS_CREDENTIALS}: {where}")
    if r.status_code == 403:
        raise StorageError(f"storage refused: {DENIED}: {where}")
    if r.status_code >= 500:
        raise StorageError(f"storage refused: the endpoint answers HTTP {r.status_code}: {where}")


def gcs_cause(exc: BaseException) -> str | None:
    name = type(exc).__name__
    if name in ("RefreshError",):
        text = str(exc)
        if "Connection" in text or "Max retries" in text or "timed out" in text:
            return ("the credentials' token endpoint cannot be reached (check GOOGLE_APPLICATION_CREDENTIALS: "
                    "its token_uri)")
        return GCS_CREDENTIALS
    if name in ("DefaultCredentialsError",):
        return GCS_NONE
    if name in ("ConnectionError", "ConnectTimeout", "ReadTimeout", "Timeout", "TransportError"):
        return GCS_UNREACHABLE
    return None


# ----------------------------------------------------------------------------------------------
# Azure


def azure_service(loc: cloud.Location, *, retries: int = 0):
    """An azure-storage-blob ``BlobServiceClient`` for the location's account (short timeouts,
    ``retries`` retries: a preflight and a lock answer quickly)."""
    from azure.storage.blob import BlobServiceClient

    s = cloud.azure_settings(loc)
    if s.key:
        credential = {"account_name": s.account, "account_key": s.key}
    elif s.sas:
        credential = s.sas
    elif s.principal:
        try:
            from azure.identity import ClientSecretCredential
        except ImportError:
            raise StorageError("a service principal needs azure-identity (pip install azure-identity)") from None
        credential = ClientSecretCredential(*s.principal)
    else:
        raise StorageError(f"no Azure credentials for the sweep lock and the preflight "
                           f"(set AZURE_STORAGE_ACCOUNT_KEY or AZURE_STORAGE_SAS_TOKEN): {loc.uri}")
    return BlobServiceClient(s.blob_url, credential=credential, retry_total=retries,
                             connection_timeout=TIMEOUT_S[0], read_timeout=TIMEOUT_S[1])


def check_azure(loc: cloud.Location) -> None:
    container = loc.path.split("/", 1)[0]
    where = loc.uri.split("?", 1)[0]
    client = azure_service(loc).get_container_client(container)
    try:
        client.get_container_properties()
    except Exception as exc:  # noqa: BLE001
        cause = azure_cause(exc)
        if cause == DENIED:  # a SAS for the container's blobs may not read its properties
            try:
                next(iter(client.list_blobs(results_per_page=1)), None)
                return
            except Exception as inner:  # noqa: BLE001
                cause = azure_cause(inner) or cause
        if cause is None:
            raise
        raise StorageError(f"storage refused: {cause}: {where}") from None


def azure_code(exc: BaseException) -> str:
    return str(getattr(exc, "error_code", None) or getattr(getattr(exc, "response", None), "status_code", "") or "")


def azure_cause(exc: BaseException) -> str | None:
    name = type(exc).__name__
    code = azure_code(exc)
    if name in ("ServiceRequestError", "ServiceRequestTimeoutError", "ServiceResponseError"):
        return AZURE_UNREACHABLE
    if code in ("ContainerNotFound",):
        return NO_CONTAINER
    if "failed to authenticate" in str(exc):  # a wrong key or SAS (Azurite says AuthorizationFailure)
        return AZURE_CREDENTIALS
    if code in ("AuthenticationFailed", "InvalidAuthenticationInfo") or name == "ClientAuthenticationError" and \
            code not in ("AuthorizationFailure", "AuthorizationPermissionMismatch"):
        return AZURE_CREDENTIALS
    if code in ("AuthorizationFailure", "AuthorizationPermissionMismatch", "InsufficientAccountPermissions"):
        return DENIED
    if code in ("ResourceNotFound", "404") and name == "ResourceNotFoundError":
        return NO_CONTAINER
    return None


def check(loc: cloud.Location) -> None:
    if loc.scheme in cloud.GCS_SCHEMES:
        check_gcs(loc)
    elif loc.scheme in cloud.AZURE_SCHEMES:
        check_azure(loc)
