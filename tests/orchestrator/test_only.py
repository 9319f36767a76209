"""``--only``: a pass over part of a grid sweep; the folder's plan stays the whole sweep."""

from __future__ import annotations

import json

import pytest

from phantom.orchestrator.loader import load_sweep
from phantom.orchestrator.only import parse_only, select
from phantom.orchestrator.status import sweep_status
from phantom.orchestrator.testing import read_trials, tiny_sweep
from phantom.cli import main
from phantom.errors import ConfigError

pytestmark = pytest.mark.timeout(240)


def _grid(write_sweep, **over):
    from phantom.orchestrator.expand import expand

    sweep, sentences = load_sweep(write_sweep(tiny_sweep(**over)))
    return sweep, expand(sweep, sentences).trials


def test_parse_and_select(write_sweep):
    sweep, trials = _grid(write_sweep, protocols=["full", "lora"])
    assert len(trials) == 2 * 2 * 2  # sentences x protocols x rates
    only = parse_only(["protocol=lora", "lr=1e-2", "sentence=shame,longing"])
    assert only == {"protocol": ("lora",), "lr": (0.01,), "sentence": ("shame", "longing")}
    chosen = select(trials, only, sweep.name)
    assert sorted((t.sentence_id, t.protocol, t.lr) for t in chosen) == [("longing", "lora", 0.01), ("shame", "lora", 0.01)]
    # a key given twice: the union of its values; no --only: every trial
    assert len(select(trials, parse_only(["sentence=shame", "sentence=longing"]), "x")) == 8
    assert select(trials, {}, "x") == list(trials)
    # 1e-3 written another way is the same rate
    assert len(select(trials, parse_only(["lr=0.001"]), "x")) == 4


@pytest.mark.parametrize("spec, message", [
    ("colour=red", "--only: Unknown key 'colour'."),
    ("protocol", "--only 'protocol': expected KEY=VALUE"),
    ("lr=fast", "--only lr='fast': not a number"),
    ("seed=1.5", "--only seed='1.5': not an integer"),
])
def test_bad_specs_are_one_line(spec, message):
    with pytest.raises(ConfigError) as err:
        parse_only([spec])
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


def test_values_the_sweep_lacks_are_refused(write_sweep):
    sweep, trials = _grid(write_sweep)
    with pytest.raises(ConfigError, match=r"--only model=tiny-llama: no trial of tiny has it; its values: tiny-gpt2"):
        select(trials, parse_only(["model=tiny-llama"]), sweep.name)
    with pytest.raises(ConfigError, match=r"--only lr=0.1: no trial of tiny has it; its values: 0.001, 0.01"):
        select(trials, parse_only(["lr=0.1"]), sweep.name)


def test_passes_fill_one_plan(ray_local, write_sweep, tmp_path, capsys):
    path = write_sweep(tiny_sweep())
    storage = tmp_path / "st"
    folder = storage / "tiny"
    # a value the sweep lacks: one line, exit 2, nothing written
    assert main(["sweep", "run", str(path), "--storage", str(storage), "--only", "sentence=awe"]) == 2
    assert "no trial of tiny has it" in capsys.readouterr().err and not storage.exists()

    # pass 1: one sentence; the plan is all four trials, two are left
    assert main(["sweep", "run", str(path), "--storage", str(storage), "--only", "sentence=longing"]) == 0
    out = capsys.readouterr().out
    assert "--only sentence=longing: 2 of the 4 trials of tiny" in out
    assert len(json.loads((folder / "plan.json").read_text())["trials"]) == 4
    assert {t["sentence_id"] for t in read_trials(folder)} == {"longing"}
    st = sweep_status(str(folder))
    assert st.planned == 4 and st.missing == 2 and not st.complete
    # pass 2 by resume, the other sentence: the sweep is complete, nothing ran twice
    assert main(["sweep", "resume", str(folder), "--only", "sentence=shame"]) == 0
    trials = read_trials(folder)
    assert len(trials) == 4 and {t["sentence_id"] for t in trials} == {"longing", "shame"}
    assert sweep_status(str(folder)).finished_ok
    # validate says how many a selection takes
    assert main(["sweep", "validate", str(path), "--only", "lr=1e-2"]) == 0
    assert "--only lr=0.01: 2 of them" in capsys.readouterr().out


def test_an_eta_c_search_refuses_only(write_sweep, capsys):
    path = write_sweep(tiny_sweep(search={"mode": "eta-c", "lr_min": 1e-4, "lr_max": 1e-1, "tolerance": 2.0}))
    assert main(["sweep", "validate", str(path), "--only", "sentence=shame"]) == 2
    assert "--only selects trials of a grid sweep" in capsys.readouterr().err
