"""Tiny models: fast, offline, every target one token, planted geometry exact."""

from __future__ import annotations

import pytest
import torch

from phantom.errors import SentenceError
from phantom.workers import tiny
from phantom.workers.sentences import load_sentences, token_id


@pytest.mark.parametrize("name,tied", [("tiny-gpt2", True), ("tiny-neox", False), ("tiny-llama", True)])
def test_tiny_families_and_heads(tiny_models, name, tied):
    lm = tiny_models[name]
    assert lm.family == tiny.FAMILIES[name]
    assert lm.tied is tied
    assert lm.source == "tiny"


def test_every_sentence_word_is_one_token(tiny_models):
    tok = tiny_models["tiny-llama"].tokenizer
    ids = set()
    for s in load_sentences().values():
        ids.add(token_id(tok, s.target))
        token_id(tok, s.competitor)
    assert len(ids) == len(load_sentences())  # targets are distinct tokens


def test_unknown_and_multi_piece_words_are_errors(tiny_models):
    tok = tiny_models["tiny-gpt2"].tokenizer
    with pytest.raises(SentenceError, match="vocabulary"):
        token_id(tok, "zyzzyva")
    with pytest.raises(SentenceError, match="3 pieces"):
        token_id(tok, "well-being")


@pytest.mark.parametrize("name", ["tiny-gpt2", "tiny-neox", "tiny-llama"])
def test_planted_gmax_is_recovered(tiny_models, name):
    lm = tiny_models[name]
    E = lm.input_embeddings().detach().double()
    for s in load_sentences().values():
        g, c = token_id(lm.tokenizer, s.target), token_id(lm.tokenizer, s.competitor)
        G = float(E[g] @ E[c] / (E[g].norm() * E[c].norm()))
        assert G == pytest.approx(tiny.PAPER_GMAX.get(s.id, 0.6), abs=1e-6), s.id


def test_plant_chosen_pairs_and_build_is_deterministic():
    model, tok = tiny.build_tiny("tiny-llama", plant_pairs={("longing", "yearning"): 0.25, ("awe", "wonder"): -0.5})
    E = model.get_input_embeddings().weight.detach().double()
    cos = lambda a, b: float(E[a] @ E[b] / (E[a].norm() * E[b].norm()))  # noqa: E731
    assert cos(token_id(tok, "longing"), token_id(tok, "yearning")) == pytest.approx(0.25, abs=1e-6)
    assert cos(token_id(tok, "awe"), token_id(tok, "wonder")) == pytest.approx(-0.5, abs=1e-6)
    again, _ = tiny.build_tiny("tiny-llama", plant_pairs={("longing", "yearning"): 0.25, ("awe", "wonder"): -0.5})
    for a, b in zip(model.state_dict().values(), again.state_dict().values()):
        assert torch.equal(a, b)
