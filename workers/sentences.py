"""Sentences: a context whose next token g has a near-synonym competitor c (science §1.1)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from phantom import sweeps
from phantom.errors import ConfigError, SentenceError, unknown

DEFAULT_SENTENCES = sweeps.sentences_file()  # shipped in the package (phantom.sweeps)


@dataclass(frozen=True)
class Sentence:
    id: str
    target: str
    competitor: str
    contexts: tuple[str, ...]
    eval_contexts: tuple[str, ...] = field(default=())


_KEYS = {"id", "target", "competitor", "contexts", "eval_contexts"}


def _parse(entry: object, where: str) -> Sentence:
    if not isinstance(entry, dict):
        raise ConfigError(f"{where}: each sentence should be a mapping, got {entry!r}")
    extra = set(entry) - _KEYS
    if extra:
        raise ConfigError(f"{where}: unknown key `{sorted(extra)[0]}` (known: {', '.join(sorted(_KEYS))})")
    for key in ("id", "target", "competitor"):
        if not isinstance(entry.get(key), str) or not entry[key].strip():
            raise ConfigError(f"{where}: `{key}` should be a non-empty string")
    contexts = entry.get("contexts")
    if isinstance(contexts, str):
        contexts = [contexts]
    if not contexts or not all(isinstance(c, str) and c.strip() for c in contexts):
        raise ConfigError(f"{where}: `contexts` should be a non-empty list of strings")
    evals = entry.get("eval_contexts") or []
    if not all(isinstance(c, str) and c.strip() for c in evals):
        raise ConfigError(f"{where}: `eval_contexts` should be a list of strings")
    if entry["target"].strip() == entry["competitor"].strip():
        raise ConfigError(f"{where}: target and competitor are the same word")
    return Sentence(
        id=entry["id"],
        target=entry["target"].strip(),
        competitor=entry["competitor"].strip(),
        contexts=tuple(c.rstrip() for c in contexts),
        eval_contexts=tuple(c.rstrip() for c in evals),
    )


def load_sentences(path: str | os.PathLike | None = None) -> dict[str, Sentence]:
    """Read a sentences YAML file (default: the shipped ``sentences.yaml``) into {id: Sentence}."""
    path = Path(path) if path is not None else DEFAULT_SENTENCES
    if not path.is_file():
        raise ConfigError(f"sentences file not found: {path}")
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    items = doc.get("sentences") if isinstance(doc, dict) else None
    if not isinstance(items, list) or not items:
        raise ConfigError(f"{path}: expected a top-level `sentences:` list")
    out: dict[str, Sentence] = {}
    for i, entry in enumerate(items):
        s = _parse(entry, f"{path.name}: sentence {i + 1}")
        if s.id in out:
            raise ConfigError(f"{path.name}: duplicate sentence id '{s.id}'")
        out[s.id] = s
    return out


def get_sentence(sentence_id: str, path: str | os.PathLike | None = None) -> Sentence:
    sentences = load_sentences(path)
    if sentence_id not in sentences:
        raise SentenceError(unknown("sentence", sentence_id, sentences))
    return sentences[sentence_id]


def token_pieces(tokenizer, word: str) -> list[str]:
    """How the tokenizer splits ``word`` as it appears after a context (with a leading space)."""
    ids = tokenizer.encode(" " + word, add_special_tokens=False)
    return tokenizer.convert_ids_to_tokens(ids)


def token_id(tokenizer, word: str) -> int:
    """The single token id of " word"; a SentenceError naming the pieces otherwise."""
    ids = tokenizer.encode(" " + word, add_special_tokens=False)
    if len(ids) != 1:
        pieces = tokenizer.convert_ids_to_tokens(ids)
        raise SentenceError(
            f"'{word}' is not a single token for this tokenizer: it splits into {len(ids)} pieces {pieces}"
        )
    unk = getattr(tokenizer, "unk_token_id", None)
    if unk is not None and ids[0] == unk and word != tokenizer.unk_token:
        raise SentenceError(f"'{word}' is not in this tokenizer's vocabulary (it maps to the unknown token)")
    return int(ids[0])
