"""Trial packs: a packed member's rows equal the same trial run alone; members leave one by one.

"Equal" is checked twice, with bounds that hold on any machine (no constant tuned on one):

- **float64, to 1e-10.** The base model cast to float64 (the engines follow the parameters'
  dtype): packed and alone then do the same arithmetic in another order and shape, and each
  differs from the exact result by rounding of the order of u = 2^-53 ≈ 1.1e-16 — measured
  ≤ 1.3e-15 relative on the tiny models (6 steps, lr ≤ 1e-2, every float column). The same
  comparison in float32 (u = 2^-24) differs by up to 2e-5 relative (smollm2, Adam turning
  rounding in near-zero gradient components into O(lr) moves); the error scales with u, so
  float64 brings that to 2e-5 · 2^-29 ≈ 4e-14. The bound TOL64 = 1e-10 (phantom.workers.testing;
  relative to max(1, |value|)) leaves a factor > 1e3 for kernels that block sums otherwise,
  while a member that trained on another member's rows, rate, seed or adapters lies far above
  it. Integer columns (ranks, pool size) and the flip step are identical. A full pack keeps
  the model's own (SDPA) attention here (phantom.workers.testing.exact_attention): eager attention
  rounds the softmax to float32 even in a float64 model (llama, gpt_neox: 1e-7).
- **float32, within this machine's own float32 noise** (phantom.workers.testing.float32_bound). The
  trial alone on 1 and on 2 torch threads (reductions split another way), and the trial alone
  in float32 against float64, give per column the size of float32 rounding on this machine,
  kernels included; the packed member may differ from the trial alone by NOISE_MULTIPLE = 10
  times that, plus ULPS = 4 ulps of the column's largest value (so a machine where 1 and 2
  threads agree bit for bit does not make the bound 0). Packed and alone each differ from the
  exact result by float32 rounding of that kind, so their difference is ≲ 2x the reference;
  maxima over a few dozen rows spread by a few more (measured on the tiny models: ≤ 3.4x); 10
  covers both. Integer columns and the flip step are identical (a change would need a tie
  within float32 noise).
"""

from __future__ import annotations

import math

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from phantom.config import StopperConfig, TrainingConfig, TrialConfig
from phantom.errors import ConfigError
from phantom.schema import STEP_FIELDS
from phantom.workers.engines import SingleEngine, drop_spare, encode
from phantom.workers.packs import (
    FullPackEngine,
    LoopEngine,
    LoraPackEngine,
    StackedAdamW,
    pack_engine,
)
from phantom.workers.sentences import get_sentence
from phantom.workers.testing import close64, exact_attention, float32_bound, float64, threads
from phantom.workers.trial import run_pack, run_trial

FAMILIES = ["tiny-gpt2", "tiny-neox", "tiny-llama"]

INTEGER_COLUMNS = ("step", "context_id", "rank_g", "rank_c", "born_rank", "pool_size", "pool_capped")
# every measured float column but the timings (and lr, a config value)
FLOAT_COLUMNS = [n for n, t in STEP_FIELDS if pa.types.is_floating(t) and n not in ("lr", "step_ms", "obs_ms")]
RATES = {"full": (1e-3, 3e-3, 1e-2), "lora": (1e-3, 3e-3, 1e-2)}


def make_cfg(model="tiny-llama", protocol="full", lr=1e-2, steps=4, seed=0, **kw):
    s = get_sentence("longing")
    # fp32 spelled out: "auto" is fp32 on a CPU but bf16 autocast on a GPU
    training = kw.pop("training", TrainingConfig(steps=steps, precision="fp32"))
    return TrialConfig(model=model, sentence_id=s.id, target=s.target, competitor=s.competitor,
                       contexts=s.contexts, protocol=protocol, lr=lr, seed=seed, training=training, **kw)


def read_steps(result):
    return pq.read_table(result.steps_path).to_pylist()


def flip_step(rows):
    return next((r["step"] for r in rows if r["context_id"] == 0 and r["phi"] > 0), None)


# ----------------------------------------------------------------------------------------------
# the comparison: float64 to TOL64, float32 within this machine's float32 noise


def assert_same_integers(got, want):
    assert len(got) == len(want)
    for a, b in zip(got, want):
        assert {k: a[k] for k in INTEGER_COLUMNS} == {k: b[k] for k in INTEGER_COLUMNS}
        assert (a["grad_norm"] is None) == (b["grad_norm"] is None)
    assert flip_step(got) == flip_step(want)


def assert_exact(got, want):
    """float64: every float column to TOL64 relative to max(1, |value|)."""
    assert_same_integers(got, want)
    for a, b in zip(got, want):
        for c in FLOAT_COLUMNS:
            if b[c] is not None:
                assert close64(a[c], b[c]), (c, a["step"], a[c], b[c])


def assert_within_noise(got, want, references):
    """float32: per column, |packed − alone| ≤ NOISE_MULTIPLE x the largest difference between
    the trial alone and its reference runs (1 thread, float64) + ULPS ulps of the column."""
    assert_same_integers(got, want[: len(got)])
    for c in FLOAT_COLUMNS:
        bound = float32_bound([b[c] for b in want], [[r[c] for r in ref] for ref in references])
        for a, b in zip(got, want):
            if b[c] is not None:
                assert abs(a[c] - b[c]) <= bound, (c, a["step"], a[c], b[c], bound)


def check_pack(tmp_path, cfgs, base, run, members=None):
    """Train the pack with ``run(cfgs, out, base)`` and check members (default: all) against
    the same trials alone: float64 to TOL64, float32 within this machine's float32 noise.
    Returns the float32 pack's results."""
    members = list(range(len(cfgs))) if members is None else members
    base64 = float64(base)
    with exact_attention():
        packed64 = run(cfgs, tmp_path / "pack64", base64)
    alone64 = {k: read_steps(run_trial(cfgs[k], tmp_path / "alone64", base=base64)) for k in members}
    for k in members:
        assert packed64[k].status == "ok"
        assert_exact(read_steps(packed64[k]), alone64[k][: packed64[k].rows])
    del base64, packed64
    drop_spare()  # a kept float64 copy would only sit in memory
    with threads(2):
        packed32 = run(cfgs, tmp_path / "pack", base)
        alone32 = {k: read_steps(run_trial(cfgs[k], tmp_path / "alone", base=base)) for k in members}
    with threads(1):
        alone1 = {k: read_steps(run_trial(cfgs[k], tmp_path / "alone1", base=base)) for k in members}
    drop_spare()
    for k in members:
        assert_within_noise(read_steps(packed32[k]), alone32[k], [alone1[k], alone64[k]])
    return packed32


def pack_cfgs(model, protocol, steps=6, **kw):
    rates = RATES["full" if protocol == "full" else "lora"]
    return [make_cfg(model, protocol, lr=lr, seed=i, steps=steps, **kw) for i, lr in enumerate(rates)]


# ----------------------------------------------------------------------------------------------
# equivalence: a packed member = the same trial alone (SingleEngine, peft)

CASES = [
    # (model, protocol, pack mode, engine it must get)
    *[(m, "lora", "auto", LoraPackEngine) for m in FAMILIES],  # tiny-neox: one head per member
    *[(m, "lora-frozen-head", "auto", LoraPackEngine) for m in FAMILIES],
    *[(m, "full", "packed", FullPackEngine) for m in FAMILIES],
    ("tiny-llama", "full", "loop", LoopEngine),
    ("tiny-gpt2", "prefix", "auto", LoopEngine),
]


@pytest.mark.parametrize("model,protocol,mode,kind", CASES)
def test_packed_member_equals_the_trial_alone(tmp_path, tiny_models, model, protocol, mode, kind, monkeypatch):
    from phantom.workers import packs

    base = tiny_models[model]
    cfgs = pack_cfgs(model, protocol)
    engines = []
    choose = packs.pack_engine

    def chosen(cfgs, *args, **kwargs):  # the engine run_pack's one choice made for a pack
        engine = choose(cfgs, *args, **kwargs)
        if len(cfgs) > 1:  # not the trials alone the pack is checked against
            engines.append(engine)
        return engine

    monkeypatch.setattr(packs, "pack_engine", chosen)

    def run(cfgs, out, base):
        return run_pack(cfgs, out, base=base, mode=mode)

    results = check_pack(tmp_path, cfgs, base, run)  # the rows: float64 and float32
    assert [type(e) for e in engines] == [kind, kind]
    for cfg, res in zip(cfgs, results):
        alone = run_trial(cfg, tmp_path / "alone", base=base)
        assert res.trial_id == cfg.trial_id and res.status == "ok" and res.steps_done == 6
        rec, ref = (pq.read_table(r.trial_path).to_pylist()[0] for r in (res, alone))
        assert rec["pack_size"] == 3 and ref["pack_size"] == 1
        assert (rec["trainable_params"], rec["total_params"]) == (ref["trainable_params"], ref["total_params"])
    if protocol != "full":
        assert all(r["dG_max"] == 0.0 for res in results for r in read_steps(res))


# ----------------------------------------------------------------------------------------------
# under bf16 / fp16 autocast (the GPU default): a packed member = the trial alone, within the
# rounding of the autocast precision; the observables in fp32 (docs/design/precision.md)

AUTOCAST_CASES = [
    # (model, protocol, pack mode, precision)
    ("tiny-llama", "lora", "auto", "bf16"),
    ("tiny-neox", "lora", "auto", "fp16"),  # untied: a head per member, trained in fp16
    ("tiny-gpt2", "lora-frozen-head", "auto", "bf16"),
    ("tiny-llama", "full", "packed", "fp16"),  # vmap under autocast, one loss scale per member
]


@pytest.mark.parametrize("model,protocol,mode,precision", AUTOCAST_CASES)
def test_packed_member_equals_the_trial_alone_under_autocast(tmp_path, tiny_models, model, protocol, mode, precision):
    """The bound, derived: the packed member and the trial alone round to bf16 (fp16) in the
    same places — the same autocast casts of the same operations — and differ only in how
    kernels of other shapes accumulate in fp32 before each rounding, which can move an element
    to the neighbouring bf16 value. Each therefore lies within the autocast rounding of the fp32
    trajectory, whose size on this machine is |alone in autocast − alone in fp32|; their
    difference is within about twice that, and float32_bound allows NOISE_MULTIPLE = 10 times
    the largest such difference per column (with the trial alone on 1 thread as the second
    reference). Measured on the tiny models: packed − alone ≤ 2e-8 in Φ against a bound of
    ~4e-5. A member trained with another member's rate or adapters lies far outside; a pack
    that ignored autocast would lie inside, so the second check: the pack's own fp32 twin gives
    row 0 to the bit, and its gradients differ from the autocast pack's by more than fp32's
    noise (the fp32 trial alone on 1 and 2 threads)."""
    base = tiny_models[model]
    training = TrainingConfig(steps=6, precision=precision)
    cfgs, cfgs32 = pack_cfgs(model, protocol, training=training), pack_cfgs(model, protocol)
    members = range(len(cfgs))
    with threads(2):
        packed = [read_steps(r) for r in run_pack(cfgs, tmp_path / "pack", base=base, mode=mode)]
        packed32 = [read_steps(r) for r in run_pack(cfgs32, tmp_path / "pack32", base=base, mode=mode)]
        alone = [read_steps(run_trial(c, tmp_path / "alone", base=base)) for c in cfgs]
        alone32 = [read_steps(run_trial(c, tmp_path / "alone32", base=base)) for c in cfgs32]
    with threads(1):
        alone1 = [read_steps(run_trial(c, tmp_path / "alone1", base=base)) for c in cfgs]
        alone32_1 = [read_steps(run_trial(c, tmp_path / "alone32-1", base=base)) for c in cfgs32]
    drop_spare()
    for k in members:
        assert {(r["train_precision"], r["obs_precision"]) for r in packed[k]} == {(precision, "fp32")}
        assert_within_noise(packed[k], alone[k], [alone1[k], alone32[k]])
        # the pack trained under autocast: row 0 (observed in fp32) is the fp32 pack's exactly ...
        assert {c: packed[k][0][c] for c in FLOAT_COLUMNS} == {c: packed32[k][0][c] for c in FLOAT_COLUMNS}
        # ... and every gradient lies outside fp32's noise around the fp32 pack's
        norms = [r["grad_norm"] for r in alone32[k]]
        bound = float32_bound(norms, [[r["grad_norm"] for r in alone32_1[k]]])
        assert all(abs(a["grad_norm"] - b["grad_norm"]) > bound for a, b in zip(packed[k][1:], packed32[k][1:]))


def test_members_differ_by_rate_and_seed(tmp_path, tiny_models):
    """Same rate, other seed: other LoRA A, so other numbers (the pack does not share adapters)."""
    cfgs = [make_cfg("tiny-llama", "lora", lr=1e-2, seed=s, steps=2) for s in (0, 1)]
    a, b = (read_steps(r) for r in run_pack(cfgs, tmp_path, base=tiny_models["tiny-llama"]))
    assert a[0]["loss"] == b[0]["loss"] and a[-1]["loss"] != b[-1]["loss"]


def test_base_model_is_not_modified_by_packs(tmp_path, tiny_models):
    base = tiny_models["tiny-neox"]  # untied: the lora pack trains per-member heads
    before = {k: v.clone() for k, v in base.model.state_dict().items()}
    flags = [p.requires_grad for p in base.model.parameters()]
    run_pack(pack_cfgs("tiny-neox", "lora", steps=2), tmp_path, base=base)
    run_pack(pack_cfgs("tiny-neox", "full", steps=2), tmp_path, base=base, mode="packed")
    after = base.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert flags == [p.requires_grad for p in base.model.parameters()]


# ----------------------------------------------------------------------------------------------
# members leave the pack; the rest go on with unchanged numbers


@pytest.mark.parametrize("protocol,mode", [("lora", "auto"), ("full", "packed"), ("full", "loop")])
def test_a_diverging_member_leaves_and_the_rest_go_on(tmp_path, tiny_models, protocol, mode):
    base = tiny_models["tiny-gpt2"]
    cfgs = pack_cfgs("tiny-gpt2", protocol)
    cfgs[1] = cfgs[1].replace(lr=1e300)  # non-finite in float32 and in float64
    seen = []

    def run(cfgs, out, base):
        seen.append(run_pack(cfgs, out, base=base, mode=mode))
        return seen[-1]

    check_pack(tmp_path, cfgs, base, run, members=[0, 2])  # the rest: float64 and float32
    for results in seen:  # the float64 pack, then the float32 one
        assert [r.status for r in results] == ["ok", "diverged", "ok"]
        assert 1 <= results[1].steps_done < 6 and "non-finite" in results[1].error


@pytest.mark.parametrize("protocol,mode", [("lora", "auto"), ("full", "packed")])
def test_stopped_members_leave_and_the_rest_go_on(tmp_path, tiny_models, protocol, mode):
    base = tiny_models["tiny-llama"]
    cfgs = pack_cfgs("tiny-llama", protocol, steps=8)
    cfgs[2] = cfgs[2].replace(stopper=StopperConfig(at_flip=True))  # same pack key
    alone = [read_steps(run_trial(c, tmp_path / "alone", base=base)) for c in cfgs]
    flip = flip_step(alone[2])
    assert flip is not None and flip < 8

    def callback(cfg, step, rows):
        return "asked" if cfg.trial_id == cfgs[0].trial_id and step == 3 else None

    def run(cfgs, out, base):
        return run_pack(cfgs, out, base=base, callback=callback, mode=mode)

    results = check_pack(tmp_path, cfgs, base, run)  # each member's rows: float64 and float32
    assert [(r.status, r.stop_reason, r.steps_done) for r in results] == [
        ("ok", "asked", 3), ("ok", None, 8), ("ok", "flip", flip)]


def test_a_failure_mid_pack_is_recorded_for_the_members_still_running(tmp_path, tiny_models, monkeypatch):
    import phantom.workers.trial as wt

    cfgs = pack_cfgs("tiny-llama", "lora", steps=6)
    armed = {"on": False}
    real = wt.obs.observe

    def flaky(*a, **k):
        if armed["on"]:
            raise RuntimeError("boom in step 3")
        return real(*a, **k)

    def callback(cfg, step, rows):
        armed["on"] = step == 2 and cfg.trial_id == cfgs[2].trial_id  # the next observe fails
        return "asked" if step == 1 and cfg.trial_id == cfgs[0].trial_id else None

    monkeypatch.setattr(wt.obs, "observe", flaky)
    with pytest.raises(RuntimeError, match="boom in step 3"):
        run_pack(cfgs, tmp_path, base=tiny_models["tiny-llama"], callback=callback)
    recs = [pq.read_table(tmp_path / "trials" / f"{c.trial_id}.parquet").to_pylist()[0] for c in cfgs]
    assert [(r["status"], r["stop_reason"], r["steps_done"]) for r in recs] == [
        ("ok", "asked", 1), ("error", None, 2), ("error", None, 2)]
    assert all("boom in step 3" in r["error"] for r in recs[1:])
    n_ctx = len(cfgs[0].contexts)
    steps = [pq.read_table(tmp_path / "steps" / f"{c.trial_id}.parquet").num_rows for c in cfgs]
    assert steps == [2 * n_ctx, 3 * n_ctx, 3 * n_ctx]


# ----------------------------------------------------------------------------------------------
# memory: a full-FT worker reuses its copy and Adam state trial after trial


def test_reused_copy_gives_the_numbers_of_a_fresh_one(tmp_path, tiny_models):
    from phantom.workers import engines

    base = tiny_models["tiny-gpt2"]
    first = make_cfg("tiny-gpt2", "full", lr=3e-2, steps=3,
                     training=TrainingConfig(steps=3, weight_decay=0.1, max_grad_norm=0.5))
    second = make_cfg("tiny-gpt2", "full", lr=1e-2, steps=4, seed=3)
    engines.drop_spare()
    run_trial(first, tmp_path / "a", base=base)
    assert engines._SPARE and engines._SPARE[0][0] is base.model  # kept for the next trial
    reused = read_steps(run_trial(second, tmp_path / "b", base=base))
    engines.drop_spare()  # no spare: the trial deep-copies the base and makes a new AdamW
    fresh = read_steps(run_trial(second, tmp_path / "c", base=base))
    drop = ("step_ms", "obs_ms")
    assert [{k: v for k, v in r.items() if k not in drop} for r in reused] == [
        {k: v for k, v in r.items() if k not in drop} for r in fresh]
    run_trial(make_cfg("tiny-gpt2", "lora", steps=1), tmp_path / "d", base=base)
    assert not engines._SPARE  # a LoRA trial does not keep a full copy sitting in memory


# ----------------------------------------------------------------------------------------------
# pieces


@pytest.mark.parametrize("model", FAMILIES)
@pytest.mark.parametrize("protocol", ["full", "lora", "lora-frozen-head", "prefix"])
def test_params_count_per_member(tiny_models, model, protocol):
    base = tiny_models[model]
    cfgs = pack_cfgs(model, protocol, steps=1)
    batch = encode(base.tokenizer, cfgs[0].contexts)
    single = SingleEngine(cfgs[0], base, batch, 5)
    pack = pack_engine(cfgs, base, batch, 5, mode="packed")
    try:
        assert [pack.params_count(k) for k in range(3)] == [single.params_count(0)] * 3
    finally:
        single.close()
        pack.close()


def test_pack_engine_choice(tiny_models):
    base = tiny_models["tiny-llama"]
    cfgs = pack_cfgs("tiny-llama", "full", steps=1)
    batch = encode(base.tokenizer, cfgs[0].contexts)
    assert type(pack_engine(cfgs[:1], base, batch, 5)) is SingleEngine  # K = 1: unchanged
    want = FullPackEngine if torch.cuda.is_available() else LoopEngine  # measured: see pack_engine
    assert type(pack_engine(cfgs, base, batch, 5)) is want
    with pytest.raises(ConfigError, match="Unknown pack mode 'fast'"):
        pack_engine(cfgs, base, batch, 5, mode="fast")


@pytest.mark.parametrize("device,protocol,size", [
    ("cpu", "lora", 8), ("cpu", "full", 1), ("cpu", "prefix", 1), ("cuda", "lora", 8), ("cuda", "prefix", 1),
])
def test_default_pack_size(device, protocol, size):
    """``pack: auto`` takes the measured table (README, "Trial packs") now that the packed
    engines are installed."""
    from phantom.orchestrator.config import SweepConfig
    from phantom.orchestrator.packing import pack_limit

    sweep = SweepConfig.from_dict({
        "name": "k", "models": ["tiny-llama"], "learning_rates": [1e-3], "protocols": [protocol],
        "resources": {"gpus_per_trial": 1 if device == "cuda" else 0, "pack": "auto"},
    })
    assert sweep.resources.device == device
    assert pack_limit(sweep, protocol) == size


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("max_norm,weight_decay", [(None, 0.0), (None, 0.1), (0.5, 0.01)])
def test_stacked_adamw_is_torch_adamw_per_member(max_norm, weight_decay, dtype):
    """Each member's update is torch.optim.AdamW(fused) on that member's tensors, with its own
    rate and its own clipping (clip_grad_norm_).

    Without clipping the arithmetic is the same kernel on the same numbers: bit for bit. With
    clipping the gradient norm sums the member's N squares in another order (one stacked norm
    against clip_grad_norm_'s per-tensor norms): the two differ by at most N·eps relative (the
    bound for a reordered sum of N positive terms), so do the clipping coefficients; a gradient
    scaled by (1 + δ) moves Adam's step m̂/(√v̂ + ε) by at most δ relative, so the parameters
    (|p| ~ 1, moves ≤ lr a step) differ by at most N·eps relative plus N·eps·steps·lr."""
    gen = torch.Generator().manual_seed(0)
    shapes = [(4, 3), (7,), (2, 5, 3)]
    rates = (1e-3, 1e-1, 3.0)
    steps = 3
    tol = sum(math.prod(s) for s in shapes) * torch.finfo(dtype).eps  # N·eps
    cfgs = [make_cfg(lr=lr, training=TrainingConfig(max_grad_norm=max_norm, weight_decay=weight_decay)) for lr in rates]
    stacked = [torch.randn(len(rates), *s, generator=gen, dtype=dtype).requires_grad_(True) for s in shapes]
    alone = [[x.detach()[j].clone().requires_grad_(True) for x in stacked] for j in range(len(rates))]
    opts = [torch.optim.AdamW(ps, lr=lr, weight_decay=weight_decay, fused=True) for ps, lr in zip(alone, rates)]
    opt = StackedAdamW(stacked, cfgs)
    for _ in range(steps):
        grads = [torch.randn(x.shape, generator=gen, dtype=dtype) * 3 for x in stacked]
        for x, gr in zip(stacked, grads):
            x.grad = gr.clone()
        norms = opt.step([0, 1, 2])
        for j, (ps, o) in enumerate(zip(alone, opts)):
            for p, gr in zip(ps, grads):
                p.grad = gr[j].clone()
            norm = torch.nn.utils.clip_grad_norm_(ps, max_norm or float("inf"))
            o.step()
            assert norms[j] == pytest.approx(float(norm), rel=tol)
            for p, x in zip(ps, stacked):
                if max_norm is None:
                    assert torch.equal(p.detach(), x.detach()[j])  # bit for bit
                else:
                    torch.testing.assert_close(p.detach(), x.detach()[j], rtol=tol, atol=tol * steps * max(rates))
    m = [x.clone() for x in opt.exp_avg]
    kept = opt.keep([2, 0])  # members leave: the stacks shrink, the state follows
    assert kept[0].shape[0] == 2 and torch.equal(kept[1].detach()[0], stacked[1].detach()[2])
    assert opt.lrs == [3.0, 1e-3] and torch.equal(opt.exp_avg[0][1], m[0][0])


# ----------------------------------------------------------------------------------------------
# the real model (slow: -m smoke)


@pytest.mark.smoke
@pytest.mark.parametrize("protocol,rates,mode", [
    ("lora", (1e-4, 3e-4, 1e-3), "auto"),
    ("full", (1e-5, 1e-4), "packed"),
])
def test_packed_smollm2_equals_the_trials_alone(tmp_path, protocol, rates, mode):
    from phantom.workers.models import load_model_cached

    base = load_model_cached("smollm2-135m")
    s = get_sentence("longing")
    cfgs = [TrialConfig(model="smollm2-135m", sentence_id=s.id, target=s.target, competitor=s.competitor,
                        contexts=s.contexts, protocol=protocol, lr=lr, seed=i,
                        training=TrainingConfig(steps=3, precision="fp32"))
            for i, lr in enumerate(rates)]

    def run(cfgs, out, base):
        return run_pack(cfgs, out, base=base, mode=mode)

    results = check_pack(tmp_path, cfgs, base, run)  # float64 to 1e-10; float32 within this machine's noise
    assert [r.status for r in results] == ["ok"] * len(cfgs)
