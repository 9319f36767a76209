"""models/: one resolve(name) per model, on each kind, torch-free; the unknown-name errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from phantom import models
from phantom.models import ModelSource, resolve
from phantom.errors import ModelError

REPO = Path(__file__).resolve().parents[2]
REGISTERED = ["gemma3-270m", "qwen2.5-coder-0.5b", "smollm2-135m", "tiny-gpt2", "tiny-llama", "tiny-neox"]


@pytest.fixture
def hf_cache(tmp_path, monkeypatch):
    """An empty Hugging Face cache; ``put(repo_id)`` makes a model appear cached in it."""
    import huggingface_hub.constants as c

    root = tmp_path / "hf-hub"
    monkeypatch.setattr(c, "HF_HUB_CACHE", str(root))

    def put(repo_id: str, files=("config.json", "tokenizer.json")) -> Path:
        repo = root / f"models--{repo_id.replace('/', '--')}"
        snap = repo / "snapshots" / ("0" * 40)
        snap.mkdir(parents=True)
        (repo / "refs").mkdir()
        (repo / "refs" / "main").write_text("0" * 40)
        for name in files:
            (snap / name).write_text("{}")
        return snap

    return put


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("PHANTOM_CACHE", str(tmp_path / "phantom-cache"))
    return tmp_path / "phantom-cache"


# (name, kind, family, tied) for the registered names: what a loader needs, without loading
REGISTERED_CASES = [
    ("tiny-gpt2", "tiny", "gpt2", True),
    ("tiny-neox", "tiny", "gpt_neox", False),
    ("tiny-llama", "tiny", "llama", True),
    ("smollm2-135m", "embedded", None, True),
    ("gemma3-270m", "embedded", None, True),
    ("qwen2.5-coder-0.5b", "embedded", None, False),
]


def test_the_registry_lists_every_model():
    assert models.registered() == REGISTERED
    assert {name: models.describe(name) for name in REGISTERED} == {c[0]: c[1] for c in REGISTERED_CASES}


@pytest.mark.parametrize("name,kind,family,tied", REGISTERED_CASES, ids=[c[0] for c in REGISTERED_CASES])
def test_registered_names_resolve_to_their_kind(cache, name, kind, family, tied):
    source = resolve(name)
    assert (source.name, source.kind, source.family, source.tied, source.hub_id) == (name, kind, family, tied, None)
    if kind == "tiny":
        assert source.path is None and source.embedded is None and source.cached
    else:
        assert source.path == cache / "models" / name
        assert source.embedded is models.EMBEDDED[name] and source.cached is False


def test_an_embedded_model_is_cached_once_its_marker_is_written(cache):
    folder = cache / "models" / "smollm2-135m"
    folder.mkdir(parents=True)
    assert resolve("smollm2-135m").cached is False  # a folder without its marker is unfinished
    (folder / "phantom.json").write_text("{}")
    assert resolve("smollm2-135m").cached is True


def test_a_local_folder(tmp_path):
    source = resolve(str(tmp_path))
    assert source == ModelSource(str(tmp_path), "local", path=tmp_path, cached=True)
    assert source.tied is None and source.hub_id is None


def test_hub_ids_cached_or_not(hf_cache):
    assert resolve("org/some-model") == ModelSource("org/some-model", "hub", cached=False)
    snap = hf_cache("org/some-model")
    source = resolve("org/some-model")
    assert (source.kind, source.cached, source.hub_id, source.path) == ("hub", True, "org/some-model", None)
    assert models.tokenizer_folder(source) == snap


def test_a_typo_of_a_registered_name_is_refused_unless_it_is_cached(hf_cache):
    with pytest.raises(ModelError) as exc:
        resolve("tiny-lama")
    assert str(exc.value) == ("Unknown model 'tiny-lama'. Did you mean 'tiny-llama'? Available: "
                              + ", ".join(REGISTERED) + " (or a hub id / local directory)")
    hf_cache("tiny-lama")  # a hub model of that name in the cache is a real model, not a typo
    assert resolve("tiny-lama").kind == "hub"
    assert resolve("org/tiny-lama").kind == "hub"  # an org/name id is never a typo


@pytest.mark.parametrize("name", ["./no/such/dir", "/no/such/dir", "~/no-such-dir-xyz", "a b", "org/x/y"])
def test_a_path_that_is_no_folder_is_refused(name):
    with pytest.raises(ModelError) as exc:
        resolve(name)
    assert str(exc.value).startswith(f"Unknown model '{name}' (no such directory, not a hub id).")
    assert "\n" not in str(exc.value)


def test_register_names_the_bad_kind():
    with pytest.raises(ValueError, match="`kind` should be 'embedded' or 'tiny', got 'hub'"):
        models.register("x", "hub", "llama")


def test_a_tiny_tokenizer_needs_its_sentences():
    with pytest.raises(ValueError, match="needs the sentences"):
        models.read_tokenizer(resolve("tiny-gpt2"))


def test_the_loader_takes_the_resolved_source(tiny_models):
    """The worker loads what resolve returned, the same model as by name."""
    import torch

    from phantom.workers.models import load_model

    loaded = load_model(resolve("tiny-neox"))
    ref = tiny_models["tiny-neox"]
    assert (loaded.name, loaded.source, loaded.family, loaded.tied) == ("tiny-neox", "tiny", "gpt_neox", False)
    for a, b in zip(loaded.model.state_dict().values(), ref.model.state_dict().values()):
        assert torch.equal(a, b)


def test_the_face_is_torch_free(tmp_path):
    """Importing models and resolving every kind loads neither torch nor transformers."""
    code = (
        "import sys\nfrom phantom import models\n"
        "from phantom.workers.sentences import load_sentences\n"
        "kinds = [models.resolve(n).kind for n in models.registered()] + [models.resolve(sys.argv[1]).kind]\n"
        "tok = models.read_tokenizer(models.resolve('tiny-llama'), load_sentences())\n"
        "assert tok.encode(' longing', add_special_tokens=False) != [tok.unk_token_id]\n"
        "print(sorted(set(kinds)), [m for m in ('torch', 'transformers') if m in sys.modules])\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=120,
                          cwd=tmp_path, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin",
                                             "PHANTOM_CACHE": str(tmp_path / "cache"), "HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split("\n")[0] == "['embedded', 'local', 'tiny'] []"
