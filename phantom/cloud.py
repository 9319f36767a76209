"""What a storage URI and each cloud's standard settings make of a results folder.

A URI has three parts that Phantom keeps apart: the **path** (``bucket/prefix/NAME``: a sweep
name is joined to it, never to the query string), **options** that say how to reach the store
(``endpoint_override``, ``scheme``, ``enable_tls``: kept in the URI), and **secrets** (an S3
key in ``s3://KEY:SECRET@bucket``, an Azure SAS or account key in the query string): these are
taken out of the URI, given to the filesystem, and moved into the variables each cloud's SDKs
read (:attr:`Location.secrets`), so the URI Phantom shows, writes down and hands to Ray's
workers (:attr:`Location.uri`) holds none. :func:`redact` hides credentials in any text.

Settings per store, as the clouds' own SDKs read them:

- ``s3://``: pyarrow's ``S3FileSystem`` with the AWS variables (see ``docs/how-to/object-storage.md``).
- ``gs://`` (``gcs://``): ``GOOGLE_APPLICATION_CREDENTIALS`` (or gcloud's application default
  credentials); ``gs://anonymous@bucket/...`` for public buckets; an emulator from
  ``CLOUD_STORAGE_EMULATOR_ENDPOINT`` (google-cloud-cpp's variable) or ``STORAGE_EMULATOR_HOST``
  (the Python client's and gcsfs'), reached anonymously as those clients do.
- ``abfs://`` / ``abfss://`` / ``az://``: ``AZURE_STORAGE_CONNECTION_STRING`` (``AccountName``,
  ``AccountKey``, ``SharedAccessSignature``, ``BlobEndpoint``, or ``UseDevelopmentStorage=true``
  for Azurite), or ``AZURE_STORAGE_ACCOUNT_NAME`` with ``AZURE_STORAGE_ACCOUNT_KEY`` or
  ``AZURE_STORAGE_SAS_TOKEN`` (adlfs' names), or a service principal (``AZURE_CLIENT_ID``,
  ``AZURE_CLIENT_SECRET``, ``AZURE_TENANT_ID``). URIs: ``abfs://CONTAINER@ACCOUNT.dfs.core.windows.net/path``,
  ``abfs://CONTAINER/path`` (the account from the settings) or pyarrow's emulator form
  ``abfs://ACCOUNT@HOST:PORT/CONTAINER/path?enable_tls=false``.
"""

from __future__ import annotations

import functools
import os
import re
import socket
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, quote, unquote, urlencode

from phantom.errors import StorageError

GCS_SCHEMES = ("gs", "gcs")
AZURE_SCHEMES = ("abfs", "abfss", "az")
GCS_EMULATOR_ENV = ("CLOUD_STORAGE_EMULATOR_ENDPOINT", "STORAGE_EMULATOR_HOST")
GCS_RETRY_S = 30.0  # pyarrow's GCS client retries a request this long (its default: 15 min)
AZURITE_KEY = ("Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==")
AZURITE_ACCOUNT = "devstoreaccount1"  # UseDevelopmentStorage=true: Azurite's well-known account

# query parameters that are credentials (an Azure SAS's fields sign it: all of it goes)
_SAS_FIELDS = {"sv", "ss", "srt", "sp", "se", "st", "spr", "sig", "sr", "si", "sdd", "skoid", "sktid",
               "skt", "ske", "sks", "skv", "saoid", "suoid", "scid", "sip", "rscc", "rscd", "rsce",
               "rscl", "rsct", "ses", "sduoid", "srh"}
_SECRET_KEYS = re.compile(r"(key|secret|token|password|credential|sig)", re.I)
_URI = re.compile(r"\b([a-z][a-z0-9+.-]*)://([^\s'\"<>]*)", re.I)
_CONN = re.compile(r"((?:AccountKey|SharedAccessSignature|SharedAccessKey)=)[^;\s'\"]*", re.I)


# ----------------------------------------------------------------------------------------------
# redaction


def redact(text: str) -> str:
    """``text`` with every credential in a URI (``user:SECRET@``, a SAS, ``*key*``/``*token*``
    query values) and in a connection string (``AccountKey=``) replaced by ``***``."""
    def one(match: re.Match) -> str:
        scheme, rest = match.group(1), match.group(2)
        rest, sep, query = rest.partition("?")
        netloc, slash, path = rest.partition("/")
        user, at, host = netloc.rpartition("@")
        if at and ":" in user:
            user = user.split(":", 1)[0] + ":***"
        netloc = f"{user}{at}{host}"
        if sep:
            query = "&".join(_redact_param(p) for p in query.split("&"))
        return f"{scheme}://{netloc}{slash}{path}{sep}{query}"

    return _CONN.sub(r"\1***", _URI.sub(one, str(text)))


def _redact_param(param: str) -> str:
    name, eq, value = param.partition("=")
    if eq and (name.lower() in _SAS_FIELDS or _SECRET_KEYS.search(name)):
        return f"{name}=***"
    return param


# ----------------------------------------------------------------------------------------------
# locations


@dataclass(frozen=True)
class Location:
    """A storage URI taken apart: ``scheme``, the ``path`` inside the filesystem (``bucket/...``
    or ``container/...``), the URI's ``prefix`` before the path (``gs://``,
    ``abfs://acct@host:port/``), its non-secret ``options``, and the ``secrets`` it carried
    (as the environment variables that hold them)."""

    scheme: str
    prefix: str
    path: str
    options: tuple[tuple[str, str], ...] = ()
    secrets: dict = field(default_factory=dict, compare=False, repr=False)
    in_netloc: str = ""  # the path's first part when the URI names it before the host (CONTAINER@)

    @property
    def uri(self) -> str:
        """The URI without its secrets: what is shown, written down, and given to workers."""
        query = f"?{urlencode(self.options, safe=':/')}" if self.options else ""
        path = self.path[len(self.in_netloc):].lstrip("/") if self.in_netloc else self.path
        return f"{self.prefix}{path}{query}"

    def child(self, name: str) -> Location:
        path = f"{self.path.rstrip('/')}/{name}" if self.path else name
        return Location(self.scheme, self.prefix, path, self.options, self.secrets, self.in_netloc)

    def option(self, name: str, default: str | None = None) -> str | None:
        return dict(self.options).get(name, default)


def parse(uri: str) -> Location:
    """Take an object-store URI apart (StorageError for one Phantom cannot read)."""
    scheme, sep, rest = uri.partition("://")
    if not sep:
        raise StorageError(f"not a URI: {redact(uri)}")
    scheme = scheme.lower()
    rest, _, query = rest.partition("?")
    params = parse_qsl(query, keep_blank_values=True)
    netloc, _, path = rest.partition("/")
    path = path.strip("/")
    if scheme in AZURE_SCHEMES:
        return _parse_azure(scheme, netloc, path, params, query)
    user, at, host = netloc.rpartition("@")
    secrets = {}
    if scheme == "s3" and ":" in user:  # pyarrow's s3://KEY:SECRET@bucket
        key, _, secret = user.partition(":")
        secrets = {"AWS_ACCESS_KEY_ID": unquote(key), "AWS_SECRET_ACCESS_KEY": unquote(secret)}
        user, at = "", ""
    options = []
    for name, value in params:
        if scheme == "s3" and name in ("access_key", "secret_key", "session_token"):
            secrets[{"access_key": "AWS_ACCESS_KEY_ID", "secret_key": "AWS_SECRET_ACCESS_KEY",
                     "session_token": "AWS_SESSION_TOKEN"}[name]] = value
        elif _SECRET_KEYS.search(name):
            raise StorageError(f"a credential in the URI's query string is not supported here: "
                               f"{name} in {redact(uri)} (set it in the environment)")
        else:
            options.append((name, value))
    bucket_path = "/".join(p for p in (host, path) if p)
    return Location(scheme, f"{scheme}://{user}{at}", bucket_path, tuple(options), secrets)


def _parse_azure(scheme: str, netloc: str, path: str, params, query: str) -> Location:
    user, at, host = netloc.rpartition("@")
    secrets, options = {}, []
    # the SAS as written (its signature covers the values; keep their encoding as given)
    sas = [p for p in query.split("&") if p.partition("=")[0].lower() in _SAS_FIELDS]
    for name, value in params:
        if name.lower() in _SAS_FIELDS:
            continue
        elif name in ("account_key", "sas_token"):
            secrets["AZURE_STORAGE_ACCOUNT_KEY" if name == "account_key" else "AZURE_STORAGE_SAS_TOKEN"] = value
        elif _SECRET_KEYS.search(name):
            raise StorageError(f"a credential in the URI's query string is not supported here: {name} "
                               "(set AZURE_STORAGE_ACCOUNT_KEY or AZURE_STORAGE_SAS_TOKEN)")
        else:
            options.append((name, value))
    if sas:
        secrets["AZURE_STORAGE_SAS_TOKEN"] = "&".join(sas)
    if at and (":" in host or host in ("localhost",) or re.fullmatch(r"[\d.]+", host)):
        # pyarrow's emulator form: abfs://ACCOUNT@HOST:PORT/CONTAINER/path
        return Location(scheme, f"{scheme}://{user}@{host}/", path, tuple(options), secrets)
    if at:  # abfs://CONTAINER@ACCOUNT.dfs.core.windows.net/path: the container is in the netloc
        return Location(scheme, f"{scheme}://{user}@{host}/", "/".join(p for p in (user, path) if p),
                        tuple(options), secrets, in_netloc=user)
    if "." in host:  # abfs://ACCOUNT.dfs.core.windows.net/CONTAINER/path
        return Location(scheme, f"{scheme}://{host}/", path, tuple(options), secrets)
    # abfs://CONTAINER/path: the account from the settings
    return Location(scheme, f"{scheme}://", "/".join(p for p in (host, path) if p), tuple(options), secrets)


def set_secrets(loc: Location) -> None:
    """Move the URI's credentials into this process's environment (the variables the SDKs
    read), so that the clean URI opens the same store here and on Ray's workers (the driver
    passes them in Ray's runtime environment: :func:`secret_env`)."""
    for key, value in loc.secrets.items():
        os.environ[key] = value
        _FROM_URIS.add(key)


_FROM_URIS: set[str] = set()  # the variables set here from a URI's credentials


def secret_env() -> dict[str, str]:
    """The credentials this process took from URIs, for Ray's runtime environment: a cluster's
    workers then open the clean URI as the driver does. (Settings a node has of its own, as
    every node should, are not passed: the nodes keep theirs.)"""
    return {k: os.environ[k] for k in sorted(_FROM_URIS) if os.environ.get(k)}


# ----------------------------------------------------------------------------------------------
# GCS


@dataclass(frozen=True)
class GcsSettings:
    """How to reach a GCS bucket: ``endpoint`` (``http://host:port``, or Google's), whether
    anonymously, and the credentials file when one is set."""

    endpoint: str
    anonymous: bool
    emulator: bool
    credentials_file: str | None

    @property
    def api(self) -> str:
        return self.endpoint.rstrip("/")


def gcs_settings(loc: Location) -> GcsSettings:
    override = loc.option("endpoint_override")
    emulator = next((os.environ[k] for k in GCS_EMULATOR_ENV if os.environ.get(k)), None)
    if override:
        endpoint = override if "://" in override else f"{loc.option('scheme', 'https')}://{override}"
    elif emulator:
        endpoint = emulator if "://" in emulator else f"http://{emulator}"
    else:
        endpoint = "https://storage.googleapis.com"
    anonymous = loc.prefix.endswith("anonymous@") or loc.option("anonymous", "").lower() in ("1", "true") \
        or (emulator is not None and not override)
    return GcsSettings(endpoint, anonymous, bool(emulator or override),
                       os.environ.get("GOOGLE_APPLICATION_CREDENTIALS") or None)


GCS_NONE = ("no GCS credentials found (set GOOGLE_APPLICATION_CREDENTIALS to a key file, use "
            "gs://anonymous@BUCKET/... for a public bucket, or CLOUD_STORAGE_EMULATOR_ENDPOINT for an emulator)")


def _adc_file() -> str | None:
    """gcloud's application default credentials file, when there is one."""
    root = os.environ.get("CLOUDSDK_CONFIG") or os.path.join(os.path.expanduser("~"), ".config", "gcloud")
    path = os.path.join(root, "application_default_credentials.json")
    return path if os.path.isfile(path) else None


@functools.lru_cache(maxsize=1)
def _on_gce() -> bool:
    """A GCE metadata server answers (one try, 1 s): Google's default credentials would
    otherwise wait a minute for one that is not there."""
    host = os.environ.get("GCE_METADATA_HOST") or os.environ.get("GCE_METADATA_IP") or "169.254.169.254"
    name, _, port = host.partition(":")
    try:
        with socket.create_connection((name, int(port or 80)), timeout=1.0):
            return True
    except OSError:
        return False


def gcs_has_credentials(settings: cloud.GcsSettings) -> bool:
    return settings.anonymous or bool(settings.credentials_file) or bool(_adc_file()) or _on_gce()


def gcs_filesystem(loc: Location):
    import datetime

    import pyarrow.fs as pafs

    s = gcs_settings(loc)
    if not gcs_has_credentials(s):  # Google's default chain would wait a minute for a metadata server
        raise StorageError(f"storage refused: {GCS_NONE}: {loc.uri}")
    kw = {}
    if s.endpoint != "https://storage.googleapis.com":
        scheme, _, host = s.endpoint.partition("://")
        kw.update(scheme=scheme, endpoint_override=host.rstrip("/"))
    if loc.option("project_id"):
        kw["project_id"] = loc.option("project_id")
    return pafs.GcsFileSystem(anonymous=s.anonymous, retry_time_limit=datetime.timedelta(seconds=GCS_RETRY_S), **kw)


# ----------------------------------------------------------------------------------------------
# Azure


@dataclass(frozen=True)
class AzureSettings:
    """How to reach an Azure storage account: its ``account``, the blob endpoint
    (``blob_url``: ``https://ACCOUNT.blob.core.windows.net`` or an emulator's
    ``http://HOST:PORT/ACCOUNT``), and one credential (``key``, ``sas``, or a service principal)."""

    account: str
    scheme: str
    authority: str  # pyarrow's blob/dfs storage authority: ".blob.core.windows.net" or "host:port"
    dfs_authority: str
    key: str | None = field(default=None, repr=False)
    sas: str | None = field(default=None, repr=False)
    principal: tuple[str, str, str] | None = field(default=None, repr=False)  # tenant, client, secret

    @property
    def emulated(self) -> bool:
        return not self.authority.startswith(".")

    @property
    def blob_url(self) -> str:
        if self.emulated:
            return f"{self.scheme}://{self.authority}/{self.account}"
        return f"{self.scheme}://{self.account}{self.authority}"

    @property
    def has_credentials(self) -> bool:
        return bool(self.key or self.sas or self.principal)


def parse_connection_string(text: str) -> dict[str, str]:
    out = {}
    for part in text.split(";"):
        name, eq, value = part.partition("=")
        if eq and name.strip():
            out[name.strip()] = value.strip()
    if out.get("UseDevelopmentStorage", "").lower() == "true":
        proxy = out.get("DevelopmentStorageProxyUri", "http://127.0.0.1")
        out = {"AccountName": AZURITE_ACCOUNT, "AccountKey": AZURITE_KEY,
               "BlobEndpoint": f"{proxy}:10000/{AZURITE_ACCOUNT}", **out}
    return out


def azure_settings(loc: Location) -> AzureSettings:
    env = os.environ
    conn = parse_connection_string(env.get("AZURE_STORAGE_CONNECTION_STRING", ""))
    scheme = "http" if loc.option("enable_tls", "true").lower() == "false" else None
    account = authority = None
    head = loc.prefix.split("://", 1)[1].rstrip("/")
    user, at, host = head.rpartition("@")
    if at and (":" in host or host == "localhost" or re.fullmatch(r"[\d.]+", host)):
        account, authority = user, host
    elif host:
        account = host.split(".", 1)[0]
        suffix = host.split(".", 2)[2] if host.count(".") >= 2 else "core.windows.net"
        authority = f".blob.{suffix}"
    account = account or conn.get("AccountName") or env.get("AZURE_STORAGE_ACCOUNT_NAME")
    if not account:
        raise StorageError("no Azure storage account: name it in the URI (abfs://CONTAINER@ACCOUNT.dfs.core.windows.net/...) "
                           "or set AZURE_STORAGE_ACCOUNT_NAME or AZURE_STORAGE_CONNECTION_STRING")
    if authority is None and conn.get("BlobEndpoint"):
        endpoint = conn["BlobEndpoint"].rstrip("/")
        scheme = scheme or endpoint.split("://", 1)[0]
        hostport = endpoint.split("://", 1)[-1].split("/", 1)[0]
        if hostport.startswith(f"{account}.blob."):
            authority = hostport[len(account):]
        else:
            authority = hostport
    if authority is None:
        authority = f".blob.{conn.get('EndpointSuffix', 'core.windows.net')}"
    scheme = scheme or conn.get("DefaultEndpointsProtocol", "https")
    dfs = authority.replace(".blob.", ".dfs.") if authority.startswith(".") else authority
    # one credential, the first found: the URI's, the connection string's, then the variables
    key = sas = None
    for source in (loc.secrets, {"AZURE_STORAGE_ACCOUNT_KEY": conn.get("AccountKey"),
                                 "AZURE_STORAGE_SAS_TOKEN": conn.get("SharedAccessSignature")}, env):
        key, sas = source.get("AZURE_STORAGE_ACCOUNT_KEY"), source.get("AZURE_STORAGE_SAS_TOKEN")
        if key or sas:
            break
    principal = None
    if env.get("AZURE_CLIENT_SECRET") and env.get("AZURE_CLIENT_ID") and env.get("AZURE_TENANT_ID"):
        principal = (env["AZURE_TENANT_ID"], env["AZURE_CLIENT_ID"], env["AZURE_CLIENT_SECRET"])
    return AzureSettings(account, scheme, authority, dfs, key, (sas or "").lstrip("?") or None, principal)


def azure_filesystem(loc: Location):
    import pyarrow.fs as pafs

    s = azure_settings(loc)
    if not s.has_credentials and not _managed_identity():
        raise StorageError(
            "no Azure credentials: set AZURE_STORAGE_CONNECTION_STRING, or AZURE_STORAGE_ACCOUNT_NAME with "
            "AZURE_STORAGE_ACCOUNT_KEY or AZURE_STORAGE_SAS_TOKEN, or a service principal (AZURE_CLIENT_ID, "
            f"AZURE_CLIENT_SECRET, AZURE_TENANT_ID): {loc.uri}")
    kw = dict(account_name=s.account, blob_storage_authority=s.authority, dfs_storage_authority=s.dfs_authority,
              blob_storage_scheme=s.scheme, dfs_storage_scheme=s.scheme)
    if s.key:
        kw["account_key"] = s.key
    elif s.sas:
        kw["sas_token"] = f"?{s.sas}"  # pyarrow appends it to the account URL as it is
    elif s.principal:
        kw.update(tenant_id=s.principal[0], client_id=s.principal[1], client_secret=s.principal[2])
    return pafs.AzureFileSystem(**kw)


def _managed_identity() -> bool:
    """A managed or workload identity is configured (the only credentials found without a
    variable naming them; Phantom never probes a metadata service on its own)."""
    env = os.environ
    return bool(env.get("AZURE_FEDERATED_TOKEN_FILE") or env.get("IDENTITY_ENDPOINT") or env.get("MSI_ENDPOINT")
                or (env.get("AZURE_CLIENT_ID") and not env.get("AZURE_CLIENT_SECRET")))


def quote_path(path: str) -> str:
    return quote(path, safe="")
