"""Sweep files: include chains, --set, and a corpus of bad files each rejected in one line
before anything starts or is written."""

from __future__ import annotations

import pytest
import yaml

from phantom.cli import main
from phantom.errors import ConfigError
from orchestrator.grid import expand
from orchestrator.loader import load_sweep

from orchestrator.testing import SENTENCES, tiny_sweep

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
    ("unknown sentence", {"sentences": {"file": str(SENTENCES), "ids": ["longin"]}},
     "Unknown sentence 'longin'. Did you mean 'longing'?"),
    ("missing sentences file", {"sentences": "nope.yaml"}, "`sentences.file` not found: nope.yaml"),
    ("negative retries", {"retries": -1}, "`retries` should be >= 0"),
    ("bad gpu share", {"resources": {"gpus_per_trial": -0.5}}, "`resources.gpus_per_trial` should be >= 0"),
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
    write_sweep, tmp_path, capsys, what, bad, message
):
    import ray

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

    from workers.cli import build_trial_config

    sweep, sentences = load_sweep(write_sweep(tiny_sweep()))
    grid = expand(sweep, sentences)
    assert [(t.sentence_id, t.lr) for t in grid.trials] == [
        ("longing", 1e-3), ("longing", 1e-2), ("shame", 1e-3), ("shame", 1e-2)]
    from phantom.cli import build_parser

    args = build_parser().parse_args(
        ["trial", "--model", "tiny-gpt2", "--sentence", "shame", "--lr", "1e-2", "--steps", "5", "--out", "unused"]
    )
    assert build_trial_config(args).trial_id == grid.trials[3].trial_id
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
    from orchestrator.config import SweepConfig
    from orchestrator.grid import check_model_names

    from orchestrator.testing import REPO

    sweep, sentences = load_sweep(REPO / "sweeps" / f"{name}.yaml")
    assert isinstance(sweep, SweepConfig) and sweep.name == name
    check_model_names(sweep)  # hub ids are not mistaken for typos of registered names
    assert len(sweep.models) * 10 * len(sweep.protocols) * len(sweep.learning_rates) == trials


@pytest.mark.smoke
def test_lr50_runs_45_trials_on_smollm2_and_reports_the_skip(capsys):
    from orchestrator.testing import REPO

    assert main(["sweep", "validate", str(REPO / "sweeps" / "lr50.yaml")]) == 0
    out = capsys.readouterr().out
    assert "lr50: 45 trials = 9 (model, sentence) pairs x 1 protocols x 5 rates x 1 seeds, 50 steps each" in out
    assert "skipped smollm2-135m / skepticism:" in out and "'scepticism' is not a single token" in out
