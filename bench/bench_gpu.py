"""GPU benchmark (issue 30): the lr50 grid on a randomly initialised model of SmolLM-360M's
shapes, unpacked and packed, and what bf16 does to step 0. No weights and no hub are needed.

    python bench/bench_gpu.py                  # on a GPU: sweeps/lr50.yaml's grid (10 sentences x 5
                                               # rates x 50 steps, full FT, precision auto = bf16)
    python bench/bench_gpu.py --smoke          # any CPU, seconds: a 2-layer model of the same
                                               # family, 2 sentences x 2 rates x 3 steps (run by the suite)
    python bench/bench_gpu.py --sentences 3 --steps 10 --precision fp32     # a part of the grid
    python bench/bench_gpu.py --model smollm2-135m --ids longing --only precision   # real weights

The grid runs twice in this process, each trial on the engine a sweep's worker uses: *unpacked*
(each of the trials alone, a SingleEngine, one after another) and *packed* (the rates of a
sentence as one pack, ``pack_mode: packed``: the vmap engine of full fine-tuning). For each it
prints, one figure a line (``<mode>: <figure> <value>``):

- time to the first step: from the start of the mode to the first step's row (the engine
  built, the base model copied to the device, the first forward and backward); the cold
  figure, of a one-step trial before the grid, adds what a fresh process pays once (CUDA's
  context and libraries, lazy imports);
- step time: the median ``step_ms`` of the step rows (forward, backward, update: a pack's step
  trains all its members);
- steps per second: trial steps (a pack's members each count) per wall second of the grid;
- peak GPU memory: ``torch.cuda.max_memory_allocated`` over the mode (n/a without a GPU).

Then the precision of one trial (the grid's first sentence at its middle rate): step-0 Φ of the
base model in fp32; read from the bf16 autocast forward (what releases before 2026-12-07
recorded as a bf16 trial's Φ₀); as a bf16 trial records it now (observed in fp32, so the
difference is 0); and the step time of that trial in fp32 and in bf16 with its fp32
observation forward, whose own time is given (docs/design/precision.md).
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

REPO = Path(__file__).resolve().parents[1]
# (hidden, layers, heads, kv heads, intermediate, vocab, rope theta): HuggingFaceTB/SmolLM-360M's
# config.json (Llama, tied embeddings); "smoke" the same family at a size that runs in seconds
SHAPES = {
    "smollm-360m": (960, 32, 15, 5, 2560, 49152, 10000.0),
    "smoke": (64, 2, 4, 2, 128, 49152, 10000.0),
}


def random_model(shape: str):
    """A LoadedModel of ``shape`` with random weights (seeded) and the tiny word-level tokenizer
    (ids below the vocabulary; every sentence word is one token)."""
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig

    from phantom.workers import tiny
    from phantom.workers.models import LoadedModel

    d, layers, heads, kv, inter, vocab, theta = SHAPES[shape]
    cfg = LlamaConfig(vocab_size=vocab, hidden_size=d, intermediate_size=inter, num_hidden_layers=layers,
                      num_attention_heads=heads, num_key_value_heads=kv, max_position_embeddings=2048,
                      rope_theta=theta, tie_word_embeddings=True, rms_norm_eps=1e-5)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(cfg).eval()
    return LoadedModel(name=f"{shape}-random", model=model, tokenizer=tiny.build_tokenizer(), source="tiny")


def grid(base, n_sentences: int | None, n_rates: int | None, steps: int | None, precision: str | None,
         ids: list[str] | None = None):
    """The lr50 grid's trial configs (sweeps/lr50.yaml: its sentences, full-FT rates, budget and
    settings) on ``base``, grouped by sentence (one pack each); a sentence whose words are not
    one token each for ``base``'s tokenizer is left out, as a sweep leaves it out."""
    from phantom.config import TrialConfig
    from phantom.errors import SentenceError
    from phantom.orchestrator.loader import load_sweep
    from phantom.workers.sentences import load_sentences, token_id

    sweep, sentences_file = load_sweep(REPO / "sweeps" / "lr50.yaml")
    sentences = []
    for s in load_sentences(sentences_file).values():
        try:
            token_id(base.tokenizer, s.target), token_id(base.tokenizer, s.competitor)
        except SentenceError:
            continue
        if ids is None or s.id in ids:
            sentences.append(s)
    sentences = sentences[:n_sentences]
    rates = list(sweep.rates("full"))
    if n_rates is not None:  # an even spread of the grid's rates, its ends included
        rates = [rates[round(i * (len(rates) - 1) / max(1, n_rates - 1))] for i in range(n_rates)]
    training = sweep.training
    if steps is not None:
        training = dataclasses.replace(training, steps=steps)
    if precision is not None:
        training = dataclasses.replace(training, precision=precision)
    return [[TrialConfig(model=base.name, sentence_id=s.id, target=s.target, competitor=s.competitor,
                         contexts=s.contexts, protocol="full", lr=lr, seed=0, training=training,
                         observables=sweep.observables, lora=sweep.lora) for lr in rates]
            for s in sentences]


def _rows(result) -> list[dict]:
    import pyarrow.parquet as pq

    return pq.read_table(result.steps_path).to_pylist()


def run_mode(mode: str, packs, base, out: str) -> dict:
    """The grid, unpacked (each trial alone) or packed (a pack per sentence): its figures."""
    import torch

    from phantom.workers.trial import run_pack, run_trial

    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    first: list[float] = []

    def at_first_step(cfg, step, rows):
        if step == 1 and not first:
            first.append(time.perf_counter())

    t0 = time.perf_counter()
    if mode != "packed":
        results = [run_trial(c, out, base=base, callback=at_first_step) for pack in packs for c in pack]
    else:
        results = [r for pack in packs for r in run_pack(pack, out, base=base, callback=at_first_step, mode="packed")]
    if cuda:
        torch.cuda.synchronize()
    wall = time.perf_counter() - t0
    step_ms = [r["step_ms"] for res in results for r in _rows(res) if r["step_ms"] is not None and r["context_id"] == 0]
    steps = sum(r.steps_done for r in results)
    bad = [f"{r.trial_id} {r.status}" for r in results if r.status != "ok"]
    if bad:
        raise SystemExit(f"bench_gpu: {mode}: trials did not finish: {', '.join(bad)}")
    row = _rows(results[0])[0]
    return dict(trials=len(results), steps=steps, wall_s=wall, first_s=(first[0] - t0) if first else float("nan"),
                step_ms=statistics.median(step_ms), steps_per_s=steps / wall,
                peak_gb=torch.cuda.max_memory_allocated() / 1e9 if cuda else None,
                precision=f"{row['train_precision']}, observed in {row['obs_precision']}")


def precision_figures(cfg, base, out: str) -> dict:
    """Step-0 Φ of ``cfg``'s base model in fp32, from the bf16 autocast forward, and as a bf16
    trial records it; the step time of the trial in fp32 and in bf16, and of its fp32
    observation forward (no graph)."""
    import torch

    from phantom.workers import observables as obs
    from phantom.workers.engines import encode, forward_pair, resolve_precision
    from phantom.workers.sentences import token_id
    from phantom.workers.trial import run_trial

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    g, c = token_id(base.tokenizer, cfg.target), token_id(base.tokenizer, cfg.competitor)
    model = base.model.to(device)
    b = encode(base.tokenizer, cfg.contexts).to(device)
    E = model.get_input_embeddings().weight

    def run():
        out = model(input_ids=b.ids, attention_mask=b.mask, logits_to_keep=b.last[:, None], output_hidden_states=False)
        return out.logits[:, 0], torch.zeros(b.n, E.shape[1], device=device)

    def phi0(precision: str) -> float:
        p = resolve_precision(precision, device, E.dtype)
        with torch.no_grad(), p.training():
            z, h = run()
        return obs.observe(z[0].float(), h[0], E, g, c, pool_mass=cfg.observables.pool_mass,
                           pool_cap=cfg.observables.pool_cap).values.phi

    fp32, bf16_forward = phi0("fp32"), phi0("bf16")
    timing = []
    p32 = resolve_precision("fp32", device, E.dtype)
    for _ in range(7):  # the observation forward alone: what the policy adds to a bf16 step
        if device.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        forward_pair(p32, False, run)
        if device.type == "cuda":
            torch.cuda.synchronize()
        timing.append((time.perf_counter() - t) * 1e3)
    base.model.to("cpu")  # as a worker holds its base: the engines copy it to the device
    steps = {}
    for precision in ("fp32", "bf16"):
        res = run_trial(cfg.replace(training=dataclasses.replace(cfg.training, precision=precision)), out, base=base)
        rows = [r for r in _rows(res) if r["context_id"] == 0]
        steps[precision] = (rows[0]["phi"], statistics.median(r["step_ms"] for r in rows if r["step_ms"] is not None))
    return dict(phi_fp32=fp32, phi_bf16_forward=bf16_forward, phi_bf16_recorded=steps["bf16"][0],
                phi_fp32_recorded=steps["fp32"][0], step_fp32_ms=steps["fp32"][1], step_bf16_ms=steps["bf16"][1],
                obs_forward_ms=statistics.median(timing[2:]))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true", help="a 2-layer model, 2 sentences x 2 rates x 3 steps (CPU, seconds)")
    ap.add_argument("--shape", choices=sorted(SHAPES), default="smollm-360m")
    ap.add_argument("--model", default=None, help="a registered model instead of random weights (e.g. smollm2-135m)")
    ap.add_argument("--ids", default=None, help="sentence ids, comma-separated (default: the grid's)")
    ap.add_argument("--sentences", type=int, default=None, help="the first N sentences (default: all 10)")
    ap.add_argument("--rates", type=int, default=None, help="N of lr50's 5 rates, spread (default: all)")
    ap.add_argument("--steps", type=int, default=None, help="the budget (default: lr50's 50)")
    ap.add_argument("--precision", default=None, help="training.precision (default: lr50's auto = bf16 on a GPU)")
    ap.add_argument("--only", default="unpacked,packed,precision", help="sections, comma-separated")
    args = ap.parse_args(argv)
    if args.smoke:
        args.shape = "smoke"
        args.sentences, args.rates, args.steps = args.sentences or 2, args.rates or 2, args.steps or 3

    import warnings

    import torch

    warnings.filterwarnings("ignore", category=FutureWarning)
    cuda = torch.cuda.is_available()
    if not cuda and not args.smoke:
        print("bench_gpu: no GPU here: the figures below are this CPU's (--smoke for a quick check)", file=sys.stderr)
    device = f"cuda:0 ({torch.cuda.get_device_name(0)})" if cuda else "cpu (no GPU)"
    t0 = time.perf_counter()
    if args.model:
        from phantom.workers.models import load_model

        base, what = load_model(args.model), f"{args.model}, its weights"
    else:
        base, what = random_model(args.shape), f"{args.shape} shapes, random init"
    packs = grid(base, args.sentences, args.rates, args.steps, args.precision, args.ids and args.ids.split(","))
    params = sum(p.numel() for p in base.model.parameters())
    cfg = packs[0][len(packs[0]) // 2]
    print(f"device: {device}; torch {torch.__version__}")
    print(f"model: {what}, {params / 1e6:.1f}M parameters (ready in {time.perf_counter() - t0:.1f} s)")
    print(f"grid: lr50, {len(packs)} sentences x {len(packs[0])} rates x {cfg.training.steps} steps, full FT, "
          f"precision {cfg.training.precision}")
    sections = args.only.split(",")
    figures = {}
    with tempfile.TemporaryDirectory(prefix="bench-gpu-") as out:
        # one trial of one step first: the process's one-time costs (CUDA's context and
        # libraries, lazy imports, first allocations) are its own figure, not the grid's
        t1 = time.perf_counter()
        warm = run_mode("cold", [[cfg.replace(training=dataclasses.replace(cfg.training, steps=1))]], base, f"{out}/cold")
        print(f"cold: time to the first step {warm['first_s']:.2f} s (a fresh process; "
              f"{t1 - t0 + warm['first_s']:.2f} s with building the model)")
        for mode in ("unpacked", "packed"):
            if mode not in sections:
                continue
            f = figures[mode] = run_mode(mode, packs, base, f"{out}/{mode}")
            print(f"{mode}: trials {f['trials']}, trial steps {f['steps']}, wall {f['wall_s']:.1f} s, precision {f['precision']}")
            print(f"{mode}: time to the first step {f['first_s']:.2f} s")
            print(f"{mode}: step time {f['step_ms']:.1f} ms")
            print(f"{mode}: steps per second {f['steps_per_s']:.2f}")
            peak = f"{f['peak_gb']:.2f} GB" if f["peak_gb"] is not None else "n/a (no GPU)"
            print(f"{mode}: peak GPU memory {peak}")
        if "unpacked" in figures and "packed" in figures:
            print(f"packed/unpacked: steps per second {figures['packed']['steps_per_s'] / figures['unpacked']['steps_per_s']:.2f}x")
        if "precision" in sections:
            p = precision_figures(cfg, base, f"{out}/precision")
            print(f"step-0 phi: fp32 {p['phi_fp32']:+.6f}")
            print(f"step-0 phi: bf16 autocast forward {p['phi_bf16_forward']:+.6f} "
                  f"(fp32 - bf16 {p['phi_fp32'] - p['phi_bf16_forward']:+.2e})")
            print(f"step-0 phi: recorded by a bf16 trial {p['phi_bf16_recorded']:+.6f} "
                  f"(fp32 trial - bf16 trial {p['phi_fp32_recorded'] - p['phi_bf16_recorded']:+.2e}: observed in fp32)")
            print(f"step time: fp32 {p['step_fp32_ms']:.1f} ms, bf16 {p['step_bf16_ms']:.1f} ms "
                  f"(with its fp32 observation forward, alone {p['obs_forward_ms']:.1f} ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
