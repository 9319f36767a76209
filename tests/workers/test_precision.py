"""Training precision and observation precision (docs/design/precision.md): a trial trains under
bf16 or fp16 autocast — the GPU default — on a CPU too, and its observables are read from a
forward of their own in fp32.

What is compared, and why the comparisons hold on any machine (docs/design/numerics.md):

- **Step 0 bit for bit.** Row 0 is the base model, read by the same fp32 forward on the same
  numbers whatever the training precision: an autocast run's row 0 equals the fp32 run's
  exactly. Read from the bf16 training forward instead, Φ₀ of tiny-llama moves by ~1e-4 (and
  of smollm2-135m by 0.005).
- **The steps trained under autocast.** The gradient of an autocast step differs from fp32's by
  the rounding of bf16 (8 bits) or fp16 (11 bits) — measured ~1e-2 and ~5e-4 of the gradient
  norm on the tiny models — while two fp32 runs of the same step differ by fp32 noise, bounded
  per column by ``float32_bound`` (the trial on 1 and 2 threads, and in float64). An autocast
  run whose gradient lies within that bound of fp32's did not train under autocast.
- **fp16's loss scale** on a layer made to overflow: the scale halves until the gradient is
  finite, and that gradient is the fp32 one (it is exact in fp16 here).
"""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest
import torch

from phantom.config import TrainingConfig, TrialConfig
from phantom.workers.engines import LossScaler, resolve_precision
from phantom.workers.sentences import get_sentence
from phantom.workers.testing import float32_bound, float64, threads
from phantom.workers.trial import run_trial

# what a row says about its trial, its own cost and arithmetic, not about the model it observes
NOT_OBSERVED = ("trial_id", "step_ms", "obs_ms", "train_precision", "obs_precision")


def make_cfg(precision: str, protocol: str = "full", model: str = "tiny-llama", lr: float = 1e-2, steps: int = 4):
    s = get_sentence("longing")
    return TrialConfig(model=model, sentence_id=s.id, target=s.target, competitor=s.competitor,
                       contexts=s.contexts, protocol=protocol, lr=lr, training=TrainingConfig(steps=steps, precision=precision))


def rows_of(result) -> list[dict]:
    return pq.read_table(result.steps_path).to_pylist()


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
@pytest.mark.parametrize("protocol", ["full", "lora"])
def test_a_trial_trains_under_autocast_and_observes_in_fp32(tmp_path, tiny_models, precision, protocol):
    base = tiny_models["tiny-llama"]
    with threads(2):
        mixed = run_trial(make_cfg(precision, protocol), tmp_path / precision, base=base)
        fp32 = run_trial(make_cfg("fp32", protocol), tmp_path / "fp32", base=base)
    with threads(1):
        fp32_1 = run_trial(make_cfg("fp32", protocol), tmp_path / "fp32-1", base=base)
    fp64 = run_trial(make_cfg("fp32", protocol), tmp_path / "fp64", base=float64(base))
    got, want, refs = rows_of(mixed), rows_of(fp32), [rows_of(fp32_1), rows_of(fp64)]

    # every value says the arithmetic it was computed in
    assert {(r["train_precision"], r["obs_precision"]) for r in got} == {(precision, "fp32")}
    assert {(r["train_precision"], r["obs_precision"]) for r in want} == {("fp32", "fp32")}
    assert {(r["train_precision"], r["obs_precision"]) for r in refs[1]} == {("fp64", "fp64")}
    record = pq.read_table(mixed.trial_path).to_pylist()[0]
    assert (record["train_precision"], record["obs_precision"], record["status"]) == (precision, "fp32", "ok")

    # row 0, the base model: the same fp32 forward, the same numbers to the bit
    first = [{k: v for k, v in r.items() if k not in NOT_OBSERVED} for r in (got[0], want[0])]
    assert first[0] == first[1]

    # the steps trained under autocast: each gradient lies outside fp32's own noise around fp32's
    norms = [r["grad_norm"] for r in want]
    bound = float32_bound(norms, [[r["grad_norm"] for r in ref] for ref in refs])
    assert all(abs(a["grad_norm"] - b["grad_norm"]) > bound for a, b in zip(got[1:], want[1:])), bound


@pytest.mark.parametrize("precision,forwards", [("fp32", [1, 1, 1]), ("bf16", [2, 2, 1])])
def test_the_forwards_of_each_step(tmp_path, tiny_models, monkeypatch, precision, forwards):
    """fp32: one forward a step is both the gradient's and the observables'. Autocast: a second,
    fp32 forward a step; the last state is observed only (one forward, no graph). The forward
    the observables read runs with fp32 matmuls in full precision whatever the process allows."""
    from phantom.workers import engines

    calls = []
    real = engines.forward_pair

    def spy(p, train, run):
        runs = []

        def counted():
            runs.append((torch.is_autocast_enabled("cpu"), torch.get_float32_matmul_precision()))
            return run()

        out = real(p, train, counted)
        calls.append((train, runs))
        return out

    monkeypatch.setattr(engines, "forward_pair", spy)
    before = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("medium")  # a script that allows TF32 (bf16 on this CPU)
    try:
        run_trial(make_cfg(precision, steps=2), tmp_path, base=tiny_models["tiny-gpt2"])
        assert torch.get_float32_matmul_precision() == "medium"  # given back
    finally:
        torch.set_float32_matmul_precision(before)
    assert [train for train, _ in calls] == [True, True, False]
    assert [len(runs) for _, runs in calls] == forwards
    # the forward the observables read (the last of each step): no autocast, fp32 matmuls in full
    assert [runs[-1] for _, runs in calls] == [(False, "highest")] * 3
    assert [runs[0][0] for _, runs in calls[:2]] == [precision != "fp32"] * 2


@pytest.mark.parametrize("asked,device,bf16_ok,dtype,want", [
    ("auto", "cpu", True, torch.float32, ("fp32", "fp32")),
    ("fp32", "cpu", True, torch.float32, ("fp32", "fp32")),
    ("bf16", "cpu", True, torch.float32, ("bf16", "fp32")),
    ("fp16", "cpu", True, torch.float32, ("fp16", "fp32")),
    ("auto", "cuda", True, torch.float32, ("bf16", "fp32")),  # Ampere and later
    ("auto", "cuda", False, torch.float32, ("fp16", "fp32")),  # V100, T4
    ("bf16", "cpu", True, torch.float64, ("fp64", "fp64")),  # autocast leaves float64 alone
    ("auto", "cpu", True, torch.float64, ("fp64", "fp64")),
])
def test_the_precision_a_trial_runs_in(monkeypatch, asked, device, bf16_ok, dtype, want):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16_ok)
    p = resolve_precision(asked, torch.device(device), dtype)
    assert (p.train, p.observe, p.device_type) == (*want, device)
    assert p.autocast == {"bf16": torch.bfloat16, "fp16": torch.float16}.get(want[0])


def test_fp16_halves_the_scale_of_an_overflowing_member_and_repeats_its_backward():
    """A layer whose fp16 gradient overflows at scale 2^16: dL/dW = 10 per entry, so the
    scaled weight gradient 10·s (an fp16 matmul output) exceeds fp16's 65504 until s = 2^12.
    The step is not skipped: the gradient at that scale, divided by it, is fp32's exactly."""
    layer = torch.nn.Linear(4, 4)
    with torch.no_grad():
        layer.weight.fill_(1.0)
        layer.bias.zero_()
    x = torch.full((1, 4), 10.0)

    def loss():
        with torch.autocast("cpu", dtype=torch.float16):
            return layer(x).float().sum()[None]

    scaler = LossScaler(1)
    tries = []

    def finite():
        tries.append(scaler.scales[0])
        return [bool(torch.isfinite(layer.weight.grad).all())]

    def clear():
        layer.zero_grad(set_to_none=True)

    [scale] = scaler.backward(loss(), [0], finite, clear)
    assert tries == [2.0**16, 2.0**15, 2.0**14, 2.0**13, 2.0**12] and scale == 2.0**12
    assert torch.equal(layer.weight.grad / scale, torch.full((4, 4), 10.0))
