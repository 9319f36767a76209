"""Expand a sweep into its trials: deterministic order, one stable id per point, skips named.

The grid is ``itertools.product`` over the dimensions in a fixed order (model, sentence,
protocol, learning rate, seed), each in the order the file gives. Every point becomes the same
:class:`TrialConfig` that ``phantom trial`` builds for the same settings, so the trial ids agree
and a repeated dispatch or a resume can never create a second copy of a trial.

A (model, sentence) pair whose target or competitor is not a single token of that model's
tokenizer is *skipped*, with the reason, before anything starts.
"""

from __future__ import annotations

import difflib
import itertools
import re
from dataclasses import dataclass
from pathlib import Path

from phantom.config import TrialConfig
from phantom.errors import ConfigError, ModelError, SentenceError, suggest, unknown
from orchestrator.config import SweepConfig

HUB_ID_RE = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


@dataclass(frozen=True)
class Skip:
    model: str
    sentence_id: str
    reason: str


@dataclass(frozen=True)
class Grid:
    trials: tuple[TrialConfig, ...]
    skipped: tuple[Skip, ...]
    unchecked: tuple[str, ...]  # models whose tokenizer is not available here (not checked)

    @property
    def ids(self) -> list[str]:
        return [t.trial_id for t in self.trials]


def select_sentences(sweep: SweepConfig, sentences_file: Path) -> list:
    from workers.sentences import load_sentences

    sentences = load_sentences(sentences_file)
    if sweep.sentences.ids is None:
        return list(sentences.values())
    missing = [i for i in sweep.sentences.ids if i not in sentences]
    if missing:
        raise ConfigError(f"`sentences.ids`: {unknown('sentence', missing[0], sentences)}")
    return [sentences[i] for i in sweep.sentences.ids]


def check_model_names(sweep: SweepConfig) -> None:
    """Reject names that cannot be a model: not registered, no such directory, not hub-id
    syntax, or one letter away from a registered name (a typo, not a hub id)."""
    from workers.models import describe, registered

    for name in sweep.models:
        kind = describe(name)
        if kind != "hub":
            continue
        if name.startswith(("/", ".", "~")) or not HUB_ID_RE.match(name):
            hint = suggest(name, registered())
            raise ConfigError(f"Unknown model '{name}' in `models` (no such directory, not a hub id).{hint}")
        # one letter off a registered name is a typo, not a hub id ('distilgpt2' is not 'tiny-gpt2')
        close = difflib.get_close_matches(name, registered(), n=1, cutoff=0.85)
        if close and "/" not in name and not _hub_cached(name):
            raise ConfigError(unknown("model", name, registered()) + " (or a hub id / local directory)")


def _hub_cached(name: str) -> bool:
    from workers.models import _hub_cached as cached

    return cached(name)


def load_tokenizer(name: str, trust_remote_code: bool = False):
    """The model's tokenizer, or None when it is a hub model this machine cannot reach.

    Registered models load in full (tiny: ms; embedded: 0.3 s warm) and stay cached for the
    trials of this process; hub and local models load only their tokenizer.
    """
    from workers.models import _hub_reachable, describe, load_model_cached

    kind = describe(name)
    if kind in ("tiny", "embedded"):
        return load_model_cached(name, trust_remote_code=trust_remote_code).tokenizer
    from transformers import AutoTokenizer

    local_only = kind == "local" or _hub_cached(name)
    if not local_only and not _hub_reachable():
        return None
    try:
        return AutoTokenizer.from_pretrained(
            str(Path(name).expanduser()) if kind == "local" else name,
            trust_remote_code=trust_remote_code, local_files_only=local_only,
        )
    except (OSError, ValueError) as exc:
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ModelError(f"Unknown model '{name}' in `models`: {text}") from None


def expand(sweep: SweepConfig, sentences_file: Path, *, lrs: tuple[float, ...] | None = None,
           check_tokens: bool = True) -> Grid:
    """All trials of the grid (``lrs`` replaces the file's rates, for the η_c search)."""
    from workers.trial import resolve_ids

    check_model_names(sweep)
    sentences = select_sentences(sweep, sentences_file)
    rates = sweep.learning_rates if lrs is None else lrs
    skipped: list[Skip] = []
    unchecked: list[str] = []
    usable: dict[str, list] = {}
    for model in sweep.models:
        tokenizer = load_tokenizer(model, sweep.trust_remote_code) if check_tokens else None
        if check_tokens and tokenizer is None:
            unchecked.append(model)
        usable[model] = []
        for s in sentences:
            probe = _trial(sweep, model, s, sweep.protocols[0], 1.0, sweep.seeds[0])
            if tokenizer is not None:
                try:
                    resolve_ids(probe, tokenizer)
                except SentenceError as exc:
                    skipped.append(Skip(model, s.id, str(exc)))
                    continue
            usable[model].append(s)
    trials = [
        _trial(sweep, model, s, protocol, lr, seed)
        for model in sweep.models
        for s, protocol, lr, seed in itertools.product(usable[model], sweep.protocols, rates, sweep.seeds)
    ]
    return Grid(tuple(trials), tuple(skipped), tuple(unchecked))


def _trial(sweep: SweepConfig, model: str, s, protocol: str, lr: float, seed: int) -> TrialConfig:
    return TrialConfig(
        model=model, sentence_id=s.id, target=s.target, competitor=s.competitor,
        contexts=s.contexts, protocol=protocol, lr=float(lr), seed=int(seed),
        training=sweep.training, lora=sweep.lora, observables=sweep.observables, stopper=sweep.stopper,
        trust_remote_code=sweep.trust_remote_code,
    )
