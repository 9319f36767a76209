"""``phantom sweep run | resume | status | validate``.

Module-level imports stay light (no ray, torch, transformers): ``validate`` and ``status``
import neither Ray nor torch.
"""

from __future__ import annotations

import argparse
import sys

ONLY_HELP = ("run only the trials with these values (repeatable; keys model, sentence, protocol, lr, seed; "
             "e.g. --only protocol=lora --only model=gemma3-270m,smollm2-135m); the folder's plan stays "
             "the whole sweep")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sweep", help="run, resume, inspect or validate a sweep (Ray Tune)")
    ssub = p.add_subparsers(dest="sweep_command", metavar="ACTION", required=True)

    r = ssub.add_parser("run", help="run a sweep file; only what is missing from storage runs")
    r.add_argument("file", help="sweep YAML (e.g. sweeps/lr50.yaml)")
    r.add_argument("--address", default=None, help="Ray cluster to attach to (default: RAY_ADDRESS if set, else start Ray here)")
    r.add_argument("--storage", default=None, help="results root (path or URI); data goes to STORAGE/NAME")
    r.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=YAML",
                   help="override a key, e.g. --set training.steps=20 --set models=[tiny-llama]")
    r.add_argument("--only", action="append", default=[], metavar="KEY=V[,V...]", help=ONLY_HELP)
    r.add_argument("--verbose", action="store_true", help="show Ray's own logs, warnings and worker output")
    r.set_defaults(run=run_command)

    s = ssub.add_parser("resume", help="continue an interrupted sweep from its folder STORAGE/NAME")
    s.add_argument("path", help="the sweep folder (STORAGE/NAME)")
    s.add_argument("--errored", action="store_true", help="also re-run trials that failed")
    s.add_argument("--address", default=None, help="Ray cluster to attach to (default: RAY_ADDRESS if set, else start Ray here)")
    s.add_argument("--only", action="append", default=[], metavar="KEY=V[,V...]", help=ONLY_HELP)
    s.add_argument("--verbose", action="store_true", help="show Ray's own logs, warnings and worker output")
    s.set_defaults(run=resume_command)

    st = ssub.add_parser("status", help="counts, failures, skips, completeness (no Ray)")
    st.add_argument("path", help="the sweep folder (STORAGE/NAME)")
    st.set_defaults(run=status_command)

    c = ssub.add_parser("compact", help="move complete trials into a few large Parquet parts (fast to query)")
    c.add_argument("path", help="a results folder: a sweep folder STORAGE/NAME or a `phantom trial --out` folder")
    c.add_argument("--part-trials", type=_positive, default=None, metavar="N",
                   help="trials per part at most (default 20000)")
    c.set_defaults(run=compact_command)

    v = ssub.add_parser("validate", help="check a sweep file: grid size and skipped pairs")
    v.add_argument("file")
    v.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=YAML")
    v.add_argument("--storage", default=None, help="show where the data would go")
    v.add_argument("--only", action="append", default=[], metavar="KEY=V[,V...]",
                   help="show how many trials `run --only` would select")
    v.set_defaults(run=validate_command)


def finished_ok(outcome) -> bool:
    """Whether the sweep (or, with --only, the selected trials) completed without an error."""
    from orchestrator.status import read_records, sweep_status
    from phantom.outcomes import TrialStatus
    from phantom.storage import Store

    if outcome.selected is None:
        return sweep_status(outcome.uri).finished_ok
    table = read_records(Store.open(outcome.uri), set(outcome.selected))
    statuses = table.column("status").to_pylist() if table is not None else []
    return len(statuses) == len(set(outcome.selected)) and TrialStatus.ERROR.value not in statuses


def _exit_code(outcome) -> int:
    """0 when the sweep (or, with --only, the selected trials) completed without an error."""
    return 0 if finished_ok(outcome) else 1


def run_file(file, overrides=(), *, storage: str | None = None, address: str | None = None,
             verbose: bool = False, stream=None, only: dict[str, tuple] | None = None):
    """What ``phantom sweep run FILE`` does once its options are parsed (``phantom.run`` calls it
    too): load the sweep with its ``--set`` overrides, check its trackers are installed, run
    what is missing. Returns the runner's Outcome."""
    from orchestrator.loader import load_sweep
    from orchestrator.runner import run_sweep
    from phantom.storage_errors import translated
    from phantom.tracking import check_installed

    sweep, sentences = load_sweep(file, overrides)
    check_installed(sweep.tracking)  # a tracker without its package: fail before anything starts
    root = (storage or sweep.storage or "").rstrip("/")
    with translated(f"{root}/{sweep.name}"):  # a refused write: one line naming cause and path
        return run_sweep(sweep, sentences, storage=storage, address=address, verbose=verbose,
                         stream=stream, only=only)


def run_command(args: argparse.Namespace) -> int:
    from orchestrator.only import parse_only

    only = parse_only(args.only)
    outcome = run_file(args.file, args.overrides, storage=args.storage, address=args.address,
                       verbose=args.verbose, stream=sys.stdout, only=only)
    return _exit_code(outcome)


def resume_command(args: argparse.Namespace) -> int:
    from orchestrator.only import parse_only
    from orchestrator.runner import resume
    from phantom.storage import Store
    from phantom.storage_errors import check_store, translated

    only = parse_only(args.only)
    with translated(args.path):
        check_store(Store.open(args.path))
        outcome = resume(args.path, address=args.address, rerun_errored=args.errored, verbose=args.verbose,
                         stream=sys.stdout, only=only)
        return _exit_code(outcome)


def status_command(args: argparse.Namespace) -> int:
    from orchestrator.status import format_status, sweep_status
    from phantom.storage import Store
    from phantom.storage_errors import check_store, translated

    with translated(args.path):
        check_store(Store.open(args.path))
        st = sweep_status(args.path)
    print(format_status(st))
    return 0 if st.complete else 3


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"should be a whole number >= 1, got {text!r}")
    return value


def compact_command(args: argparse.Namespace) -> int:
    from orchestrator.lock import SweepLock
    from phantom import layout, results
    from phantom.errors import StorageError
    from phantom.storage import Store
    from phantom.storage_errors import check_store, translated

    store = Store.open(args.path)
    options = {"part_trials": args.part_trials} if args.part_trials else {}
    with translated(store.uri):  # an unreachable or refusing store: one line
        check_store(store)
        if not (store.exists(layout.TRIALS_DIR) or store.exists(layout.PARTS_DIR)):
            raise StorageError(f"no results in {store.uri}: expected a trials/ or parts/ folder")
        with SweepLock(store, stream=sys.stdout):  # one compactor at a time, never beside a driver
            out = results.compact(store, progress=lambda m: print(m, flush=True), **options)
    if not out.parts and not out.leftovers:
        print(f"{store.uri}: nothing to compact ({len(results.committed_parts(store))} parts, no loose trials)")
    elif out.leftovers:
        print(f"removed {out.leftovers} leftovers of an interrupted compaction")
    if out.kept_loose:
        print(f"left {out.kept_loose} trials loose: their files have columns this version does not know")
    return 0


def validate_command(args: argparse.Namespace) -> int:
    from orchestrator.loader import load_sweep
    from orchestrator.only import check_only, describe_only, parse_only, select
    from orchestrator.packing import check_packing, describe

    only = parse_only(args.only)
    sweep, sentences = load_sweep(args.file, args.overrides)
    check_packing(sweep)
    check_only(sweep, only)
    each = sweep.sentences.contexts == "each"
    points = "(model, sentence, context) points" if each else "(model, sentence) pairs"
    if sweep.search.mode == "eta-c":
        from orchestrator.etac import max_trials, plan_brackets

        brackets, grid = plan_brackets(sweep, sentences)
        s = sweep.search
        print(f"{sweep.name}: eta-c search over {len(brackets)} brackets ({points} x protocols x seeds),"
              f" lr in [{s.lr_min:g}, {s.lr_max:g}], to a factor {s.tolerance:g}")
        print(f"  at most {len(brackets)} x {max_trials(sweep)} trials, each stopped at its flip"
              f" (budget {sweep.training.steps} steps)")
    else:
        from orchestrator.expand import expand  # the grid mode's plan, without the engine's imports

        grid = expand(sweep, sentences)
        n_points = len({(t.model, t.sentence_id, t.context_index) for t in grid.trials})
        print(
            f"{sweep.name}: {len(grid.trials)} trials = {n_points} {points} x "
            f"{len(sweep.protocols)} protocols x {_rates(sweep)} rates x {len(sweep.seeds)} seeds,"
            f" {sweep.training.steps} steps each"
        )
        if only:
            print(f"  --only {describe_only(only)}: {len(select(grid.trials, only, sweep.name))} of them")
    for s in grid.skipped:
        print(f"  skipped {s.model} / {s.sentence_id}: {s.reason}")
    r = sweep.resources
    print(f"  each Tune trial reserves {r.cpus_per_trial:g} CPU, {r.gpus_per_trial:g} GPU; {describe(sweep)}")
    root = args.storage or sweep.storage
    if root:
        from phantom.storage import Store
        from phantom.storage_errors import check_store, translated

        with translated(root):  # reachable, credentials accepted, the bucket exists (nothing written)
            check_store(Store.open(root))
    print(f"  data: {root.rstrip('/')}/{sweep.name}" if root else "  data: (no storage set: pass --storage to run)")
    return 0


def _rates(sweep) -> str:
    counts = {p: len(sweep.rates(p)) for p in sweep.protocols}
    if len(set(counts.values())) == 1:
        return str(next(iter(counts.values())))
    return "(" + ", ".join(f"{n} {p}" for p, n in counts.items()) + ")"
