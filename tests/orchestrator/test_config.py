"""Sweep files: include chains, --set, and a corpus of bad files each rejected in one line
before anything starts or is written."""

from __future__ import annotations

import pytest
import yaml

from phantom.cli import main
from phantom.errors import ConfigError
from phantom.orchestrator.expand import expand
from phantom.orchestrator.loader import load_sweep

from phantom.orchestrator.testing import SENTENCES, tiny_sweep

# (what is wrong, overrides of the tiny sweep or raw YAML text, a fragment of the one-line error)
BAD = [
    ("unknown top key", {"learning_rate": [1e-3]}, "Unknown key `learning_rate`. Did you mean 'learning_rates'?"),
    ("unknown nested key", {"training": {"step": 5}}, "Unknown key `training.step`. Did you mean 'steps'?"),
    ("wrong type", {"training": {"steps": "many"}}, "`training.steps` should be an integer, got 'many'"),
    ("empty dimension", {"learning_rates": []}, "`learning_rates` is empty"),
    ("lr zero", {"learning_rates": [0.0, 1e-3]}, "`learning_rates[0]` should be a positive number, got 0.0"),
    ("lr negative", {"learning_rates": [-1e-3]}, "`learning_rates[0]` should be a positive number"),
    ("unknown protocol", {"protocols": ["ful"]}, "Unknown protocol 'ful' in `protocols`. Did you mean 'full'?"),
    ("unknown model", {"models": ["tiny-lama"]}, "Unknown model 'tiny-lama'. Did you mean 'tiny-llama'?"),
    ("model path", {"models": ["./no/such/dir"]}, "Unknown model './no/such/dir'"),
    # issue 8: a hub-looking name that is not cached, with the hub unreachable, used to dispatch
    ("unresolvable model", {"models": ["tiny-gpt2", "no-such-model-xyz"]},
     "Unknown model 'no-such-model-xyz' in `models`: not registered, not a local directory, not in the "
     "Hugging Face cache, and the hub is unreachable."),
    ("unknown sentence", {"sentences": {"file": str(SENTENCES), "ids": ["longin"]}},
     "Unknown sentence 'longin'. Did you mean 'longing'?"),
    ("missing sentences file", {"sentences": "nope.yaml"}, "`sentences.file` not found: nope.yaml"),
    ("negative retries", {"retries": -1}, "`retries` should be >= 0"),
    ("rates of a protocol missing", {"protocols": ["full", "lora"], "learning_rates": {"full": [1e-3]}},
     "`learning_rates.lora` is missing or empty: each protocol needs its rates"),
    ("rates of a protocol not run", {"learning_rates": {"full": [1e-3], "prefix": [1e-2]}},
     "`learning_rates.prefix` is given but 'prefix' is not in `protocols`"),
    ("per-protocol rate negative", {"learning_rates": {"full": [-1e-3]}},
     "`learning_rates.full[0]` should be a positive number, got -0.001"),
    ("per-protocol typo", {"learning_rates": {"ful": [1e-3]}}, "Unknown key `learning_rates.ful`. Did you mean 'full'?"),
    ("bad gpu share", {"resources": {"gpus_per_trial": -0.5}}, "`resources.gpus_per_trial` should be >= 0"),
    ("bad pack", {"resources": {"pack": 0}}, "`resources.pack` should be at least 1 (1 = no packing), got 0"),
    ("bad pack word", {"resources": {"pack": "max"}}, "`resources.pack` should be a whole number >= 1 or 'auto'"),
    ("bad contexts mode", {"sentences": {"file": str(SENTENCES), "contexts": "all"}},
     "`sentences.contexts` should be one of joint, each, got 'all'"),
    ("duplicate rate", {"learning_rates": [1e-3, 1e-3]}, "`learning_rates` has duplicates"),
    ("bad name", {"name": "a/b"}, "`name` should be a folder name"),
    ("bad search mode", {"search": {"mode": "grdi"}}, "Did you mean 'grid'?"),
    ("inverted eta-c range", {"search": {"mode": "eta-c", "lr_min": 1e-2, "lr_max": 1e-3}}, "should be below"),
    ("no models", {"models": None}, "`models`"),
    ("not yaml", "name: [unclosed\n", "not valid YAML"),
    ("not a mapping", "- a\n- b\n", "a sweep file should be a mapping"),
]


@pytest.mark.parametrize("what,bad,message", BAD, ids=[b[0] for b in BAD])
def test_bad_sweep_files_are_rejected_in_one_line_and_nothing_is_written(
    write_sweep, tmp_path, capsys, monkeypatch, what, bad, message
):
    import ray

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # the hub is unreachable (deterministically)
    path = write_sweep(bad if isinstance(bad, str) else tiny_sweep(**bad))
    storage = tmp_path / "storage"
    for command in (["sweep", "validate", str(path)], ["sweep", "run", str(path), "--storage", str(storage)]):
        assert main(command) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1, err
        assert err.startswith("phantom: error: ")
        assert message in err
    assert not storage.exists()
    assert not ray.is_initialized()


def test_run_without_storage_is_refused_before_anything_starts(write_sweep, capsys):
    path = write_sweep(tiny_sweep())
    assert main(["sweep", "run", str(path)]) == 2
    assert "no storage" in capsys.readouterr().err


def test_include_local_keys_win_and_mappings_merge(write_sweep):
    write_sweep(tiny_sweep(training={"steps": 7, "weight_decay": 0.1}), "base.yaml")
    path = write_sweep("include: base.yaml\nname: child\ntraining: {steps: 3}\nlearning_rates: [1e-4]\n")
    sweep, sentences = load_sweep(path)
    assert sweep.name == "child"
    assert sweep.training.steps == 3 and sweep.training.weight_decay == 0.1  # merged key by key
    assert sweep.learning_rates == (1e-4,)  # `1e-4` is a float, not YAML 1.1's string
    assert sweep.models == ("tiny-gpt2",) and sentences == SENTENCES


def test_include_cycle_is_named(write_sweep):
    write_sweep("include: b.yaml\nname: a\n", "a.yaml")
    write_sweep("include: c.yaml\n", "b.yaml")
    path = write_sweep("include: a.yaml\n", "c.yaml")
    with pytest.raises(ConfigError, match=r"include cycle: c.yaml -> a.yaml -> b.yaml -> c.yaml"):
        load_sweep(path)


def test_set_overrides_dotted_keys_with_yaml_values(write_sweep):
    path = write_sweep(tiny_sweep())
    sweep, _ = load_sweep(path, ["training.steps=20", "models=[tiny-llama, tiny-neox]",
                                 "sentences.ids=[awe]", "stopper.phi_saturation=true", "learning_rates=3e-4"])
    assert sweep.training.steps == 20
    assert sweep.models == ("tiny-llama", "tiny-neox")
    assert sweep.sentences.ids == ("awe",)
    assert sweep.stopper.phi_saturation is True
    assert sweep.learning_rates == (3e-4,)
    with pytest.raises(ConfigError, match="--set expects dotted.key=value"):
        load_sweep(path, ["training.steps"])
    with pytest.raises(ConfigError, match="Unknown key `training.stpes`"):
        load_sweep(path, ["training.stpes=3"])


def test_sweep_trial_ids_equal_phantom_trial_ids(write_sweep):
    """Same settings -> same TrialConfig -> same id as `phantom trial`, in a fixed order."""
    import argparse

    from phantom.cli.trial import trial_config

    sweep, sentences = load_sweep(write_sweep(tiny_sweep()))
    grid = expand(sweep, sentences)
    assert [(t.sentence_id, t.lr) for t in grid.trials] == [
        ("longing", 1e-3), ("longing", 1e-2), ("shame", 1e-3), ("shame", 1e-2)]
    from phantom.cli import build_parser

    args = build_parser().parse_args(
        ["trial", "--model", "tiny-gpt2", "--sentence", "shame", "--lr", "1e-2", "--steps", "5", "--out", "unused"]
    )
    assert trial_config(args).trial_id == grid.trials[3].trial_id
    assert expand(sweep, sentences).ids == grid.ids  # deterministic


def test_validate_prints_grid_size_and_skipped_pairs(write_sweep, tmp_path, capsys):
    data = yaml.safe_load(SENTENCES.read_text())
    data["sentences"].append({"id": "odd", "target": "zyzzyva", "competitor": "longing",
                              "contexts": ["a word nobody knows:"]})
    (tmp_path / "sents.yaml").write_text(yaml.safe_dump(data))
    path = write_sweep(tiny_sweep(sentences={"file": "sents.yaml", "ids": ["longing", "odd"]},
                                  models=["tiny-gpt2", "tiny-neox"]))
    assert main(["sweep", "validate", str(path)]) == 0
    out = capsys.readouterr().out
    assert "tiny: 4 trials = 2 (model, sentence) pairs x 1 protocols x 2 rates x 1 seeds, 5 steps each" in out
    assert "skipped tiny-gpt2 / odd: sentence 'odd' on model 'tiny-gpt2': 'zyzzyva' is not in this tokenizer's vocabulary" in out
    assert "skipped tiny-neox / odd:" in out


@pytest.mark.parametrize("name,trials", [("paper-grid", 600), ("causal-isolation", 120)])
def test_shipped_hub_sweeps_are_valid(name, trials):
    from phantom.orchestrator.config import SweepConfig
    from phantom.orchestrator.resolve import check_name

    from phantom.orchestrator.testing import REPO

    sweep, sentences = load_sweep(REPO / "sweeps" / f"{name}.yaml")
    assert isinstance(sweep, SweepConfig) and sweep.name == name
    assert {check_name(m) for m in sweep.models} == {"hub"}  # hub ids are not mistaken for typos
    assert len(sweep.models) * 10 * len(sweep.protocols) * len(sweep.learning_rates) == trials


@pytest.mark.smoke
def test_lr50_runs_45_trials_on_smollm2_and_reports_the_skip(capsys):
    from phantom.orchestrator.testing import REPO

    assert main(["sweep", "validate", str(REPO / "sweeps" / "lr50.yaml")]) == 0
    out = capsys.readouterr().out
    assert "lr50: 45 trials = 9 (model, sentence) pairs x 1 protocols x 5 rates x 1 seeds, 50 steps each" in out
    assert "skipped smollm2-135m / skepticism:" in out and "'scepticism' is not a single token" in out


def test_contexts_each_makes_one_trial_per_context(write_sweep, tmp_path, capsys):
    data = yaml.safe_load(SENTENCES.read_text())
    longing = next(s for s in data["sentences"] if s["id"] == "longing")
    longing["contexts"] = [longing["contexts"][0], "She wrote to her distant sister with"]
    (tmp_path / "sents.yaml").write_text(yaml.safe_dump(data))
    joint, sentences = load_sweep(write_sweep(tiny_sweep(sentences={"file": "sents.yaml", "ids": ["longing", "shame"]})))
    each, _ = load_sweep(write_sweep(tiny_sweep(
        sentences={"file": "sents.yaml", "ids": ["longing", "shame"], "contexts": "each"}), "each.yaml"))
    a, b = expand(joint, sentences).trials, expand(each, sentences).trials
    assert [(t.sentence_id, len(t.contexts), t.context_index) for t in a] == [
        ("longing", 2, None)] * 2 + [("shame", 1, None)] * 2
    assert [(t.sentence_id, t.contexts, t.context_index, t.lr) for t in b] == [
        ("longing", (longing["contexts"][0],), 0, 1e-3), ("longing", (longing["contexts"][0],), 0, 1e-2),
        ("longing", ("She wrote to her distant sister with",), 1, 1e-3),
        ("longing", ("She wrote to her distant sister with",), 1, 1e-2),
        ("shame", a[2].contexts, 0, 1e-3), ("shame", a[2].contexts, 0, 1e-2)]
    assert len({t.trial_id for t in a + b}) == 10  # every point its own id
    assert main(["sweep", "validate", str(tmp_path / "each.yaml")]) == 0
    assert "tiny: 6 trials = 3 (model, sentence, context) points x 1 protocols x 2 rates" in capsys.readouterr().out


def _imports_after(argv: list[str], cwd) -> tuple[str, list[str]]:
    """Run ``phantom ARGV`` in a fresh interpreter: (its output, the heavy modules it imported)."""
    from phantom.testing import imports_after

    got, out = imports_after(argv, cwd, heavy=("torch", "ray", "transformers"))
    return out, sorted(got)


def test_validate_imports_neither_torch_nor_transformers(write_sweep, tmp_path):
    """Issue 12: validate read tokenizers by loading models (torch, 5.5 s). Tiny models' and
    embedded models' tokenizers are read from their vocabulary / tokenizer.json."""
    from phantom.orchestrator.testing import REPO
    from phantom.models import cache_dir

    path = write_sweep(tiny_sweep(models=["tiny-gpt2", "tiny-neox", "tiny-llama"]))
    out, heavy = _imports_after(["sweep", "validate", str(path)], tmp_path)
    assert "tiny: 12 trials = 6 (model, sentence) pairs" in out and heavy == []
    if (cache_dir() / "models" / "smollm2-135m" / "tokenizer.json").is_file():  # converted before
        out, heavy = _imports_after(["sweep", "validate", str(REPO / "sweeps" / "lr50.yaml")], tmp_path)
        assert "lr50: 45 trials" in out and "skipped smollm2-135m / skepticism:" in out and heavy == []


WORDS = sorted({w for s in yaml.safe_load(SENTENCES.read_text())["sentences"] for w in (s["target"], s["competitor"])}
               | {"zyzzyva", "catapult", "the"})


@pytest.mark.parametrize("model", ["tiny-gpt2", "tiny-neox", "smollm2-135m"])
def test_file_tokenizers_agree_with_the_models_own(model):
    """The single-token check without torch gives the worker's answer, word for word."""
    from phantom.orchestrator.expand import single_token_problem
    from phantom.models import cache_dir, resolve
    from phantom.orchestrator.resolve import load_tokenizer
    from phantom.workers.models import load_model_cached
    from phantom.workers.sentences import Sentence

    if resolve(model).kind == "embedded" and not (cache_dir() / "models" / model / "tokenizer.json").is_file():
        pytest.skip(f"{model} not converted on this machine")
    fast = load_tokenizer(resolve(model))
    real = load_model_cached(model).tokenizer
    for word in WORDS:
        s = Sentence("w", word, "longing" if word != "longing" else "awe", ("ctx",))
        assert single_token_problem(fast, model, s) == single_token_problem(real, model, s), word
        assert fast.encode(" " + word, add_special_tokens=False) == real.encode(" " + word, add_special_tokens=False)


def test_learning_rates_per_protocol(write_sweep, tmp_path):
    """LoRA needs rates ~100x those of full FT: `learning_rates: {protocol: [...]}` gives each
    protocol its own, a rate listed under both makes the same-rate (causal-isolation) pair, and
    the resolved sweep reloads to the same config (resume reads it back)."""
    from phantom.orchestrator.config import SweepConfig

    path = write_sweep(tiny_sweep(protocols=["full", "lora"],
                                  learning_rates={"full": [1e-3, 1e-2], "lora": [1e-2, 1e-1, 3e-1]}))
    sweep, sentences = load_sweep(path)
    grid = expand(sweep, sentences)
    got = sorted({(t.protocol, t.lr) for t in grid.trials})
    assert got == [("full", 1e-3), ("full", 1e-2), ("lora", 1e-2), ("lora", 1e-1), ("lora", 3e-1)]
    assert len(grid.trials) == 2 * 5  # 2 sentences x (2 + 3) rates
    assert SweepConfig.from_dict(sweep.to_dict()) == sweep
    assert load_sweep(path, ["learning_rates.lora=[0.5]"])[0].rates("lora") == (0.5,)

