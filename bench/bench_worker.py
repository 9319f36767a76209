"""Worker benchmark: model load (cold/warm), full-FT and LoRA step time, observable cost.

    python bench/bench_worker.py                    # smollm2-135m on this machine
    python bench/bench_worker.py --smoke            # tiny-llama, seconds
    python bench/bench_worker.py --random-init      # SmolLM2-135M shapes, random weights
                                                    # (for a GPU box without the wheel)

Prints one figure a line. The per-step figures are medians over the steps of a real trial
(the step_ms / obs_ms columns the worker writes), so they measure exactly what a sweep pays.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def smollm2_random():
    """SmolLM2-135M's architecture with random weights (the real shapes, no download)."""
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig

    from phantom.workers import tiny
    from phantom.workers.models import LoadedModel

    cfg = LlamaConfig(
        vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
        num_attention_heads=9, num_key_value_heads=3, max_position_embeddings=8192,
        rope_theta=100000.0, tie_word_embeddings=True, rms_norm_eps=1e-5,
    )
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(cfg).eval()
    tok = tiny.build_tokenizer()  # word-level ids < 49152: fine for timing
    return LoadedModel(name="smollm2-135m-random", model=model, tokenizer=tok, source="tiny")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--smoke", action="store_true", help="tiny-llama, 3 steps")
    ap.add_argument("--random-init", action="store_true", help="SmolLM2-135M shapes, random weights")
    ap.add_argument("--no-cold", action="store_true", help="skip the cold (GGUF) load")
    args = ap.parse_args()
    if args.smoke:
        args.model, args.steps, args.no_cold = "tiny-llama", 3, True

    import warnings

    import torch

    warnings.filterwarnings("ignore", category=FutureWarning)
    from phantom.config import TrainingConfig, TrialConfig
    from phantom.workers.models import load_model
    from phantom.workers.sentences import get_sentence
    from phantom.workers.trial import run_trial

    print(f"device: {'cuda ' + torch.cuda.get_device_name() if torch.cuda.is_available() else 'cpu'}"
          f", torch threads {torch.get_num_threads()}")
    if args.random_init:
        base = smollm2_random()
        print("model: SmolLM2-135M shapes, random init")
    else:
        if not args.no_cold and args.model in ("smollm2-135m", "gemma3-270m"):
            with tempfile.TemporaryDirectory() as cache:
                os.environ["PHANTOM_CACHE"] = cache
                t0 = time.perf_counter()
                load_model(args.model)
                cold = time.perf_counter() - t0
                t0 = time.perf_counter()
                base = load_model(args.model)
                warm = time.perf_counter() - t0
            print(f"load cold (GGUF de-quantize + cache write): {cold:.1f} s")
            print(f"load warm (from the float cache):            {warm:.2f} s")
        else:
            t0 = time.perf_counter()
            base = load_model(args.model)
            print(f"load: {time.perf_counter() - t0:.2f} s")

    s = get_sentence("longing")
    if args.random_init:
        s = get_sentence("awe")
    with tempfile.TemporaryDirectory() as out:
        for protocol, lr in (("full", 2e-5), ("lora", 1e-4)):
            cfg = TrialConfig(model=base.name, sentence_id=s.id, target=s.target, competitor=s.competitor,
                              contexts=s.contexts, protocol=protocol, lr=lr,
                              training=TrainingConfig(steps=args.steps))
            res = run_trial(cfg, out, base=base)
            import pyarrow.parquet as pq

            t = pq.read_table(res.steps_path).to_pydict()
            step = statistics.median(v for v in t["step_ms"][2:] if v is not None)  # skip warm-up
            ob = statistics.median(t["obs_ms"][2:])
            pool = statistics.median(t["pool_size"])
            print(f"{protocol:<5} step (fwd+bwd+AdamW): {step:8.1f} ms   observables: {ob:6.1f} ms"
                  f"   = {100 * ob / step:4.1f}% of the step   (median pool {pool:.0f} tokens)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
