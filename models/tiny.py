"""Tiny test models of three families: their spec, vocabulary and tokenizer (no torch).

A tiny model is built offline from a config in milliseconds (:mod:`phantom.workers.tiny`, where the
weights are made). Its tokenizer is word-level over a filler vocabulary plus every word of
the sentences it is built for, so every target and competitor is exactly one token; the
builder plants the paper's G_max (:data:`PAPER_GMAX`) between each sentence's pair.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

FAMILIES = {
    "tiny-gpt2": "gpt2",
    "tiny-neox": "gpt_neox",
    "tiny-llama": "llama",
}

# untied LM head on the NeoX family (as Pythia), tied on the others (as GPT-2 and SmolLM)
TIED = {"gpt2": True, "gpt_neox": False, "llama": True}

HIDDEN = 64
LAYERS = 2
HEADS = 4
SEED = 1234  # the weights of a tiny model are a fixed function of its family

# The paper's Table 2 G_max values where given; used to plant the sentence pairs by default.
PAPER_GMAX = {
    "longing": 0.847, "skepticism": 0.652, "remorse": 0.573, "ashes": 0.607, "awe": 0.583,
    "terror": 0.585, "shame": 0.607, "relief": 0.385, "purpose": 0.303, "shock": 0.768,
}
DEFAULT_GMAX = 0.6  # planted for a sentence the paper gives no G_max for

FILLER = (
    "the a an of to in and or but with for on at by from as is was were be been it its he she "
    "they we you i his her their our my this that these those there here not no very so then "
    "when after before while into over under through again once all some many more most other "
    "old new good bad long little great small large high deep dark light first last same own "
    "day night time year home house room door hand eye face heart mind life world man woman "
    "child mother father friend city town war fire water sky star road sea tree stone word"
).split()

SPECIALS = ["<pad>", "<unk>", "<bos>", "<eos>"]
UNK = "<unk>"


def words(text: str) -> list[str]:
    """``text`` split as the tiny tokenizer's pre-tokenizer splits it (word runs, punctuation runs)."""
    return re.findall(r"\w+|[^\w\s]+", text)


def _sentence_list(sentences: Mapping | Iterable) -> list:
    return list(sentences.values()) if isinstance(sentences, Mapping) else list(sentences)


def vocabulary(sentences: Mapping | Iterable) -> dict[str, int]:
    """The word-level vocabulary: specials, the filler list, then every word of ``sentences``
    (``{id: Sentence}`` or Sentences: target, competitor, contexts, eval_contexts), in that order."""
    found: list[str] = []
    for s in _sentence_list(sentences):
        for text in (s.target, s.competitor, *s.contexts, *s.eval_contexts):
            found.extend(words(text))
    vocab = {tok: i for i, tok in enumerate(SPECIALS)}
    for w in [*FILLER, *sorted(set(found))]:
        vocab.setdefault(w, len(vocab))
    return vocab


def planted_pairs(sentences: Mapping | Iterable) -> dict[tuple[str, str], float]:
    """(target, competitor) -> the G_gc a tiny model plants for it by default."""
    return {(s.target, s.competitor): PAPER_GMAX.get(s.id, DEFAULT_GMAX) for s in _sentence_list(sentences)}


def word_tokenizer(vocab: dict[str, int]):
    """The ``tokenizers`` object of a tiny model (no transformers, no torch)."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return tok
