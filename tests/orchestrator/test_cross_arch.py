"""The shipped cross-architecture sweeps (issue 10): sweeps/cross-arch.yaml is the study on the
three real models, and sweeps/frozen-head.yaml holds exactly the lora-frozen-head twins of its
qwen lora trials. The grids are compared on smollm2-135m (always cached: the set-up installs
it), by overriding the models; `phantom sweep validate` on the real three runs where gemma and
qwen are converted in the weight cache."""

from __future__ import annotations

import dataclasses

import pytest

from phantom.cli import main
from phantom.orchestrator.expand import expand
from phantom.orchestrator.loader import load_sweep
from phantom.orchestrator.testing import REPO

SWEEPS = REPO / "sweeps"
REAL = ["smollm2-135m", "gemma3-270m", "qwen2.5-coder-0.5b"]


def test_cross_arch_is_the_study_on_three_models():
    """The study's settings on three models; LoRA also at 1e-6 and 3e-6 (qwen's untied head
    flipped at every study rate for 5 of 8 sentences), full FT also at 1e-8 and 3e-8 (gemma flips at 1e-7, qwen at 3e-8)."""
    cross, _ = load_sweep(SWEEPS / "cross-arch.yaml")
    study, _ = load_sweep(SWEEPS / "study.yaml")
    assert cross.name == "cross-arch" and list(cross.models) == REAL
    assert cross.protocols == ("full", "lora")
    assert cross.rates("full") == (1e-8, 3e-8) + study.rates("full")
    assert study.rates("full") == (1e-7, 3e-7, 1e-6, 3e-6, 1e-5, 2e-5)
    assert cross.rates("lora") == (1e-6, 3e-6) + study.rates("lora")
    assert study.rates("lora") == (1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3)
    assert cross.training.steps == 25 and cross.stopper == study.stopper
    assert cross.resources.pack == "auto"  # lora stays unpacked on the untied qwen (packing.pack_limit)
    same = ("protocols", "seeds", "training", "observables", "lora", "stopper", "search", "sentences")
    for key in same:
        assert getattr(cross, key) == getattr(study, key), key


@pytest.mark.smoke
def test_cross_arch_smollm2_trials_are_the_study_trials():
    """Same settings, same trial ids: the study's results can seed the cross-arch folder (all
    108 of them are cross-arch trials; cross-arch adds the two low LoRA rates)."""
    cross, sents = load_sweep(SWEEPS / "cross-arch.yaml", ["models=[smollm2-135m]"])
    study, sents_s = load_sweep(SWEEPS / "study.yaml")
    cross_ids, study_ids = set(expand(cross, sents).ids), set(expand(study, sents_s).ids)
    assert len(study_ids) == 108 and study_ids < cross_ids
    extra = [t for t in expand(cross, sents).trials if t.trial_id not in study_ids]
    assert len(extra) == 9 * 4
    assert {(t.protocol, t.lr) for t in extra} == {("lora", 1e-6), ("lora", 3e-6), ("full", 1e-8), ("full", 3e-8)}


def _beside_cross_arch(name: str, protocol: str):
    """The trials of sweeps/NAME and cross-arch's trials of PROTOCOL, both on smollm2-135m
    (always cached: the set-up installs it), and cross-arch's config."""
    over = ["models=[smollm2-135m]"]
    other, s1 = load_sweep(SWEEPS / name, over)
    cross, s2 = load_sweep(SWEEPS / "cross-arch.yaml", over)
    return expand(other, s1).trials, [t for t in expand(cross, s2).trials if t.protocol == protocol], cross


@pytest.mark.smoke
def test_frozen_head_trials_are_the_twins_of_cross_arch_lora():
    """frozen-head.yaml = cross-arch's LoRA grid with the head frozen, nothing else changed (so
    the frozen_head view pairs every trial); compared on smollm2-135m by overriding the model."""
    fh, _ = load_sweep(SWEEPS / "frozen-head.yaml")
    assert list(fh.models) == ["qwen2.5-coder-0.5b"] and fh.protocols == ("lora-frozen-head",)
    assert fh.resources.pack == "auto"  # a frozen head is shared: packs pay again
    frozen, lora, _ = _beside_cross_arch("frozen-head.yaml", "lora")
    assert len(frozen) == len(lora) == 9 * 8
    assert sorted(repr(dataclasses.replace(t, protocol="lora")) for t in frozen) == \
        sorted(repr(t) for t in lora)


def _converted(name: str) -> bool:
    from phantom.models import cache_dir

    return (cache_dir() / "models" / name / "tokenizer.json").is_file()


@pytest.mark.skipif(not all(_converted(m) for m in REAL[1:]),
                    reason="gemma3-270m / qwen2.5-coder-0.5b not converted in the weight cache "
                           "(phantom models install --convert gemma3-270m qwen2.5-coder-0.5b)")
def test_cross_arch_validates_offline(capsys):
    assert main(["sweep", "validate", str(SWEEPS / "cross-arch.yaml")]) == 0
    out = capsys.readouterr().out
    assert "cross-arch: 432 trials = 27 (model, sentence) pairs x 2 protocols x 8 rates" in out
    assert "skipped qwen2.5-coder-0.5b / longing:" in out and "'yearning' is not a single token" in out
    assert "skipped gemma3-270m" not in out
    assert main(["sweep", "validate", str(SWEEPS / "frozen-head.yaml")]) == 0
    assert "frozen-head: 64 trials = 8 (model, sentence) pairs x 1 protocols x 8 rates" in capsys.readouterr().out


@pytest.mark.smoke
def test_cross_arch_eta_is_cross_arch_full_stopped_at_the_flip():
    """cross-arch-eta.yaml = cross-arch's full-FT trials with stopper.at_flip and nothing else
    changed (the same η_c brackets: bracket ids leave the stopper out)."""
    eta, _ = load_sweep(SWEEPS / "cross-arch-eta.yaml")
    assert list(eta.models) == REAL[1:] and eta.protocols == ("full",) and eta.stopper.at_flip
    assert eta.resources.max_concurrent == 1 and eta.resources.cpus_per_trial == 2
    stopped, full, cross = _beside_cross_arch("cross-arch-eta.yaml", "full")
    assert len(stopped) == len(full) == 9 * 8
    assert sorted(repr(dataclasses.replace(t, stopper=cross.stopper)) for t in stopped) == sorted(repr(t) for t in full)
    assert {t.bracket_id for t in stopped} == {t.bracket_id for t in full}
