"""Expand a sweep into its trials: deterministic order, one stable id per point, skips named.

The points are ``itertools.product`` over the dimensions in a fixed order (model, sentence,
context, protocol, learning rate, seed), each in the order the file gives. Every point becomes
the same :class:`TrialConfig` that ``phantom trial`` builds for the same settings, so the trial
ids agree and a repeated dispatch or a resume can never create a second copy of a trial.

With ``sentences.contexts: each`` a sentence with n contexts gives n trials per point, each
training on one context (``context_index`` set), so the contexts give a spread.

A model that cannot be resolved is refused (:mod:`phantom.orchestrator.resolve`); a (model, sentence)
pair whose target or competitor is not a single token of that model's tokenizer is *skipped*,
with the reason, before anything starts. No torch is imported for either.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

from phantom.config import StopperConfig, TrialConfig
from phantom.errors import ConfigError, SentenceError, unknown
from phantom.orchestrator.config import SweepConfig
from phantom.orchestrator.resolve import check_models, load_tokenizer


@dataclass(frozen=True)
class Skip:
    model: str
    sentence_id: str
    reason: str


@dataclass(frozen=True)
class Grid:
    trials: tuple[TrialConfig, ...]
    skipped: tuple[Skip, ...]
    trial_ids: tuple[str, ...] | None = None  # the trials' ids, computed once (~90 us each)

    def __post_init__(self) -> None:
        if self.trial_ids is None:
            object.__setattr__(self, "trial_ids", tuple(t.trial_id for t in self.trials))

    @property
    def ids(self) -> list[str]:
        return list(self.trial_ids)


def select_sentences(sweep: SweepConfig, sentences_file: Path) -> list:
    from phantom.workers.sentences import load_sentences

    sentences = load_sentences(sentences_file)
    if sweep.sentences.ids is None:
        return list(sentences.values())
    missing = [i for i in sweep.sentences.ids if i not in sentences]
    if missing:
        raise ConfigError(f"`sentences.ids`: {unknown('sentence', missing[0], sentences)}")
    return [sentences[i] for i in sweep.sentences.ids]


def single_token_problem(tokenizer, model: str, s) -> str | None:
    """Why the sentence cannot run on this tokenizer (the message of
    :func:`phantom.workers.trial.resolve_ids`), or None."""
    from phantom.workers.sentences import token_id

    try:
        token_id(tokenizer, s.target)
        token_id(tokenizer, s.competitor)
    except SentenceError as exc:
        return f"sentence '{s.id}' on model '{model}': {exc}"
    return None


def expand(sweep: SweepConfig, sentences_file: Path, *, lrs: tuple[float, ...] | None = None,
           stopper: StopperConfig | None = None) -> Grid:
    """All trials of the grid; ``lrs`` and ``stopper`` replace the file's (the η_c search)."""
    sources = check_models(sweep.models)
    sentences = select_sentences(sweep, sentences_file)
    skipped: list[Skip] = []
    usable: dict[str, list] = {}
    for model in sweep.models:
        tokenizer = load_tokenizer(sources[model], sweep.trust_remote_code)
        usable[model] = []
        for s in sentences:
            problem = single_token_problem(tokenizer, model, s)
            if problem:
                skipped.append(Skip(model, s.id, problem))
            else:
                usable[model].append(s)
    trials = [
        _trial(sweep, model, s, ctx, protocol, lr, seed, stopper or sweep.stopper)
        for model in sweep.models
        for s in usable[model]
        for ctx, protocol in itertools.product(_contexts(sweep, s), sweep.protocols)
        for lr, seed in itertools.product(sweep.rates(protocol) if lrs is None else lrs, sweep.seeds)
    ]
    return Grid(tuple(trials), tuple(skipped))


def _contexts(sweep: SweepConfig, s) -> list[tuple[int | None, tuple[str, ...]]]:
    if sweep.sentences.contexts == "each":
        return [(i, (c,)) for i, c in enumerate(s.contexts)]
    return [(None, s.contexts)]


def _trial(sweep: SweepConfig, model: str, s, ctx, protocol: str, lr: float, seed: int,
           stopper: StopperConfig) -> TrialConfig:
    index, contexts = ctx
    return TrialConfig(
        model=model, sentence_id=s.id, target=s.target, competitor=s.competitor,
        contexts=contexts, context_index=index, protocol=protocol, lr=float(lr), seed=int(seed),
        training=sweep.training, lora=sweep.lora, observables=sweep.observables, stopper=stopper,
        trust_remote_code=sweep.trust_remote_code,
    )
