"""Resolve a sweep's model names and read their tokenizers, without torch.

The driver checks every model before anything is written or started: a name that is not
registered, not a local directory and not a hub id this machine can reach (in the Hugging Face
cache, or the hub is up) is refused in one line. The single-token check of the sentences
needs only a tokenizer, which is read from a ``tokenizer.json`` with the ``tokenizers``
library (the converted embedded models keep one in their cache folder, hub models in the HF
cache); the tiny models' word-level vocabulary is built without building the model. Only a
model that has no such file yet (an embedded model never converted, a hub model with a slow
tokenizer) loads through transformers.
"""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass
from pathlib import Path

from phantom.errors import ConfigError, ModelError, suggest, unknown

HUB_ID_RE = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
TOKENIZER_FILE = "tokenizer.json"


def model_kind(name: str) -> str:
    """'embedded', 'tiny', 'local' or 'hub' (nothing is loaded)."""
    from workers.models import describe

    return describe(name)


def check_name(name: str) -> str:
    """The kind of ``name``; a one-line error when it cannot be a model at all: not a hub id's
    syntax, or one letter off a registered name (a typo, not a hub id: 'tiny-lama')."""
    from workers.models import _hub_cached, registered

    kind = model_kind(name)
    if kind != "hub":
        return kind
    if name.startswith(("/", ".", "~")) or not HUB_ID_RE.match(name):
        hint = suggest(name, registered())
        raise ConfigError(f"Unknown model '{name}' in `models` (no such directory, not a hub id).{hint}")
    close = difflib.get_close_matches(name, registered(), n=1, cutoff=0.85)
    if close and "/" not in name and not _hub_cached(name):
        raise ConfigError(unknown("model", name, registered()) + " (or a hub id / local directory)")
    return kind


def check_models(models: tuple[str, ...]) -> dict[str, str]:
    """{name: kind} for models that can be resolved here; a one-line error for the first that
    cannot (:func:`check_name`, or a hub id neither in the Hugging Face cache nor reachable)."""
    from workers.models import _hub_cached, _hub_reachable, registered

    kinds = {name: check_name(name) for name in models}
    offline = [n for n, kind in kinds.items() if kind == "hub" and not _hub_cached(n)]
    if offline and not _hub_reachable():
        name = offline[0]
        raise ModelError(
            f"Unknown model '{name}' in `models`: not registered, not a local directory, not in the "
            f"Hugging Face cache, and the hub is unreachable.{suggest(name, registered())} "
            f"Registered: {', '.join(registered())}"
        )
    return kinds


# ----------------------------------------------------------------------------------------------
# tokenizers


@dataclass
class FileTokenizer:
    """The part of a transformers tokenizer that the single-token check uses
    (:func:`workers.sentences.token_id`), over a ``tokenizers.Tokenizer``."""

    tok: object
    unk_token: str | None = None

    @property
    def unk_token_id(self) -> int | None:
        return None if self.unk_token is None else self.tok.token_to_id(self.unk_token)

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        return self.tok.encode(text, add_special_tokens=add_special_tokens).ids

    def convert_ids_to_tokens(self, ids: list[int]) -> list[str]:
        return [self.tok.id_to_token(i) for i in ids]

    @classmethod
    def from_folder(cls, folder: Path) -> FileTokenizer:
        from tokenizers import Tokenizer

        tok = Tokenizer.from_file(str(folder / TOKENIZER_FILE))
        return cls(tok, _unk_token(folder, tok))


def _unk_token(folder: Path, tok) -> str | None:
    """The unknown token as transformers sees it: tokenizer_config.json, else the model's."""
    config = folder / "tokenizer_config.json"
    if config.is_file():
        unk = json.loads(config.read_text(encoding="utf-8")).get("unk_token")
        if isinstance(unk, dict):
            unk = unk.get("content")
        if unk is not None:
            return unk
    return getattr(tok.model, "unk_token", None)


def load_tokenizer(name: str, kind: str, trust_remote_code: bool = False):
    """A tokenizer for the single-token check: from a file where there is one (fast, no
    torch), else through transformers (registered models that were never converted load in
    full, once)."""
    from workers.models import _hub_cached, cache_dir

    if kind == "tiny":
        from workers import tiny

        return FileTokenizer(tiny.word_tokenizer(tiny.vocabulary()), "<unk>")
    folder = None
    if kind == "embedded":
        folder = cache_dir() / "models" / name
    elif kind == "local":
        folder = Path(name).expanduser()
    elif _hub_cached(name):
        folder = _hub_folder(name)
    if folder is not None and (folder / TOKENIZER_FILE).is_file():
        return FileTokenizer.from_folder(folder)
    if kind == "embedded":
        from workers.models import load_model_cached

        return load_model_cached(name, trust_remote_code=trust_remote_code).tokenizer
    return _auto_tokenizer(name, kind, trust_remote_code)


def _hub_folder(name: str) -> Path | None:
    from huggingface_hub import try_to_load_from_cache

    path = try_to_load_from_cache(name, TOKENIZER_FILE)
    return Path(path).parent if isinstance(path, str) else None


def _auto_tokenizer(name: str, kind: str, trust_remote_code: bool):
    from transformers import AutoTokenizer

    from workers.models import _hub_cached

    try:
        return AutoTokenizer.from_pretrained(
            str(Path(name).expanduser()) if kind == "local" else name,
            trust_remote_code=trust_remote_code, local_files_only=kind == "local" or _hub_cached(name),
        )
    except (OSError, ValueError) as exc:
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ModelError(f"Unknown model '{name}' in `models`: {text}") from None
