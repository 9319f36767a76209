"""Trial packs: grouping, the default table, lost packs (no Ray; the dispatch of packs through
Ray Tune is tested in test_run.py, on its Ray)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from phantom.orchestrator import packing
from phantom.orchestrator.config import SweepConfig
from phantom.orchestrator.engine import record_lost
from phantom.orchestrator.expand import expand
from phantom.orchestrator.loader import load_sweep
from phantom.orchestrator.packing import PACK_DEFAULTS, make_packs, pack_limit
from phantom.orchestrator.testing import SENTENCES, read_trials, tiny_sweep
from phantom.storage import Store
from phantom.workers.trial import pack_key


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
    from phantom.orchestrator.packing import Pack, Unit, units_folder, write_units

    members = list(expand(sweep, sentences).trials[:2])
    store = Store.open(tmp_path / "sweep")
    unit = Unit((Pack(tuple(members)),))
    write_units(store, units_folder("run-1"), [unit])
    results = [SimpleNamespace(error=None, config={}),
               SimpleNamespace(error=RuntimeError("Traceback ...\nray.exceptions.ActorDiedError: the actor died"),
                               config={"unit": unit.unit_id, "units": units_folder("run-1")})]
    assert record_lost(store, results) == 2
    records = read_trials(tmp_path / "sweep")
    assert {r["trial_id"] for r in records} == {m.trial_id for m in members}
    assert {(r["status"], r["error"]) for r in records} == {
        ("error", "RuntimeError: the worker was lost (ray.exceptions.ActorDiedError: the actor died)")}
    assert record_lost(store, results) == 0  # members with a record are left alone


def test_a_unit_lost_before_tune_had_its_config_is_found_by_its_folder(tmp_path):
    """Tune hands back no config for a unit whose worker never ran it (issue 26: the driver
    ended in ``TypeError: argument of type 'NoneType' is not iterable``): the unit is the one
    its folder names (Tune names it after the unit), read from the run's units folder."""
    from phantom.orchestrator.packing import Pack, Unit, units_folder, write_units

    sweep, sentences = load_sweep(SENTENCES.parent / "lr50.yaml", ["models=[tiny-gpt2]", "sentences.ids=[awe]"])
    members = tuple(expand(sweep, sentences).trials[:2])
    store = Store.open(tmp_path / "sweep")
    unit = Unit((Pack(members),))
    folder = units_folder("run-1")
    write_units(store, folder, [unit])
    lost = SimpleNamespace(error=RuntimeError("ray.exceptions.ActorDiedError: the actor died"), config=None,
                           path=str(tmp_path / "sweep" / "ray" / "run-1" / unit.unit_id))
    assert record_lost(store, [lost], folder) == 2
    assert {r["trial_id"] for r in read_trials(tmp_path / "sweep")} == {m.trial_id for m in members}
    assert record_lost(store, [SimpleNamespace(error=RuntimeError("x"), config=None, path=None)], folder) == 0


SPLITS = [  # (group sizes, K per group, workers, packs per group)
    ([5], [8], 2, [2]),  # the case: five LoRA trials on two workers -> 3 + 2
    ([5], [8], 1, [1]),  # one worker: one pack of 5
    ([5], [8], None, [1]),  # workers unknown: nothing is split
    ([5], [8], 8, [5]),  # more workers than members: one member each, no more
    ([9], [8], 2, [2]),  # two packs already (by K)
    ([16], [8], 2, [2]),  # as many packs as workers: K each
    ([16], [8], 3, [3]),  # 6 + 5 + 5
    ([3, 3], [8, 8], 2, [1, 1]),  # two keys already fill two workers: no split
    ([6, 2], [8, 8], 4, [3, 1]),  # the extra packs go to the widest group: 2+2+2 and 2
    ([4, 4], [8, 8], 3, [2, 1]),  # a tie: the first group gets the extra pack
    ([1, 1, 1], [1, 1, 1], 8, [1, 1, 1]),  # nothing to split
    ([6, 1], [1, 8], 2, [6, 1]),  # K = 1 (full FT): 6 packs already
    ([], [], 2, []),  # nothing pending
]


@pytest.mark.parametrize("sizes,limits,workers,counts", SPLITS)
def test_a_pack_key_is_split_so_every_free_worker_gets_a_pack(sizes, limits, workers, counts):
    assert packing.split_counts(sizes, limits, workers) == counts


def test_split_packs_are_near_equal_and_keep_grid_order(write_sweep, monkeypatch):
    """Five LoRA trials of one sentence on two workers: packs of 3 and 2 (issue 17); with K
    chunks when nothing is split (the last takes the rest)."""
    monkeypatch.setattr(packing, "packed_engines_available", lambda: True)
    sweep, sentences = load_sweep(write_sweep(tiny_sweep(
        sentences={"file": str(SENTENCES), "ids": ["longing"]}, protocols=["lora"],
        learning_rates=[1e-4, 3e-4, 1e-3, 3e-3, 1e-2], resources={"cpus_per_trial": 1})))
    trials = list(expand(sweep, sentences).trials)
    for workers, sizes in ((1, [5]), (2, [3, 2]), (3, [2, 2, 1]), (5, [1] * 5), (9, [1] * 5)):
        packs = make_packs(trials, sweep, workers)
        assert [len(p.members) for p in packs] == sizes
        assert [m for p in packs for m in p.members] == trials  # every trial once, in grid order
        assert [i for p in packs for i in p.ids] == [t.trial_id for t in trials]
    # K = 4: two packs by K for two workers run at once, so they are cut near-equal (3 + 2,
    # not 4 + 1); with one worker, or workers unknown, K at a time
    sweep4, _ = load_sweep(write_sweep(tiny_sweep(
        sentences={"file": str(SENTENCES), "ids": ["longing"]}, protocols=["lora"],
        learning_rates=[1e-4, 3e-4, 1e-3, 3e-3, 1e-2], resources={"cpus_per_trial": 1, "pack": 4}), "k4.yaml"))
    assert [len(p.members) for p in make_packs(trials, sweep4, 2)] == [3, 2]
    assert [len(p.members) for p in make_packs(trials, sweep4, 1)] == [4, 1]
    assert [len(p.members) for p in make_packs(trials, sweep4)] == [4, 1]


def test_pack_group_is_the_partition_of_pack_key(write_sweep):
    """The cheap grouping key and phantom.workers.trial.pack_key (the definition run_pack checks) put
    the same trials together, on a grid that varies every dimension."""
    sweep, sentences = load_sweep(write_sweep(tiny_sweep(
        models=["tiny-gpt2", "tiny-llama"], protocols=["lora", "full", "prefix"], learning_rates=[1e-3, 1e-2],
        seeds=[0, 1], sentences={"file": str(SENTENCES), "ids": ["longing", "shame"], "contexts": "each"},
        stopper={"phi_saturation": True})))
    trials = list(expand(sweep, sentences).trials)
    trials += [t.replace(stopper=t.stopper.__class__(at_flip=True)) for t in trials[:3]]

    def partition(key) -> set[frozenset]:
        groups: dict = {}
        for t in trials:
            groups.setdefault(key(t), set()).add(t.trial_id)
        return {frozenset(g) for g in groups.values()}

    assert partition(packing.pack_group) == partition(pack_key)
    assert len(partition(pack_key)) < len(trials)  # the test groups something


UNIT_COUNTS = [  # (packs, workers, units)
    (1, 2, 1), (500, 2, 500), (501, 2, 500), (100_000, 2, 500), (100_000, 100, 800), (700, 100, 700),
]


@pytest.mark.parametrize("n_packs,workers,units", UNIT_COUNTS)
def test_packs_are_batched_into_a_bounded_number_of_units(n_packs, workers, units, monkeypatch):
    monkeypatch.setattr(packing, "MAX_UNITS", 500)
    monkeypatch.setattr(packing, "UNITS_PER_WORKER", 8)
    assert packing.unit_count(n_packs, workers) == units
    fake = [packing.Pack((), (f"{i:016x}",)) for i in range(n_packs)]
    made = packing.make_units(fake, workers)
    assert len(made) == units
    assert [p for u in made for p in u.packs] == fake  # consecutive, in order, each once
    sizes = [len(u.packs) for u in made]
    assert max(sizes) - min(sizes) <= 1
    for u in made:  # a unit of one pack is named as the pack was (its Tune trial's folder)
        assert u.unit_id == u.packs[0].pack_id if len(u.packs) == 1 else u.unit_id.startswith("unit-")
    assert len({u.unit_id for u in made}) == units


def test_a_unit_file_holds_each_member_once_and_decodes_to_the_same_trials(write_sweep, tmp_path, monkeypatch):
    """The unit file: the first member's config and each member's differing fields; decoding
    gives the same configs (checked by trial id, which hashes the whole config)."""
    monkeypatch.setattr(packing, "packed_engines_available", lambda: True)
    sweep, sentences = load_sweep(write_sweep(tiny_sweep(
        models=["tiny-gpt2", "tiny-llama"], protocols=["lora", "full"], learning_rates=[1e-3, 1e-2, 3e-2],
        seeds=[0, 1], sentences={"file": str(SENTENCES), "ids": ["longing", "shame"], "contexts": "each"})))
    trials = list(expand(sweep, sentences).trials)
    unit = packing.Unit(tuple(make_packs(trials, sweep)))
    store = Store.open(tmp_path / "sweep")
    packing.write_units(store, "run-x.units", [unit])
    decoded = packing.read_unit(store, "run-x.units", unit.unit_id)
    assert [[c.trial_id for c in p] for p in decoded] == [p.ids for p in unit.packs]
    assert [c for p in decoded for c in p] == trials
    text = (tmp_path / "sweep" / "ray" / "run-x.units" / f"{unit.unit_id}.json").read_text()
    assert len(text) < sum(len(t.canonical_json()) for t in trials) / 3  # not every config in full
    data = json.loads(text)
    data["packs"][0][0]["set"]["lr"] = 0.5  # a member that no longer matches its id is refused
    with pytest.raises(RuntimeError, match="decodes to trial"):
        packing.decode_unit(data)
