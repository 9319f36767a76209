"""A model's tokenizer read from a file, without torch or transformers.

The single-token check of a sweep's sentences needs only a tokenizer. It is read with the
``tokenizers`` library from the model's ``tokenizer.json`` (the converted embedded models keep
one in their cache folder, hub models in the Hugging Face cache, a local folder its own); a
tiny model's word-level vocabulary is built without building the model. A model that has no
such file yet (an embedded model never converted, a hub model with a slow tokenizer) gives
None: the caller loads it through transformers.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from phantom.models import tiny
from phantom.models._hub import hub_file
from phantom.models._source import ModelSource

TOKENIZER_FILE = "tokenizer.json"


@dataclass
class FileTokenizer:
    """The part of a transformers tokenizer that the single-token check uses
    (``encode``, ``convert_ids_to_tokens``, ``unk_token``), over a ``tokenizers.Tokenizer``."""

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


def tokenizer_folder(source: ModelSource) -> Path | None:
    """The folder holding ``source``'s ``tokenizer.json`` on this machine, or None."""
    if source.kind in ("embedded", "local"):
        folder = source.path
    elif source.kind == "hub" and source.cached:
        path = hub_file(source.name, TOKENIZER_FILE)
        folder = path.parent if path is not None else None
    else:
        folder = None
    return folder if folder is not None and (folder / TOKENIZER_FILE).is_file() else None


def read_tokenizer(source: ModelSource, sentences: Mapping | Iterable | None = None) -> FileTokenizer | None:
    """``source``'s tokenizer from a file (a tiny model's from ``sentences``, the sentences it
    is built for), or None when there is no file to read."""
    if source.kind == "tiny":
        if sentences is None:
            raise ValueError("read_tokenizer: a tiny model's vocabulary needs the sentences it is built for")
        return FileTokenizer(tiny.word_tokenizer(tiny.vocabulary(sentences)), tiny.UNK)
    folder = tokenizer_folder(source)
    return FileTokenizer.from_folder(folder) if folder is not None else None
