"""Hub models through the real ``huggingface_hub`` client, against a local hub on 127.0.0.1
(phantom.testing.hub): the first download, a cached load with the hub gone, and the one-line
error for a model that is neither cached nor reachable.

huggingface_hub reads HF_ENDPOINT, HF_HOME and HF_HUB_OFFLINE when it is imported, so the
client runs in one fresh process with that environment (the test session itself stays offline):
it starts the hub on the port HF_ENDPOINT names, goes through the phases (stopping the hub in
between) and reports what it saw as JSON.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from phantom.testing.hub import LocalHub, save_tiny

REPO = Path(__file__).resolve().parents[2]
MODEL_ID = "phantom-test/tiny-llama"

CLIENT = textwrap.dedent(
    """
    import contextlib, io, json, os, sys, time
    import torch
    from phantom.cli import main
    from phantom.errors import ModelError
    from phantom.testing.hub import LocalHub
    from phantom import models
    from phantom.workers.models import load_model

    folder, model_id = sys.argv[1], sys.argv[2]
    out = {}
    port = int(os.environ["HF_ENDPOINT"].rsplit(":", 1)[1])
    hub = LocalHub({model_id: folder}, port=port).start()
    import huggingface_hub.constants as c
    out["endpoint"], out["offline_flag"] = c.ENDPOINT, c.HF_HUB_OFFLINE
    out["reachable_up"] = models.hub_reachable()

    def fingerprint(loaded):
        sd = loaded.model.state_dict()
        return {"source": loaded.source, "family": loaded.family,
                "ids": loaded.tokenizer("she felt a deep and aching")["input_ids"],
                "sum": float(sum(v.double().sum() for v in sd.values())), "n": len(sd)}

    out["local"] = fingerprint(load_model(folder))
    out["cached_before"] = models.hub_cached(model_id)
    out["download"] = fingerprint(load_model(model_id))
    out["cached_after"] = models.hub_cached(model_id)
    try:
        load_model("phantom-test/no-such-model")
    except ModelError as exc:
        out["missing_repo"] = str(exc)
    out["requests"] = list(hub.requests)
    hub.stop()
    out["reachable_down"] = models.hub_reachable()

    t0 = time.perf_counter()
    out["cached"] = fingerprint(load_model(model_id))
    out["cached_s"] = time.perf_counter() - t0
    out["requests_after_stop"] = len(hub.requests) - len(out["requests"])

    err = io.StringIO()
    t0 = time.perf_counter()
    with contextlib.redirect_stderr(err):
        code = main(["trial", "--model", "phantom-test/never-downloaded", "--sentence", "longing",
                     "--lr", "1e-3", "--steps", "1", "--out", sys.argv[3], "--quiet"])
    out["uncached"] = {"code": code, "stderr": err.getvalue(), "s": time.perf_counter() - t0}
    print("RESULT " + json.dumps(out))
    """
)


@pytest.fixture(scope="module")
def client_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hub")
    folder = save_tiny("tiny-llama", tmp / "model")
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    with socket.socket() as s:  # a free port for the hub the client process starts
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env.update(HF_HOME=str(tmp / "hf-home"), HF_ENDPOINT=f"http://127.0.0.1:{port}",
               HF_HUB_DISABLE_TELEMETRY="1", PYTHONPATH=str(REPO))
    proc = subprocess.run(
        [sys.executable, "-c", CLIENT, str(folder), MODEL_ID, str(tmp / "out")],
        env=env, cwd=tmp, capture_output=True, text=True, timeout=300,
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stderr[-3000:]
    result = json.loads(lines[-1][len("RESULT "):])
    result["hf_home"] = tmp / "hf-home"
    result["port"] = port
    result["out"] = tmp / "out"
    return result


def test_first_load_downloads_through_the_real_client(client_run):
    r = client_run
    assert r["endpoint"] == f"http://127.0.0.1:{r['port']}" and r["offline_flag"] is False
    assert r["reachable_up"] is True
    assert r["cached_before"] is False and r["cached_after"] is True
    assert r["download"]["source"] == "hub" and r["download"]["family"] == "llama"
    # the same weights and tokenizer as the folder the hub serves
    assert r["download"] == {**r["local"], "source": "hub"}
    got = {(m, p.rsplit("/", 1)[-1]) for m, p in r["requests"] if "/resolve/" in p}
    for name in ("config.json", "model.safetensors", "tokenizer.json"):
        assert ("HEAD", name) in got and ("GET", name) in got
    snapshots = list((r["hf_home"] / "hub" / "models--phantom-test--tiny-llama" / "snapshots").iterdir())
    assert len(snapshots) == 1 and (snapshots[0] / "model.safetensors").is_file()


def test_unknown_repo_on_a_reachable_hub_is_one_line(client_run):
    message = client_run["missing_repo"]
    assert message.startswith("Unknown model 'phantom-test/no-such-model'.")
    assert "\n" not in message


def test_cached_model_loads_with_the_hub_stopped(client_run):
    r = client_run
    assert r["reachable_down"] is False
    assert r["cached"] == r["download"]
    assert r["requests_after_stop"] == 0
    assert r["cached_s"] < 5


def test_uncached_model_with_the_hub_unreachable_is_one_line(client_run):
    from phantom.models import offline_message as _offline_message

    u = client_run["uncached"]
    assert u["code"] == 2
    assert u["stderr"].splitlines()[-1] == f"phantom: error: {_offline_message('phantom-test/never-downloaded')}"
    assert u["s"] < 5  # a refused connection, not a minute of retries
    assert not client_run["out"].exists()  # nothing written


@pytest.mark.parametrize("endpoint,address", [
    ("http://127.0.0.1", ("127.0.0.1", 80)),
    ("http://127.0.0.1:8555", ("127.0.0.1", 8555)),
    ("https://hub.example", ("hub.example", 443)),
    ("", ("huggingface.co", 443)),
])
def test_reachability_probe_uses_the_endpoint_port(monkeypatch, endpoint, address):
    from phantom.models import _hub as models

    seen = []

    def connect(addr, timeout):
        seen.append(addr)
        raise OSError("refused")

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", endpoint)
    monkeypatch.setattr(models.socket, "create_connection", connect)
    assert models.hub_reachable() is False
    assert seen == [address]


def test_local_hub_answers_like_the_hub(tmp_path):
    """The HTTP contract the client relies on, checked directly (no client)."""
    import urllib.error
    import urllib.request

    (tmp_path / "config.json").write_text('{"model_type": "llama"}')
    with LocalHub({"org/m": tmp_path}) as hub:
        req = urllib.request.Request(f"{hub.url}/org/m/resolve/main/config.json", method="HEAD")
        with urllib.request.urlopen(req) as resp:
            assert resp.headers["X-Repo-Commit"] == hub.repos["org/m"].commit
            assert resp.headers["ETag"].strip('"') == hub.repos["org/m"].sha256["config.json"]
            assert int(resp.headers["Content-Length"]) == len('{"model_type": "llama"}')
        req = urllib.request.Request(f"{hub.url}/org/m/resolve/main/config.json", headers={"Range": "bytes=3-"})
        with urllib.request.urlopen(req) as resp:
            assert resp.status == 206 and resp.read() == b'{"model_type": "llama"}'[3:]
        for path, code, error in [("/org/m/resolve/main/nope.json", 404, "EntryNotFound"),
                                  ("/org/m/resolve/v9/config.json", 404, "RevisionNotFound"),
                                  ("/org/x/resolve/main/config.json", 401, "RepoNotFound")]:
            with pytest.raises(urllib.error.HTTPError) as info:
                urllib.request.urlopen(hub.url + path)
            assert info.value.code == code and info.value.headers["X-Error-Code"] == error
        with urllib.request.urlopen(f"{hub.url}/api/models/org/m/revision/main") as resp:
            assert json.load(resp)["siblings"] == [{"rfilename": "config.json", "size": 23}]
