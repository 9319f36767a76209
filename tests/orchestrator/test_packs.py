"""Trial packs: grouping, the default table, lost packs (no Ray; the dispatch of packs through
Ray Tune is tested in test_run.py, on its Ray)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from orchestrator import packing
from orchestrator.config import SweepConfig
from orchestrator.engine import record_lost
from orchestrator.expand import expand
from orchestrator.loader import load_sweep
from orchestrator.packing import PACK_DEFAULTS, make_packs, pack_limit
from orchestrator.testing import SENTENCES, read_trials, tiny_sweep
from phantom.storage import Store
from workers.trial import pack_key


def _sweep(write_sweep, **resources) -> tuple[SweepConfig, object]:
    return load_sweep(write_sweep(tiny_sweep(
        protocols=["lora", "full"], learning_rates=[1e-3, 1e-2, 3e-2], seeds=[0, 1],
        resources={"cpus_per_trial": 1, **resources})))


PACKINGS = [  # (resources, pack sizes in order: longing lora, longing full, shame lora, shame full)
    ({"pack": 4}, [4, 2, 4, 2, 4, 2, 4, 2]),
    ({"pack": 1}, [1] * 24),
    ({"pack": "auto"}, [6, 1, 1, 1, 1, 1, 1, 6, 1, 1, 1, 1, 1, 1]),  # cpu: lora 8 (all 6), full 1
]


@pytest.mark.parametrize("resources,sizes", PACKINGS)
def test_packs_group_trials_by_pack_key_in_grid_order(write_sweep, monkeypatch, resources, sizes):
    monkeypatch.setattr(packing, "packed_engines_available", lambda: True)
    sweep, sentences = _sweep(write_sweep, **resources)
    trials = list(expand(sweep, sentences).trials)
    packs = make_packs(trials, sweep)
    assert [len(p.members) for p in packs] == sizes
    assert sorted(t.trial_id for p in packs for t in p.members) == sorted(t.trial_id for t in trials)
    for p in packs:
        assert len({pack_key(m) for m in p.members}) == 1  # only rate and seed differ
        assert [trials.index(m) for m in p.members] == sorted(trials.index(m) for m in p.members)
    assert [p.pack_id for p in packs] == [p.pack_id for p in make_packs(trials, sweep)]  # deterministic
    # what is pending re-forms the packs: without the first trial, its group is cut anew
    again = make_packs(trials[1:], sweep)
    assert sum(len(p.members) for p in again) == len(trials) - 1
    assert all(len(p.members) <= max(sizes) for p in again) and trials[0] not in again[0].members


def test_the_pack_default_comes_from_one_table_per_device(write_sweep, monkeypatch):
    monkeypatch.setattr(packing, "packed_engines_available", lambda: True)
    monkeypatch.setitem(PACK_DEFAULTS, "cuda", {"lora": 7, "full": 3})
    cpu, _ = _sweep(write_sweep)
    gpu, _ = _sweep(write_sweep, gpus_per_trial=0.25)
    assert [pack_limit(cpu, p) for p in ("lora", "lora-frozen-head", "prefix", "full")] == [8, 8, 1, 1]
    assert [pack_limit(gpu, p) for p in ("lora", "prefix", "full")] == [7, 1, 3]
    # lora on an untied embedded head trains one head per member: measured slower, so unpacked
    assert pack_limit(cpu, "lora", "qwen2.5-coder-0.5b") == 1
    assert pack_limit(cpu, "lora-frozen-head", "qwen2.5-coder-0.5b") == 8
    assert pack_limit(cpu, "lora", "smollm2-135m") == 8
    qwen = SweepConfig.from_dict({"name": "q", "models": ["qwen2.5-coder-0.5b", "smollm2-135m"],
                                  "protocols": ["lora"], "learning_rates": [1e-4]})
    assert packing.describe(qwen).endswith(
        "lora 8 (lora 1 on the untied qwen2.5-coder-0.5b: each member would train its own head)")
    monkeypatch.setattr(packing, "packed_engines_available", lambda: False)
    assert pack_limit(cpu, "lora") == 1 and "packing off" in packing.describe(cpu)


def test_a_pack_lost_with_its_workers_writes_an_error_record_per_member(tmp_path):
    sweep, sentences = load_sweep(SENTENCES.parent / "lr50.yaml", ["models=[tiny-gpt2]", "sentences.ids=[awe]"])
    members = list(expand(sweep, sentences).trials[:2])
    store = Store.open(tmp_path / "sweep")
    results = [SimpleNamespace(error=None, config={}),
               SimpleNamespace(error=RuntimeError("Traceback ...\nray.exceptions.ActorDiedError: the actor died"),
                               config={"pack": {"trials": [m.canonical_json() for m in members]}})]
    assert record_lost(store, results) == 2
    records = read_trials(tmp_path / "sweep")
    assert {r["trial_id"] for r in records} == {m.trial_id for m in members}
    assert {(r["status"], r["error"]) for r in records} == {
        ("error", "RuntimeError: the worker was lost (ray.exceptions.ActorDiedError: the actor died)")}
    assert record_lost(store, results) == 0  # members with a record are left alone
