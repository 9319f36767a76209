"""``phantom trial``: one fine-tuning trial, here, without Ray (:func:`phantom.workers.run_alone`)."""

from __future__ import annotations

import argparse
import sys

from phantom.cli._options import positive_float, positive_int
from phantom.protocols import PROTOCOLS, Protocol


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("trial", help="run one fine-tuning trial (no Ray) and write Parquet")
    p.add_argument("--model", required=True, help="registered name, local directory or hub id")
    p.add_argument("--sentence", required=True, help="sentence id from the sentences file")
    p.add_argument("--protocol", default=str(Protocol.FULL), help=" | ".join(PROTOCOLS))
    p.add_argument("--lr", required=True, type=positive_float, help="learning rate (> 0)")
    p.add_argument("--steps", required=True, type=positive_int, help="optimizer steps (>= 1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="results folder (local path or storage URI)")
    p.add_argument("--sentences", default=None, help="sentences YAML (default: the shipped sentences.yaml)")
    p.add_argument("--lora-r", type=positive_int, default=None)
    p.add_argument("--lora-alpha", type=positive_float, default=None)
    p.add_argument("--lora-targets", default=None, help="comma-separated module names")
    p.add_argument("--pool-mass", type=float, default=None, help="nucleus mass q (default 0.9)")
    p.add_argument("--pool-cap", type=int, default=None, help="K_max (default 1024)")
    p.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16", "fp16"),
                   help="training precision (auto: fp32 on a CPU, bf16 on a GPU); the observables "
                   "are read in fp32 whatever it is (default %(default)s)")
    p.add_argument("--phi-saturation", action="store_true",
                   help="stop once Φ plateaus after the flip (science §4.6; window 3, tol 0.01)")
    p.add_argument("--trust-remote-code", action="store_true")
    p.add_argument("--track", action="append", default=[], metavar="TRACKER",
                   help="also log to mlflow | tensorboard | wandb (repeatable; stores under --out)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=run)


def trial_config(args: argparse.Namespace):
    """The trial the options describe (validated: protocol, rate, sentence)."""
    from phantom.workers import trial_config as config

    lora = {}
    if args.lora_r is not None:
        lora["r"] = args.lora_r
    if args.lora_alpha is not None:
        lora["alpha"] = args.lora_alpha
    if args.lora_targets:
        lora["target_modules"] = tuple(t.strip() for t in args.lora_targets.split(",") if t.strip())
    observables = {}
    if args.pool_mass is not None:
        observables["pool_mass"] = args.pool_mass
    if args.pool_cap is not None:
        observables["pool_cap"] = args.pool_cap
    return config(args.model, args.sentence, lr=args.lr, steps=args.steps, protocol=args.protocol,
                  seed=args.seed, sentences=args.sentences, lora=lora, observables=observables,
                  phi_saturation=args.phi_saturation, trust_remote_code=args.trust_remote_code,
                  precision=args.precision)


def run(args: argparse.Namespace) -> int:
    from phantom.outcomes import TrialStatus
    from phantom.tracking import check_installed

    cfg = trial_config(args)  # validates protocol, lr, sentence: nothing written yet
    check_installed(args.track)

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from phantom.workers import run_alone

    err = sys.stderr
    print(f"loading {cfg.model} ...", file=err, flush=True)
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("Φ={task.fields[phi]:+.4f} loss={task.fields[loss]:.4f}"), TimeRemainingColumn()]
    with Progress(*columns, disable=args.quiet, transient=True, console=Console(stderr=True)) as bar:
        task = None

        def on_step(step: int, rows: list[dict]) -> None:
            nonlocal task
            if task is None:  # the bar appears once the model is loaded and the trial starts
                task = bar.add_task(f"{cfg.sentence_id} {cfg.protocol} lr={cfg.lr:g}", total=cfg.training.steps,
                                    phi=float("nan"), loss=float("nan"))
            bar.update(task, completed=step, phi=rows[0]["phi"], loss=rows[0]["loss"])

        result = run_alone(cfg, args.out, track=args.track, on_step=on_step, say=lambda m: print(m, file=err))
    f = result.final
    print(
        f"trial {result.trial_id}: {result.status} after {result.steps_done} steps in {result.wall_s:.1f}s"
        + (f" (Φ {f['phi']:+.4f}, loss {f['loss']:.4f}, rank_g {f['rank_g']}, rank_c {f['rank_c']}; "
           f"trained in {f['train_precision']}, observed in {f['obs_precision']})" if f else "")
    )
    if result.error:
        print(f"  {result.error}")
    if result.stop_reason:
        print(f"  stopped early: {result.stop_reason}")
    print(f"wrote {result.steps_path}\n      {result.trial_path}")
    return 0 if result.status is TrialStatus.OK else 1
