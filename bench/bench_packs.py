"""Trial-pack benchmark (issue 11): packed vs unpacked trials, steps/s and peak memory per
worker, and a full-FT worker's memory across trials.

    python bench/bench_packs.py                      # smollm2-135m on this machine
    python bench/bench_packs.py --smoke              # tiny-llama, in-process, seconds
    python bench/bench_packs.py --random-init        # smollm2-135m's shapes, random weights
    python bench/bench_packs.py --random-init --shape smollm-360m   # HuggingFaceTB/SmolLM-360M's
    python bench/bench_packs.py --only lora,kernels --threads 1 --full-ks 2,3,4,5

Sections (``--only``):
- ``lora``: 5 LoRA trials (5 rates, one sentence) one after another in one worker (what one
  trial per Ray worker does) against the same 5 as one pack; wall, trials/s, member steps/s,
  the training-only ratio (the step_ms column) and each worker's peak memory.
- ``sweep``: LoRA packs of K = 1, 2, 3, 5, 8 (``--sweep-ks``) in one worker: the pack step
  and the member steps/s against K = 1.
- ``full``: the same for full fine-tuning at K = 2, 3, ... (``--full-ks``): the vmap pack and
  the loop pack (K single engines side by side) against K trials in a row.
- ``memory``: several full-FT trials in a row in one worker (SingleEngine): peak resident
  memory after each, against weights + gradients + Adam state + base copy (the worker keeps
  one copy and its Adam state from trial to trial).
- ``kernels``: one LoRA forward+backward over K copies of the context: the packed engine's
  bmm, peft's mixed-adapter batch (``adapter_names=``), and K separate forwards.

Each measurement runs in a fresh child process, one after another, so a peak is that worker's
own and every ratio compares runs of the same minutes on the same machine (``--inline`` runs
them in this process: quicker, but the peaks are then not per worker). On CUDA it also prints
trials/s per GPU, the device memory per trial and how many trials fit on the card.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

LORA_RATES = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2)
FULL_RATES = (1e-6, 3e-6, 1e-5, 3e-5, 1e-4, 3e-4)
SHAPES = {  # (hidden, layers, heads, kv heads, intermediate, vocab, rope theta)
    "smollm2-135m": (576, 30, 9, 3, 1536, 49152, 100000.0),
    "smollm-360m": (960, 32, 15, 5, 2560, 49152, 10000.0),
}


# ----------------------------------------------------------------------------------------------
# one measurement (in a child process)


def _status_gb(key: str) -> float:
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1e6
    return float("nan")


def load_base(spec: dict):
    from phantom.workers.models import LoadedModel, load_model

    if not spec.get("shape"):
        return load_model(spec["model"])
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig

    from phantom.workers import tiny

    d, layers, heads, kv, inter, vocab, theta = SHAPES[spec["shape"]]
    cfg = LlamaConfig(vocab_size=vocab, hidden_size=d, intermediate_size=inter, num_hidden_layers=layers,
                      num_attention_heads=heads, num_key_value_heads=kv, max_position_embeddings=8192,
                      rope_theta=theta, tie_word_embeddings=True, rms_norm_eps=1e-5)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(cfg).eval()
    tok = tiny.build_tokenizer()  # word-level ids < vocab: the sentence is one short context
    return LoadedModel(name=f"{spec['shape']}-random", model=model, tokenizer=tok, source="tiny")


def configs(spec: dict, base) -> list:
    from phantom.config import TrainingConfig, TrialConfig
    from phantom.workers.sentences import get_sentence

    s = get_sentence("longing")
    return [TrialConfig(model=base.name, sentence_id=s.id, target=s.target, competitor=s.competitor,
                        contexts=s.contexts, protocol=spec["protocol"], lr=lr, seed=i,
                        training=TrainingConfig(steps=spec["steps"]))
            for i, lr in enumerate(spec["lrs"])]


def measure(spec: dict) -> dict:
    """Run one variant; returns its figures (wall, step time, memory)."""
    import pyarrow.parquet as pq
    import torch

    from phantom.workers.trial import run_pack, run_trial

    if spec.get("threads"):
        torch.set_num_threads(spec["threads"])
    rss0 = _status_gb("VmRSS")
    base = load_base(spec)
    if spec["kind"] == "kernels":
        return kernels(spec, base)
    if spec["kind"] == "sweep":
        return sweep(spec, base)
    cuda = torch.cuda.is_available()
    cfgs = configs(spec, base)
    out = tempfile.mkdtemp()
    if spec.get("warmup", True):  # one-time costs (lazy imports, first allocations) go first
        run_trial(cfgs[0].replace(training=dataclasses.replace(cfgs[0].training, steps=1)), out, base=base)
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    dev0 = torch.cuda.memory_allocated() if cuda else 0
    t0, peaks, results = time.perf_counter(), [], []
    if spec["kind"] == "alone":  # one trial after another (a worker per trial does this)
        for cfg in cfgs:
            results.append(run_trial(cfg, out, base=base))
            peaks.append(_status_gb("VmHWM"))
    else:
        mode = spec["kind"]
        results = run_pack(cfgs, out, base=base, mode=mode)
        peaks.append(_status_gb("VmHWM"))
    wall = time.perf_counter() - t0
    step_ms = 0.0
    for res in results if spec["kind"] == "alone" else results[:1]:  # a pack's step_ms is shared
        step_ms += sum(v for v in pq.read_table(res.steps_path).column("step_ms").to_pylist() if v)
    return dict(wall_s=wall, train_s=step_ms / 1e3, member_steps=sum(r.steps_done for r in results),
                trials=len(results), peak_gb=max(peaks), peaks_gb=peaks, rss_start_gb=rss0,
                status=[r.status for r in results],
                cuda_peak_gb=(torch.cuda.max_memory_allocated() / 1e9) if cuda else None,
                cuda_base_gb=dev0 / 1e9, cuda_total_gb=(torch.cuda.get_device_properties(0).total_memory / 1e9)
                if cuda else None, params=sum(p.numel() for p in base.model.parameters()))


def sweep(spec: dict, base) -> dict:
    """LoRA packs of K = 1, 2, ... in one worker: seconds of a pack step (the step_ms column)."""
    import pyarrow.parquet as pq

    from phantom.workers.trial import run_pack

    out, ks = tempfile.mkdtemp(), spec["ks"]
    rates = [LORA_RATES[i % len(LORA_RATES)] for i in range(max(ks))]
    cfgs = configs(dict(spec, lrs=rates), base)
    run_pack(cfgs[:1], out, base=base)  # warm-up
    step_s = {}
    for k in ks:
        res = run_pack(cfgs[:k], f"{out}/{k}", base=base)
        ms = [v for v in pq.read_table(res[0].steps_path).column("step_ms").to_pylist() if v]
        step_s[k] = statistics.median(ms) / 1e3
    return dict(step_s=step_s)


def kernels(spec: dict, base) -> dict:
    """Seconds of one LoRA forward+backward over K rows: packed bmm, peft mixed batch, K x one."""
    import copy

    import peft
    import torch

    from phantom.workers.engines import SingleEngine, encode
    from phantom.workers.packs import LoraPackEngine
    from phantom.workers.protocols import lora_targets
    from phantom.workers.trial import resolve_ids

    cfgs = configs(spec, base)
    g, _ = resolve_ids(cfgs[0], base.tokenizer)
    batch = encode(base.tokenizer, cfgs[0].contexts)
    k, reps = len(cfgs), spec.get("reps", 5)

    def timed(fn) -> float:
        fn()  # warm-up
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            fn()
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
        return statistics.median(times)

    single = SingleEngine(cfgs[0], base, batch, g)

    def one():
        single.forward(True).loss.sum().backward()
        single.optimizer.zero_grad(set_to_none=True)

    pack = LoraPackEngine(cfgs, base, batch, g)

    def packed():
        pack.forward(True).loss.sum().backward()
        for x in pack.optimizer.tensors:
            x.grad = None

    lcfg = peft.LoraConfig(r=8, lora_alpha=16, target_modules=lora_targets(base.family, cfgs[0].lora),
                           fan_in_fan_out=base.family == "gpt2", task_type="CAUSAL_LM")
    mixed = peft.get_peft_model(copy.deepcopy(base.model), lcfg, adapter_name="m0")
    for j in range(1, k):
        mixed.add_adapter(f"m{j}", lcfg)
    for name, p in mixed.named_parameters():
        p.requires_grad_("lora_" in name)
    mixed.eval()  # peft refuses adapter_names= in training mode; the study trains in eval mode
    names = [f"m{j}" for j in range(k) for _ in range(batch.n)]
    ids, mask, last = batch.ids.repeat(k, 1), batch.mask.repeat(k, 1), batch.last.repeat(k)

    def peft_mixed():
        logits = mixed(input_ids=ids, attention_mask=mask, adapter_names=names, logits_to_keep=last[:, None]).logits
        torch.nn.functional.cross_entropy(logits[:, 0], torch.full((len(ids),), g)).backward()
        mixed.zero_grad(set_to_none=True)

    t1 = timed(one)
    return dict(k=k, one_s=t1, k_separate_s=k * t1, bmm_s=timed(packed), peft_mixed_s=timed(peft_mixed))


# ----------------------------------------------------------------------------------------------
# the driver


def run(spec: dict, inline: bool) -> dict:
    if inline:
        return measure(spec)
    proc = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)], env=dict(os.environ),
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"child {spec['kind']} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def memory_budget_gb(params: int) -> float:
    """fp32 weights + gradients + Adam (m, v) of the copy, plus the base it was copied from."""
    return params * (4 + 4 + 8 + 4) / 1e9


def report_pair(label: str, alone: dict, packed: dict, k: int, show_alone: bool = True) -> None:
    def line(name, r):
        rate = r["member_steps"] / r["wall_s"]
        extra = ""
        if r.get("cuda_peak_gb") is not None:
            per = (r["cuda_peak_gb"] - r["cuda_base_gb"]) / (k if name != "alone" else 1)
            fit = int((r["cuda_total_gb"] - r["cuda_base_gb"]) // per) if per > 0 else 0
            extra = (f"   GPU: {r['trials'] / r['wall_s']:.2f} trials/s, {per:.2f} GB a trial"
                     f" -> ~{fit} trials a card")
        print(f"  {name:<7} {r['wall_s']:7.1f} s wall  {r['train_s']:7.1f} s training  "
              f"{rate:6.2f} member-steps/s  peak {r['peak_gb']:.2f} GB{extra}")

    if show_alone:
        line("alone", alone)
    line(packed["kind"], packed)
    print(f"  => {label}: packed/alone speed-up {alone['wall_s'] / packed['wall_s']:.2f}x wall, "
          f"{alone['train_s'] / packed['train_s']:.2f}x training steps")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--random-init", action="store_true", help="the model's shapes, random weights")
    ap.add_argument("--shape", default="smollm2-135m", choices=sorted(SHAPES), help="with --random-init")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--full-steps", type=int, default=5)
    ap.add_argument("--lora-k", type=int, default=5, help="LoRA pack size (rates cycle, seeds differ)")
    ap.add_argument("--full-ks", default="2,3")
    ap.add_argument("--memory-trials", type=int, default=4)
    ap.add_argument("--repeat", type=int, default=1, help="LoRA alone/packed pairs, alternating")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--sweep-ks", default="1,2,3,5,8", help="LoRA pack sizes of the sweep")
    ap.add_argument("--only", default="lora,sweep,full,memory,kernels")
    ap.add_argument("--smoke", action="store_true", help="tiny-llama, 3 steps, in-process")
    ap.add_argument("--inline", action="store_true", help="measure in this process")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()

    import warnings

    warnings.filterwarnings("ignore")
    if args.child:
        print(json.dumps(measure(json.loads(args.child))))
        return 0
    if args.smoke:
        args.model, args.steps, args.full_steps, args.full_ks, args.memory_trials = "tiny-llama", 3, 2, "2", 2
        args.lora_k, args.inline, args.random_init, args.sweep_ks = 3, True, False, "1,2"

    import torch

    common = dict(model=args.model, shape=args.shape if args.random_init else None, threads=args.threads)
    device = f"cuda {torch.cuda.get_device_name()}" if torch.cuda.is_available() else "cpu"
    name = f"{args.shape} shapes, random init" if args.random_init else args.model
    print(f"device: {device}, {os.cpu_count()} cores, torch threads "
          f"{args.threads or torch.get_num_threads()}; model: {name}"
          f"; load average {os.getloadavg()[0]:.1f} (a shared machine inflates every figure)")
    sections = set(args.only.split(","))

    if "lora" in sections:
        lrs = [LORA_RATES[i % len(LORA_RATES)] for i in range(args.lora_k)]  # seeds differ
        spec = dict(common, protocol="lora", steps=args.steps, lrs=lrs)
        print(f"\nLoRA, {args.lora_k} trials ({len(set(lrs))} rates) x {args.steps} steps, one sentence:")
        ratios = []
        for _ in range(args.repeat):  # alternate, so a load change on a shared machine hits both
            alone = run(dict(spec, kind="alone"), args.inline)
            packed = run(dict(spec, kind="packed"), args.inline)
            report_pair(f"LoRA K={args.lora_k}", alone, dict(packed, kind="packed"), args.lora_k)
            ratios.append(alone["wall_s"] / packed["wall_s"])
        if args.repeat > 1:
            print(f"  => median over {args.repeat} pairs: {statistics.median(ratios):.2f}x wall"
                  f" (min {min(ratios):.2f}x, max {max(ratios):.2f}x)")

    if "full" in sections:
        for k in (int(x) for x in args.full_ks.split(",")):
            spec = dict(common, protocol="full", steps=args.full_steps, lrs=[FULL_RATES[i % len(FULL_RATES)] for i in range(k)])
            print(f"\nfull FT, K={k} x {args.full_steps} steps:")
            alone = run(dict(spec, kind="alone"), args.inline)
            for mode in ("packed", "loop"):
                r = dict(run(dict(spec, kind=mode), args.inline), kind=mode)
                report_pair(f"full K={k} {mode}", alone, r, k, show_alone=mode == "packed")

    if "memory" in sections:
        spec = dict(common, protocol="full", steps=3, lrs=[FULL_RATES[i % len(FULL_RATES)] for i in range(args.memory_trials)], kind="alone",
                    warmup=False)
        print(f"\nmemory: {args.memory_trials} full-FT trials in a row in one worker (SingleEngine):")
        for label in ("copy + Adam reused",):
            r = run(spec, args.inline)
            budget = memory_budget_gb(r["params"])
            print(f"  {label:<28} peak after each trial "
                  + " ".join(f"{p:.2f}" for p in r["peaks_gb"])
                  + f" GB; budget (weights+grads+Adam+base) {budget:.2f} GB -> {max(r['peaks_gb']) / budget:.2f}x"
                  + f" (process before loading: {r['rss_start_gb']:.2f} GB;"
                  + f" {1e3 * r['train_s'] / r['member_steps']:.0f} ms a training step)")

    if "sweep" in sections:
        ks = [int(x) for x in args.sweep_ks.split(",")]
        r = run(dict(common, protocol="lora", steps=args.steps, ks=ks, kind="sweep"), args.inline)
        step_s = {int(k): v for k, v in r["step_s"].items()}  # JSON made the keys strings
        print("\nLoRA pack size sweep (median pack step; member steps/s against K = 1):")
        for k, sec in step_s.items():
            gain = f"  {step_s[1] * k / sec:5.2f}x" if 1 in step_s else ""
            print(f"  K={k:<3} {sec * 1e3:7.0f} ms a pack step  {sec * 1e3 / k:6.0f} ms a member step{gain}")

    if "kernels" in sections:
        lrs = [LORA_RATES[i % len(LORA_RATES)] for i in range(args.lora_k)]
        spec = dict(common, protocol="lora", steps=1, lrs=lrs, kind="kernels")
        r = run(spec, args.inline)
        print(f"\nLoRA forward+backward over K={r['k']} copies of the context (median):")
        for key, label in (("one_s", "one trial"), ("k_separate_s", f"{r['k']} separate"),
                           ("bmm_s", "packed (bmm)"), ("peft_mixed_s", "peft adapter_names=")):
            print(f"  {label:<22} {r[key] * 1e3:8.1f} ms   {r[key] / r['one_s']:5.2f}x one")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
