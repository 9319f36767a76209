"""Building a tiny test model: its weights from a config in milliseconds, offline.

What a tiny model *is* (families, heads, vocabulary, the paper's G_max) lives in
:mod:`phantom.models.tiny`, without torch; this module makes the torch model and its transformers
tokenizer for the sentences file (default: sweeps/sentences.yaml). ``plant`` sets the cosine
overlap G_gc of chosen (target, competitor) pairs exactly, so tests can assert geometric
quantities.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from phantom.errors import ModelError
from phantom.models.tiny import (FAMILIES, HEADS, HIDDEN, LAYERS, PAPER_GMAX, SEED, TIED, UNK, planted_pairs, vocabulary,
                         word_tokenizer)
from phantom.workers.sentences import load_sentences, token_id

if TYPE_CHECKING:  # torch loads when a model is built
    import torch

__all__ = ["FAMILIES", "PAPER_GMAX", "TIED", "build_config", "build_tiny", "build_tokenizer", "plant"]


def build_tokenizer(sentences: dict | None = None):
    """A word-level PreTrainedTokenizerFast over the sentences' words and a filler list."""
    from transformers import PreTrainedTokenizerFast

    tok = word_tokenizer(vocabulary(load_sentences() if sentences is None else sentences))
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", unk_token=UNK, bos_token="<bos>", eos_token="<eos>"
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
        plant_pairs = planted_pairs(sentences)
    ids = {(token_id(tokenizer, g), token_id(tokenizer, c)): G for (g, c), G in plant_pairs.items()}
    plant(model.get_input_embeddings().weight, ids)
    model.eval()
    return model, tokenizer
