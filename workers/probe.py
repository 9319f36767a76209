"""Inference-only probes of a base model: the step-0 observables of a sentence's contexts."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from phantom.errors import SentenceError
from phantom.workers import observables as obs
from phantom.workers.models import LoadedModel
from phantom.workers.sentences import Sentence, token_id, token_pieces


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
    """Base-model observables (science §3 at step 0) for each context of ``sentence``.

    Raises SentenceError if the target or competitor is not a single token."""
    g = token_id(loaded.tokenizer, sentence.target)
    c = token_id(loaded.tokenizer, sentence.competitor)
    E = loaded.input_embeddings()
    out = []
    for i, context in enumerate(contexts or sentence.contexts):
        z, h = last_position(loaded, context)
        seen = obs.observe(z, h, E, g, c, pool_mass=pool_mass, pool_cap=pool_cap)
        out.append({"sentence_id": sentence.id, "context_id": i, "g": g, "c": c, "loss": seen.loss,
                    **dataclasses.asdict(seen.values)})
    return out


def is_hard(values: dict) -> bool:
    """science §1.3: the competitor leads under Born scoring at the base model (Φ₀ ≤ 0)."""
    return values["phi"] <= 0.0


@dataclass(frozen=True)
class SentenceCheck:
    """``phantom sentences check`` for one sentence: its contexts' step-0 rows (g, c, gmax,
    rank_g, rank_c, phi, pool_size, ...), G_gc from the LM-head rows (``g_head``: G_max itself
    when the head is tied), or why the sentence cannot run on the model (``skipped``)."""

    sentence_id: str
    rows: tuple[dict, ...] = ()
    g_head: float | None = None
    skipped: str | None = None


def check_sentences(loaded: LoadedModel, sentences: dict[str, Sentence]) -> list[SentenceCheck]:
    """Each sentence on ``loaded`` at step 0, in the file's order (science §1.3: hard when Φ₀ ≤ 0,
    :func:`is_hard`); a sentence whose target or competitor is not one token is skipped, with
    the pieces the tokenizer splits it into."""
    W = loaded.head_weights().detach()
    out = []
    for s in sentences.values():
        try:
            rows = probe_sentence(loaded, s)
        except SentenceError as exc:
            bad = [w for w in (s.target, s.competitor) if len(token_pieces(loaded.tokenizer, w)) != 1]
            pieces = ", ".join(f"'{w}' -> {token_pieces(loaded.tokenizer, w)}" for w in bad)
            out.append(SentenceCheck(s.id, skipped=f"not a single token: {pieces or exc}"))
            continue
        psi = obs.unit_rows(W[[rows[0]["g"], rows[0]["c"]]])
        out.append(SentenceCheck(s.id, tuple(rows), float(psi[0] @ psi[1])))
    return out
