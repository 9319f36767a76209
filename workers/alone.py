"""One trial on its own, without Ray: what ``phantom trial`` runs (the command line is a shell
over :func:`trial_config` and :func:`run_alone`).

The trial is the one a sweep would run for the same settings (same :class:`TrialConfig`, same
trial id, same code path: :func:`phantom.workers.trial.run_trial`); its files go to a results
folder that every reader takes (``phantom query``, ``phantom analyze``, ``phantom.open``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from phantom.config import LoraConfig, ObservablesConfig, StopperConfig, TrainingConfig, TrialConfig

if TYPE_CHECKING:  # pragma: no cover
    from phantom.workers.trial import TrialResult

# on_step(step, rows of that step: one per context)
OnStep = Callable[[int, list[dict]], None]


def trial_config(model: str, sentence: str, *, lr: float, steps: int, protocol: str = "full",
                 seed: int = 0, sentences: str | os.PathLike | None = None,
                 lora: dict | None = None, observables: dict | None = None,
                 phi_saturation: bool = False, trust_remote_code: bool = False,
                 precision: str = "auto") -> TrialConfig:
    """The config of one trial, validated (protocol, rate, sentence id) before anything runs.

    ``sentence``: an id of the sentences file ``sentences`` (default: the shipped one);
    ``lora`` / ``observables``: keys of :class:`LoraConfig` / :class:`ObservablesConfig` that
    differ from the defaults; ``precision``: ``training.precision`` (auto, fp32, bf16, fp16)."""
    from phantom.workers.sentences import get_sentence

    s = get_sentence(sentence, sentences)
    return TrialConfig(
        model=model, sentence_id=s.id, target=s.target, competitor=s.competitor,
        contexts=s.contexts, protocol=protocol, lr=lr, seed=seed,
        training=TrainingConfig(steps=steps, precision=precision), lora=LoraConfig(**(lora or {})),
        observables=ObservablesConfig(**(observables or {})),
        stopper=StopperConfig(phi_saturation=phi_saturation), trust_remote_code=trust_remote_code,
    )


def run_alone(cfg: TrialConfig, out: str | os.PathLike, *, track: Sequence[str] = (),
              on_step: OnStep | None = None, say: Callable[[str], None] | None = None) -> TrialResult:
    """Run ``cfg`` here and write its step rows and record under ``out`` (a folder or a URI).

    The trackers ``track`` (mlflow, tensorboard, wandb: stored under ``out``) get every step.
    Nothing is written when the tracker is not installed, the model does not load or the target
    or the competitor is not one token (each a one-line :class:`~phantom.errors.PhantomError`).
    ``say`` gets what loading the model has to tell (a conversion on first use)."""
    from phantom.storage import Store
    from phantom.tracking import check_installed, open_tracking
    from phantom.workers.models import load_model
    from phantom.workers.trial import resolve_ids, run_trial

    check_installed(track)
    base = load_model(cfg.model, trust_remote_code=cfg.trust_remote_code, progress=say)
    resolve_ids(cfg, base.tokenizer)  # a multi-token target fails here, before any write
    store = Store.open(out)
    tracking = open_tracking(track, store.uri)
    tracking.trial_started(cfg)

    def callback(_cfg: TrialConfig, step: int, rows: list[dict]) -> None:
        tracking.steps(cfg.trial_id, step, rows)
        if on_step is not None:
            on_step(step, rows)

    try:
        result = run_trial(cfg, store, base=base, callback=callback)
        tracking.finished(result)
    finally:
        tracking.close()
    return result
