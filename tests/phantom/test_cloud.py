"""Storage URIs taken apart (phantom.cloud): a sweep name joins the path, never the query
string (issue 27: `gs://b/p?endpoint_override=...` got `/NAME` after the query, and an Azure
SAS got `/NAME` inside its signature); credentials leave the URI and are redacted in any text."""

from __future__ import annotations

import pytest

from phantom import cloud
from phantom.storage import Store

SAS = "sv=2021-08-06&ss=b&srt=co&sp=rwdlac&se=2027-01-01T00%3A00%3A00Z&sig=SECRETsig%2Bx%3D"
CASES = [  # (uri, fs path, clean uri, child uri)
    ("gs://b/p?endpoint_override=127.0.0.1:4443&scheme=http", "b/p", "gs://b/p?endpoint_override=127.0.0.1:4443&scheme=http",
     "gs://b/p/NAME?endpoint_override=127.0.0.1:4443&scheme=http"),
    ("gs://anonymous@b/p", "b/p", "gs://anonymous@b/p", "gs://anonymous@b/p/NAME"),
    (f"abfs://devstoreaccount1@127.0.0.1:10000/c/sweeps?enable_tls=false&{SAS}", "c/sweeps",
     "abfs://devstoreaccount1@127.0.0.1:10000/c/sweeps?enable_tls=false",
     "abfs://devstoreaccount1@127.0.0.1:10000/c/sweeps/NAME?enable_tls=false"),
    ("abfs://c@acct.dfs.core.windows.net/sweeps", "c/sweeps", "abfs://c@acct.dfs.core.windows.net/sweeps",
     "abfs://c@acct.dfs.core.windows.net/sweeps/NAME"),
    ("abfs://c/sweeps", "c/sweeps", "abfs://c/sweeps", "abfs://c/sweeps/NAME"),
    ("s3://AKIA123:s3cr3t@bucket/p", "bucket/p", "s3://bucket/p", "s3://bucket/p/NAME"),
]


@pytest.mark.parametrize("uri,path,clean,child", CASES)
def test_a_uri_taken_apart(uri, path, clean, child):
    loc = cloud.parse(uri)
    assert (loc.path, loc.uri, loc.child("NAME").uri) == (path, clean, child)
    assert "SECRET" not in loc.uri and "s3cr3t" not in loc.uri


def test_credentials_in_a_uri_move_to_the_sdks_variables(monkeypatch):
    for key in ("AZURE_STORAGE_SAS_TOKEN", "AWS_SECRET_ACCESS_KEY", "AWS_ACCESS_KEY_ID"):
        monkeypatch.delenv(key, raising=False)
    assert cloud.parse(f"abfs://a@127.0.0.1:1/c/p?{SAS}").secrets == {"AZURE_STORAGE_SAS_TOKEN": SAS}
    assert cloud.parse("s3://AK:SK@b/p").secrets == {"AWS_ACCESS_KEY_ID": "AK", "AWS_SECRET_ACCESS_KEY": "SK"}


@pytest.mark.parametrize("text,hidden", [
    (f"abfs://a@h:1/c/p?enable_tls=false&{SAS} failed", "SECRETsig"),
    ("sweep folder s3://AKIA1:topsecret@b/p is in use", "topsecret"),
    ("DefaultEndpointsProtocol=http;AccountName=a;AccountKey=c2VjcmV0a2V5;BlobEndpoint=x", "c2VjcmV0a2V5"),
    ("gs://b/p?access_token=ya29.tok&x=1", "ya29.tok"),
])
def test_redact_hides_every_credential(text, hidden):
    out = cloud.redact(text)
    assert hidden not in out and "***" in out


def test_a_store_child_and_parent_keep_the_options(monkeypatch):
    # no credentials anywhere (the tests' metadata server is a closed port): anonymous, said in the URI
    monkeypatch.setenv("CLOUD_STORAGE_EMULATOR_ENDPOINT", "http://127.0.0.1:1")
    store = Store.open("gs://b/sweeps?endpoint_override=127.0.0.1:1&scheme=http&anonymous=true").child("lr50")
    assert store.uri == "gs://b/sweeps/lr50?endpoint_override=127.0.0.1:1&scheme=http&anonymous=true"
    assert (store.root, store.name) == ("b/sweeps/lr50", "lr50")
    assert store.parent_uri() == "gs://b/sweeps?endpoint_override=127.0.0.1:1&scheme=http&anonymous=true"
    assert store.duckdb_path("trials", "*.parquet") == "gs://b/sweeps/lr50/trials/*.parquet"


def test_azure_settings_from_a_connection_string(monkeypatch):
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", "UseDevelopmentStorage=true")
    s = cloud.azure_settings(cloud.parse("abfs://c/p"))
    assert (s.account, s.blob_url, s.key) == ("devstoreaccount1", "http://127.0.0.1:10000/devstoreaccount1",
                                              cloud.AZURITE_KEY)
    monkeypatch.delenv("AZURE_STORAGE_CONNECTION_STRING")
    s = cloud.azure_settings(cloud.parse("abfss://c@acct.dfs.core.windows.net/p"))
    assert (s.account, s.blob_url, s.authority) == ("acct", "https://acct.blob.core.windows.net", ".blob.core.windows.net")
