"""The trial runner: protocols, causal isolation, Parquet output, determinism, failures."""

from __future__ import annotations

import math

import torch

import pyarrow.parquet as pq
import pytest

from phantom.config import LoraConfig, StopperConfig, TrainingConfig, TrialConfig
from phantom.schema import STEP_SCHEMA, TRIAL_SCHEMA
from phantom.storage import Store
from phantom.workers.sentences import get_sentence
from phantom.workers.trial import run_trial

FAMILIES = ["tiny-gpt2", "tiny-neox", "tiny-llama"]


def make_cfg(model="tiny-llama", protocol="full", lr=1e-2, steps=4, seed=0, sentence="longing", **kw):
    s = get_sentence(sentence)
    return TrialConfig(
        model=model, sentence_id=s.id, target=s.target, competitor=s.competitor,
        contexts=kw.pop("contexts", s.contexts), protocol=protocol, lr=lr, seed=seed,
        training=TrainingConfig(steps=steps), **kw,
    )


def read_steps(result):
    return pq.read_table(result.steps_path).to_pylist()


@pytest.mark.parametrize("model", FAMILIES)
@pytest.mark.parametrize("protocol", ["lora", "prefix", "lora-frozen-head"])
def test_frozen_embedding_protocols_have_exactly_zero_drift(tmp_path, tiny_models, model, protocol):
    res = run_trial(make_cfg(model, protocol, lr=5e-2, steps=5), tmp_path, base=tiny_models[model])
    rows = read_steps(res)
    assert len(rows) == 6 and res.status == "ok"
    assert all(r["dG_max"] == 0.0 for r in rows)
    assert all(r["psi_g_rotation"] == 0.0 for r in rows)
    # the trial did train: the readout moved
    assert rows[-1]["loss"] != rows[0]["loss"]


@pytest.mark.parametrize("model", FAMILIES)
def test_full_finetuning_moves_the_geometry(tmp_path, tiny_models, model):
    res = run_trial(make_cfg(model, "full", lr=1e-2, steps=3), tmp_path, base=tiny_models[model])
    rows = read_steps(res)
    assert rows[0]["dG_max"] == 0.0
    assert all(r["dG_max"] > 0.0 for r in rows[1:])


def test_lora_trains_an_untied_head_and_frozen_head_does_not(tmp_path, tiny_models):
    base = tiny_models["tiny-neox"]
    lora = run_trial(make_cfg("tiny-neox", "lora"), tmp_path, base=base)
    frozen = run_trial(make_cfg("tiny-neox", "lora-frozen-head"), tmp_path, base=base)
    head = base.head_weights().numel()
    rec = lambda r: pq.read_table(r.trial_path).to_pylist()[0]  # noqa: E731
    assert rec(lora)["trainable_params"] - rec(frozen)["trainable_params"] == head
    assert rec(lora)["tied"] is False
    # on a tied model the head is the embedding: both protocols train the same parameters
    t1 = run_trial(make_cfg("tiny-llama", "lora"), tmp_path, base=tiny_models["tiny-llama"])
    t2 = run_trial(make_cfg("tiny-llama", "lora-frozen-head"), tmp_path, base=tiny_models["tiny-llama"])
    assert rec(t1)["trainable_params"] == rec(t2)["trainable_params"]


def test_base_model_is_not_modified(tmp_path, tiny_models):
    base = tiny_models["tiny-gpt2"]
    before = {k: v.clone() for k, v in base.model.state_dict().items()}
    run_trial(make_cfg("tiny-gpt2", "full", lr=0.1), tmp_path, base=base)
    run_trial(make_cfg("tiny-gpt2", "lora", lr=0.1), tmp_path, base=base)
    after = base.model.state_dict()
    assert before.keys() == after.keys()
    assert all((before[k] == after[k]).all() for k in before)


def test_schema_and_record(tmp_path, tiny_models):
    cfg = make_cfg(steps=3)
    res = run_trial(cfg, tmp_path, base=tiny_models["tiny-llama"])
    steps = pq.read_table(res.steps_path)
    trial = pq.read_table(res.trial_path)
    assert steps.schema.equals(STEP_SCHEMA)
    assert trial.schema.equals(TRIAL_SCHEMA)
    rows = steps.to_pylist()
    assert [r["step"] for r in rows] == [0, 1, 2, 3]
    assert rows[0]["grad_norm"] is None and rows[0]["step_ms"] is None
    assert all(r["grad_norm"] > 0 and r["step_ms"] > 0 for r in rows[1:])
    assert all(r["trial_id"] == cfg.trial_id for r in rows)
    rec = trial.to_pylist()[0]
    assert rec["status"] == "ok" and rec["steps_done"] == 3 and rec["steps"] == 3
    assert rec["gmax"] == pytest.approx(0.847, abs=1e-6)
    assert TrialConfig.from_dict(__import__("json").loads(rec["config"])).trial_id == cfg.trial_id
    # nothing temporary left behind; the store sees one complete trial
    assert not list(tmp_path.rglob("*.tmp"))
    assert Store.open(tmp_path).completed_trial_ids() == {cfg.trial_id}


def test_trial_id_is_stable_and_config_sensitive():
    a, b = make_cfg(), make_cfg()
    assert a.trial_id == b.trial_id
    assert make_cfg(lr=2e-2).trial_id != a.trial_id
    assert make_cfg(seed=1).trial_id != a.trial_id
    assert make_cfg(lora=LoraConfig(r=4)).trial_id != a.trial_id
    assert make_cfg(contexts=("another context entirely",)).trial_id != a.trial_id


@pytest.mark.parametrize("protocol", ["full", "lora"])
def test_same_seed_same_numbers(tmp_path, tiny_models, protocol):
    base = tiny_models["tiny-neox"]
    r1 = read_steps(run_trial(make_cfg("tiny-neox", protocol), tmp_path / "a", base=base))
    r2 = read_steps(run_trial(make_cfg("tiny-neox", protocol), tmp_path / "b", base=base))
    drop = ("step_ms", "obs_ms")
    assert [{k: v for k, v in r.items() if k not in drop} for r in r1] == [
        {k: v for k, v in r.items() if k not in drop} for r in r2
    ]


def test_what_a_seed_changes(tmp_path, tiny_models):
    """README, "What a seed changes": with dropout off and one example, full FT is the same
    trajectory for every seed (nothing in it is random); LoRA's seed draws the A matrices, so
    its trajectory moves with the seed (B starts at 0: the step-0 state is the same)."""
    base = tiny_models["tiny-neox"]
    drop = ("step_ms", "obs_ms", "seed", "trial_id")

    def rows(protocol, seed):
        out = run_trial(make_cfg("tiny-neox", protocol, seed=seed), tmp_path / f"{protocol}{seed}", base=base)
        return [{k: v for k, v in r.items() if k not in drop} for r in read_steps(out)]

    assert rows("full", 0) == rows("full", 1)
    a, b = rows("lora", 0), rows("lora", 1)
    assert a[0] == b[0]
    assert any(x["loss"] != y["loss"] for x, y in zip(a[1:], b[1:]))


TWO_CONTEXTS = ("Far from home for years , she felt a deep and aching", "He stared at the sea with")


def test_several_contexts_give_one_row_per_context(tmp_path, tiny_models):
    res = run_trial(make_cfg(contexts=TWO_CONTEXTS, steps=2), tmp_path, base=tiny_models["tiny-llama"])
    rows = read_steps(res)
    assert [(r["step"], r["context_id"]) for r in rows] == [(s, i) for s in range(3) for i in range(2)]
    assert rows[0]["loss"] != rows[1]["loss"]


def test_divergence_keeps_rows_and_is_recorded(tmp_path, tiny_models):
    res = run_trial(make_cfg("tiny-gpt2", "full", lr=1e30, steps=6), tmp_path, base=tiny_models["tiny-gpt2"])
    assert res.status == "diverged" and "non-finite" in res.error
    rows = read_steps(res)
    assert 1 <= len(rows) <= 6
    assert all(math.isfinite(r["loss"]) for r in rows)
    rec = pq.read_table(res.trial_path).to_pylist()[0]
    assert rec["status"] == "diverged" and rec["steps_done"] == len(rows)


def test_a_failure_is_recorded_then_raised(tmp_path, tiny_models, monkeypatch):
    import phantom.workers.trial as wt

    calls = {"n": 0}
    real = wt.obs.observe

    def flaky(*a, **k):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("boom in step 2")
        return real(*a, **k)

    monkeypatch.setattr(wt.obs, "observe", flaky)
    cfg = make_cfg(steps=5)
    with pytest.raises(RuntimeError, match="boom"):
        run_trial(cfg, tmp_path, base=tiny_models["tiny-llama"])
    rec = pq.read_table(tmp_path / "trials" / f"{cfg.trial_id}.parquet").to_pylist()[0]
    assert rec["status"] == "error" and "boom in step 2" in rec["error"]
    assert pq.read_table(tmp_path / "steps" / f"{cfg.trial_id}.parquet").num_rows == 2


def test_callback_can_stop_a_trial_early(tmp_path, tiny_models):
    seen = []

    def cb(_cfg, t, rows):
        seen.append((t, rows[0]["phi"]))
        return "phi-saturation" if t == 2 else None

    res = run_trial(make_cfg(steps=10), tmp_path, base=tiny_models["tiny-llama"], callback=cb)
    assert res.status == "ok" and res.stop_reason == "phi-saturation" and res.steps_done == 2
    assert [t for t, _ in seen] == [0, 1, 2]
    rec = pq.read_table(res.trial_path).to_pylist()[0]
    assert rec["stop_reason"] == "phi-saturation" and rec["steps"] == 10


def test_atomic_write_leaves_nothing_on_failure(tmp_path, monkeypatch):
    import pyarrow as pa

    store = Store.open(tmp_path)
    table = pa.table({"x": [1, 2, 3]})
    store.write_table(table, "steps", "a.parquet")

    def broken(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr("phantom.storage.pq.write_table", broken)
    with pytest.raises(OSError):
        store.write_table(pa.table({"x": [9]}), "steps", "a.parquet")
    with pytest.raises(OSError):
        store.write_table(pa.table({"x": [9]}), "steps", "b.parquet")
    assert sorted(p.name for p in (tmp_path / "steps").iterdir()) == ["a.parquet"]
    assert pq.read_table(tmp_path / "steps" / "a.parquet").column("x").to_pylist() == [1, 2, 3]


def test_phi_saturation_stop_is_part_of_the_trial(tmp_path, tiny_models):
    from phantom.outcomes import saturation_step

    base = tiny_models["tiny-llama"]
    full = run_trial(make_cfg(lr=3e-2, steps=30), tmp_path, base=base)
    phis = [r["phi"] for r in read_steps(full)]
    expected = saturation_step(phis, 3, 0.01)
    assert expected is not None and 0 < expected < 30
    cfg = make_cfg(lr=3e-2, steps=30, stopper=StopperConfig(phi_saturation=True))
    assert cfg.trial_id != full.trial_id  # a stopped trial never stands in for a full one
    res = run_trial(cfg, tmp_path, base=base)
    assert res.stop_reason == "phi-saturation" and res.status == "ok"
    assert res.steps_done == expected
    assert [r["phi"] for r in read_steps(res)] == phis[: expected + 1]


def test_stop_at_flip_stops_where_the_flip_is(tmp_path, tiny_models):
    from phantom.outcomes import flip_step

    base = tiny_models["tiny-llama"]
    full = run_trial(make_cfg(lr=3e-2, steps=20), tmp_path / "a", base=base)
    phis = [r["phi"] for r in read_steps(full)]
    expected = flip_step(phis)
    assert expected is not None and 0 < expected < 20
    cfg = make_cfg(lr=3e-2, steps=20, stopper=StopperConfig(at_flip=True))
    assert cfg.trial_id != full.trial_id and cfg.bracket_id == make_cfg(lr=3e-2, steps=20).bracket_id
    res = run_trial(cfg, tmp_path / "b", base=base)
    assert (res.status, res.stop_reason, res.steps_done) == ("ok", "flip", expected)
    assert [r["phi"] for r in read_steps(res)] == phis[: expected + 1]


def test_bracket_id_leaves_out_rate_and_stopper_only():
    a = make_cfg()
    assert make_cfg(lr=0.5).bracket_id == a.bracket_id
    assert make_cfg(stopper=StopperConfig(phi_saturation=True)).bracket_id == a.bracket_id
    for other in (make_cfg(seed=1), make_cfg(protocol="lora"), make_cfg(steps=5), make_cfg(sentence="awe")):
        assert other.bracket_id != a.bracket_id


def test_context_index_names_one_context(tmp_path, tiny_models):
    from phantom.errors import ConfigError

    s = get_sentence("longing")
    with pytest.raises(ConfigError, match="context_index"):
        make_cfg(contexts=(s.contexts[0], "He stared at the sea with"), context_index=0)
    cfg = make_cfg(contexts=("He stared at the sea with",), context_index=1, steps=1)
    res = run_trial(cfg, tmp_path, base=tiny_models["tiny-llama"])
    rec = pq.read_table(res.trial_path).to_pylist()[0]
    assert rec["context_index"] == 1 and rec["n_contexts"] == 1 and rec["bracket_id"] == cfg.bracket_id


def test_a_failure_before_training_leaves_an_error_record(tmp_path):
    from phantom.workers.trial import record_failure

    cfg = make_cfg(model="no-such-model")
    res = record_failure(cfg, tmp_path, OSError("cannot load weights\nsecond line"))
    rec = pq.read_table(res.trial_path).to_pylist()[0]
    assert (rec["status"], rec["error"], rec["steps_done"]) == ("error", "OSError: cannot load weights", 0)
    assert pq.read_table(res.steps_path).num_rows == 0
    assert pq.read_table(res.trial_path).schema.equals(TRIAL_SCHEMA)


@pytest.mark.parametrize("model", FAMILIES)
def test_lora_adapters_start_from_the_seeded_draw(tiny_models, model):
    import copy

    from phantom.workers.protocols import apply_protocol, base_module_name, lora_a_init

    base = tiny_models[model]
    wrapped = apply_protocol(copy.deepcopy(base.model), "lora", LoraConfig(), base.tied, seed=7)
    seen = 0
    for name, module in wrapped.named_modules():
        if hasattr(module, "lora_A") and "default" in getattr(module, "lora_A", {}):
            a = module.lora_A["default"].weight.detach()
            expected = lora_a_init(7, base_module_name(name), tuple(a.shape))
            assert torch.equal(a, expected)
            assert abs(float(a.abs().max())) <= 1 / math.sqrt(a.shape[1])
            assert float(module.lora_B["default"].weight.detach().abs().max()) == 0.0
            assert not torch.equal(expected, lora_a_init(8, base_module_name(name), tuple(a.shape)))
            seen += 1
    assert seen == {"tiny-llama": 4, "tiny-gpt2": 2, "tiny-neox": 2}[model]  # q,v or fused qkv, 2 layers


def test_logits_at_the_last_position_equal_the_full_forward(tiny_models):
    """logits_to_keep reads only each context's last position: the same numbers as the full
    forward read there, also for right-padded contexts of different lengths. In float64 the
    two agree to phantom.workers.testing.TOL64 (another matrix shape, the same arithmetic); in float32
    within this machine's float32 noise (float32 against float64, phantom.workers.testing)."""
    from phantom.workers.engines import SingleEngine, encode
    from phantom.workers.testing import close64, float32_bound, float64

    ctx = ("Far from home for years , she felt a deep and aching", "He stared at the sea with")
    cfg = make_cfg("tiny-gpt2", contexts=ctx)
    got = {}
    for name, base in (("f32", tiny_models["tiny-gpt2"]), ("f64", float64(tiny_models["tiny-gpt2"]))):
        batch = encode(base.tokenizer, ctx)
        engine = SingleEngine(cfg, base, batch, 5)
        with torch.no_grad():
            fwd = engine.forward(False)
            full = engine.model(input_ids=batch.ids, attention_mask=batch.mask).logits
        engine.close()
        got[name] = (fwd.z[0].flatten().tolist(), full[torch.arange(2), batch.last].flatten().tolist())
    kept, full = got["f64"]
    assert all(close64(a, b) for a, b in zip(kept, full))
    kept32, full32 = got["f32"]
    bound = float32_bound(full32, [full])
    assert max(abs(a - b) for a, b in zip(kept32, full32)) <= bound


@pytest.mark.parametrize("protocol,model", [("lora", "tiny-llama"), ("prefix", "tiny-gpt2"), ("full", "tiny-llama")])
def test_the_full_vocabulary_cosines_are_computed_once_per_trial_where_the_embedding_is_frozen(
        tmp_path, tiny_models, monkeypatch, protocol, model):
    import phantom.workers.trial as wt

    calls = {"n": 0}
    real = wt.obs.vocab_cosines

    def counted(*a, **k):
        calls["n"] += 1
        return real(*a, **k)

    monkeypatch.setattr(wt.obs, "vocab_cosines", counted)
    cfg = make_cfg(model, protocol, lr=5e-2, steps=4, contexts=TWO_CONTEXTS)  # they share (g, c) and the memo
    run_trial(cfg, tmp_path, base=tiny_models[model])
    assert calls["n"] == (1 if protocol != "full" else 5 * len(cfg.contexts))


@pytest.mark.parametrize("protocol", ["lora", "lora-frozen-head", "prefix"])
def test_a_frozen_embedding_trial_observes_what_a_fresh_observe_gives(tmp_path, tiny_models, monkeypatch, protocol):
    import phantom.workers.trial as wt

    real, checked = wt.obs.observe, []

    def both(*a, **k):
        got = real(*a, **k)
        assert k["frozen"] is not None
        fresh = real(*a, **{**k, "frozen": None})
        assert (got.loss, got.values) == (fresh.loss, fresh.values) and torch.equal(got.pool, fresh.pool)
        checked.append(got.values.drive_pred)
        return got

    monkeypatch.setattr(wt.obs, "observe", both)
    cfg = make_cfg("tiny-neox", protocol, lr=5e-2, steps=4, contexts=TWO_CONTEXTS)
    res = run_trial(cfg, tmp_path, base=tiny_models["tiny-neox"])
    assert res.status == "ok" and len(checked) == 5 * len(cfg.contexts)
