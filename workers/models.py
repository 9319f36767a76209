"""Loading a model's weights where the trial runs: (model, tokenizer) in float32, eval mode.

What a name is and where its weights come from is :func:`phantom.models.resolve` (no torch): this
module takes the resolved :class:`models.ModelSource` and loads it —

- tiny: built from a config (:mod:`phantom.workers.tiny`);
- embedded: the float cache folder, de-quantized once from the verified GGUF (first use);
- local: ``from_pretrained`` on the folder;
- hub: ``from_pretrained`` on the id, from the local cache when it is there, else from the
  hub after one quick reachability probe (a one-line error when offline).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from phantom import models
from phantom.models import Embedded, ModelSource
from phantom.errors import ModelError, suggest

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
# loading


def load_model(name: str | ModelSource, *, trust_remote_code: bool = False,
               progress: Callable[[str], None] | None = None) -> LoadedModel:
    """Load a model name (resolved here) or an already resolved source, in float32, eval mode,
    on the CPU."""
    source = name if isinstance(name, ModelSource) else models.resolve(name)
    say = progress or (lambda msg: None)
    if source.kind == "tiny":
        from phantom.workers.tiny import build_tiny

        model, tokenizer = build_tiny(source.name)
    elif source.kind == "embedded":
        if not (source.path / models.MARKER).is_file():  # converted since it was resolved: not again
            _convert_gguf(source.embedded, models.locate_parts(source.embedded), source.path, say)
        model, tokenizer = _load_cached(source.path)
    else:
        model, tokenizer = _from_pretrained(source, trust_remote_code)
    model.eval()
    return LoadedModel(name=source.name, model=model, tokenizer=tokenizer, source=source.kind)


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


def _from_pretrained(source: ModelSource, trust_remote_code: bool):
    """A local folder or a hub id through transformers (from the HF cache when it is there)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    local = source.kind == "local"
    if not local and not source.cached and not models.hub_reachable():
        raise ModelError(models.offline_message(source.name))
    where = str(source.path) if local else source.name
    kwargs = {"trust_remote_code": trust_remote_code, "local_files_only": not local and source.cached}
    try:
        tokenizer = AutoTokenizer.from_pretrained(where, **kwargs)
        model = AutoModelForCausalLM.from_pretrained(where, dtype=torch.float32, **kwargs)
    except (OSError, ValueError) as exc:
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if local:
            raise ModelError(f"cannot load model from directory '{source.name}': {text}") from None
        if "trust_remote_code" in str(exc):
            raise ModelError(f"model '{source.name}' needs custom code: pass --trust-remote-code if you trust it") from None
        raise ModelError(f"Unknown model '{source.name}'.{suggest(source.name, models.registered())} ({text})") from None
    return model, tokenizer


# ----------------------------------------------------------------------------------------------
# embedded GGUF models: de-quantized once into the float cache folder, loaded from it after


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
    expected = models.read_marker(target).get("tied")
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
            gguf = models.join_parts(spec, paths)
        else:
            say(f"assembling the {spec.name} GGUF from {len(paths)} parts")
            gguf = models.join_parts(spec, paths, tmp / spec.gguf)
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
        (tmp / models.MARKER).write_text(json.dumps(info, indent=1) + "\n")  # last: the folder is complete
        del model
        shutil.rmtree(target, ignore_errors=True)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.rename(tmp, target)
        except OSError:  # another process finished first: use theirs
            pass
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
