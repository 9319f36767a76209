"""Tiny test models of three families, built offline from a config in milliseconds.

The tokenizer is word-level over every word of the sentences file plus a filler vocabulary,
so every target and competitor is exactly one token. ``plant`` sets the cosine overlap G_gc of
chosen (target, competitor) pairs exactly, so tests can assert geometric quantities.
"""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING

from phantom.errors import ModelError

if TYPE_CHECKING:  # torch loads when a model is built, not for the vocabulary
    import torch

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

FILLER = (
    "the a an of to in and or but with for on at by from as is was were be been it its he she "
    "they we you i his her their our my this that these those there here not no very so then "
    "when after before while into over under through again once all some many more most other "
    "old new good bad long little great small large high deep dark light first last same own "
    "day night time year home house room door hand eye face heart mind life world man woman "
    "child mother father friend city town war fire water sky star road sea tree stone word"
).split()

SPECIALS = ["<pad>", "<unk>", "<bos>", "<eos>"]


def _words(text: str) -> list[str]:
    return re.findall(r"\w+|[^\w\s]+", text)


def vocabulary(sentences: dict | None = None) -> dict[str, int]:
    """The word-level vocabulary: specials, the filler list, then every word of the sentences
    (default: sweeps/sentences.yaml), in that order."""
    from workers.sentences import load_sentences

    sentences = load_sentences() if sentences is None else sentences
    words: list[str] = []
    for s in sentences.values():
        for text in (s.target, s.competitor, *s.contexts, *s.eval_contexts):
            words.extend(_words(text))
    vocab = {tok: i for i, tok in enumerate(SPECIALS)}
    for w in [*FILLER, *sorted(set(words))]:
        vocab.setdefault(w, len(vocab))
    return vocab


def word_tokenizer(vocab: dict[str, int]):
    """The ``tokenizers`` object of a tiny model (no transformers, no torch)."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return tok


def build_tokenizer(sentences: dict | None = None):
    """A word-level PreTrainedTokenizerFast over the sentences' words and a filler list."""
    from transformers import PreTrainedTokenizerFast

    tok = word_tokenizer(vocabulary(sentences))
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", unk_token="<unk>", bos_token="<bos>", eos_token="<eos>"
    )


def build_config(family: str, vocab_size: int):
    from transformers import GPT2Config, GPTNeoXConfig, LlamaConfig

    common = dict(vocab_size=vocab_size, tie_word_embeddings=TIED[family], pad_token_id=0, bos_token_id=2, eos_token_id=3)
    if family == "gpt2":
        return GPT2Config(
            n_embd=HIDDEN, n_layer=LAYERS, n_head=HEADS, n_positions=128,
            resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, **common,
        )
    if family == "gpt_neox":
        return GPTNeoXConfig(
            hidden_size=HIDDEN, num_hidden_layers=LAYERS, num_attention_heads=HEADS,
            intermediate_size=4 * HIDDEN, max_position_embeddings=128, rotary_pct=0.25,
            attention_dropout=0.0, hidden_dropout=0.0, **common,
        )
    if family == "llama":
        return LlamaConfig(
            hidden_size=HIDDEN, num_hidden_layers=LAYERS, num_attention_heads=HEADS,
            num_key_value_heads=2, intermediate_size=2 * HIDDEN, max_position_embeddings=128, **common,
        )
    raise ModelError(f"no tiny model of family '{family}'")  # pragma: no cover


def plant(embedding: torch.Tensor, pairs: dict[tuple[int, int], float], seed: int = 0) -> None:
    """Set cos(E_g, E_c) = G exactly for each (g, c) -> G, in place, by rotating row g.

    Row g keeps its norm; its direction becomes G·ψ_c + sqrt(1 − G²)·v with v ⟂ ψ_c random.
    Targets must be distinct (competitors may repeat: shame/guilt and remorse/guilt)."""
    import torch

    targets = [g for g, _ in pairs]
    if len(set(targets)) != len(targets):
        raise ValueError("plant: each target token may be planted against one competitor only")
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        E64 = embedding.detach().to(torch.float64)
        for (g, c), G in pairs.items():
            if not -1.0 <= G <= 1.0:
                raise ValueError(f"plant: G must be in [-1, 1], got {G}")
            psi_c = E64[c] / E64[c].norm()
            v = torch.randn(E64.shape[1], generator=gen, dtype=torch.float64)
            v = v - (v @ psi_c) * psi_c
            v = v / v.norm()
            E64[g] = E64[g].norm() * (G * psi_c + math.sqrt(max(0.0, 1.0 - G * G)) * v)
        embedding.copy_(E64.to(embedding.dtype))


def build_tiny(name: str, plant_pairs: dict[tuple[str, str], float] | None = None, sentences: dict | None = None):
    """(model, tokenizer) for a tiny model. ``plant_pairs`` maps (target, competitor) words to
    G_gc; by default every sentence pair is planted at the paper's G_max (0.6 if not given)."""
    import torch
    from transformers import AutoModelForCausalLM

    from workers.sentences import load_sentences, token_id

    if name not in FAMILIES:
        raise ModelError(f"unknown tiny model '{name}'")
    family = FAMILIES[name]
    sentences = load_sentences() if sentences is None else sentences
    tokenizer = build_tokenizer(sentences)
    config = build_config(family, len(tokenizer))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        model = AutoModelForCausalLM.from_config(config)
    if plant_pairs is None:
        plant_pairs = {(s.target, s.competitor): PAPER_GMAX.get(s.id, 0.6) for s in sentences.values()}
    ids = {(token_id(tokenizer, g), token_id(tokenizer, c)): G for (g, c), G in plant_pairs.items()}
    plant(model.get_input_embeddings().weight, ids)
    model.eval()
    return model, tokenizer
