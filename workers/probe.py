"""Inference-only probes of a base model: the step-0 observables of a sentence's contexts."""

from __future__ import annotations

import torch

from workers import observables as obs
from workers.models import LoadedModel
from workers.sentences import Sentence, token_id


@torch.no_grad()
def last_position(loaded: LoadedModel, context: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(logits z, LM-head input h) at the last position of ``context``."""
    captured: dict[str, torch.Tensor] = {}
    head = loaded.model.get_output_embeddings()
    hook = head.register_forward_pre_hook(lambda _m, args: captured.__setitem__("h", args[0]))
    try:
        ids = loaded.tokenizer(context, return_tensors="pt")["input_ids"]
        logits = loaded.model(input_ids=ids).logits
    finally:
        hook.remove()
    return logits[0, -1].float(), captured["h"][0, -1]


def probe_sentence(
    loaded: LoadedModel, sentence: Sentence, *, pool_mass: float = 0.9, pool_cap: int = 1024,
    contexts: tuple[str, ...] | None = None,
) -> list[dict]:
    """Base-model observables (SPEC §3 at step 0) for each context of ``sentence``.

    Raises SentenceError if the target or competitor is not a single token."""
    g = token_id(loaded.tokenizer, sentence.target)
    c = token_id(loaded.tokenizer, sentence.competitor)
    E = loaded.input_embeddings()
    out = []
    for i, context in enumerate(contexts or sentence.contexts):
        z, h = last_position(loaded, context)
        values, _ = obs.observe(z, h, E, g, c, pool_mass=pool_mass, pool_cap=pool_cap)
        out.append({"sentence_id": sentence.id, "context_id": i, "g": g, "c": c, **values})
    return out


def is_hard(values: dict) -> bool:
    """SPEC §1: the competitor leads under Born scoring at the base model (Φ₀ ≤ 0)."""
    return values["phi"] <= 0.0
