"""``phantom sweep run | resume | status | compact | validate | init`` and ``phantom sweeps``
(:mod:`phantom.orchestrator`). ``validate`` and ``status`` import neither Ray nor torch."""

from __future__ import annotations

import argparse
import sys

from phantom.cli._options import positive_int

ONLY_HELP = ("run only the trials with these values (repeatable; keys model, sentence, protocol, lr, seed; "
             "e.g. --only protocol=lora --only model=gemma3-270m,smollm2-135m); the folder's plan stays "
             "the whole sweep")
SWEEP_HELP = "a sweep YAML file, or the name of a built-in sweep (e.g. lr50; `phantom sweeps` lists them)"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sweep", help="run, resume, inspect or validate a sweep (Ray Tune)")
    ssub = p.add_subparsers(dest="sweep_command", metavar="ACTION", required=True)

    r = ssub.add_parser("run", help="run a sweep file; only what is missing from storage runs")
    r.add_argument("file", metavar="SWEEP", help=SWEEP_HELP)
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
    s.add_argument("--take-over", default=None, metavar="HOST:PID",
                   help="take the folder's lock over now from the driver HOST:PID that holds it (as `sweep status` "
                        "names it), when you know that driver is gone; refused while it is provably alive")
    s.add_argument("--verbose", action="store_true", help="show Ray's own logs, warnings and worker output")
    s.set_defaults(run=resume_command)

    st = ssub.add_parser("status", help="counts, failures, skips, completeness (no Ray)")
    st.add_argument("path", help="the sweep folder (STORAGE/NAME)")
    st.set_defaults(run=status_command)

    c = ssub.add_parser("compact", help="move complete trials into a few large Parquet parts (fast to query)")
    c.add_argument("path", help="a results folder: a sweep folder STORAGE/NAME or a `phantom trial --out` folder")
    c.add_argument("--part-trials", type=positive_int, default=None, metavar="N",
                   help="trials per part at most (default 20000)")
    c.set_defaults(run=compact_command)

    v = ssub.add_parser("validate", help="check a sweep file: grid size and skipped pairs")
    v.add_argument("file", metavar="SWEEP", help=SWEEP_HELP)
    v.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=YAML")
    v.add_argument("--storage", default=None, help="show where the data would go")
    v.add_argument("--only", action="append", default=[], metavar="KEY=V[,V...]",
                   help="show how many trials `run --only` would select")
    v.set_defaults(run=validate_command)

    i = ssub.add_parser("init", help="copy a built-in sweep (and the files it reads) here, to edit")
    i.add_argument("name", metavar="NAME", help="a built-in sweep (`phantom sweeps` lists them)")
    i.add_argument("--dir", default=".", metavar="DIR", help="where to copy it (default: the working folder)")
    i.add_argument("--force", action="store_true", help="overwrite files that exist")
    i.set_defaults(run=init_command)

    ls = sub.add_parser("sweeps", help="list the built-in sweeps (the paper's grids, shipped with Phantom)")
    ls.set_defaults(run=list_command)


def _exit_code(outcome) -> int:
    """0 when the sweep (or, with --only, the selected trials) completed without an error."""
    from phantom.orchestrator import finished_ok

    return 0 if finished_ok(outcome) else 1


def run_command(args: argparse.Namespace) -> int:
    from phantom.orchestrator import parse_only, run_file

    outcome = run_file(args.file, args.overrides, storage=args.storage, address=args.address,
                       verbose=args.verbose, stream=sys.stdout, only=parse_only(args.only))
    return _exit_code(outcome)


def resume_command(args: argparse.Namespace) -> int:
    from phantom.orchestrator import parse_only, resume

    outcome = resume(args.path, address=args.address, rerun_errored=args.errored, verbose=args.verbose,
                     stream=sys.stdout, only=parse_only(args.only), take_over=args.take_over)
    return _exit_code(outcome)


def status_command(args: argparse.Namespace) -> int:
    from phantom.orchestrator import format_status, read_status

    st = read_status(args.path)
    print(format_status(st))
    return 0 if st.complete else 3


def compact_command(args: argparse.Namespace) -> int:
    from phantom.orchestrator import compact_folder

    for line in compact_folder(args.path, part_trials=args.part_trials, stream=sys.stdout):
        print(line)
    return 0


def validate_command(args: argparse.Namespace) -> int:
    from phantom.orchestrator import parse_only, validate_sweep

    for line in validate_sweep(args.file, args.overrides, storage=args.storage, only=parse_only(args.only)):
        print(line)
    return 0


def init_command(args: argparse.Namespace) -> int:
    from phantom.orchestrator import init_sweep

    written = init_sweep(args.name, args.dir, force=args.force)
    print(f"wrote {', '.join(str(p) for p in written)}")
    print(f"  edit it, then: phantom sweep validate {written[0]} && phantom sweep run {written[0]} --storage runs")
    return 0


def list_command(args: argparse.Namespace) -> int:
    from phantom.orchestrator import builtin

    entries = builtin()
    width = max(len(name) for name, _ in entries)
    print("built-in sweeps (phantom sweep run NAME; phantom sweep init NAME copies one to edit):")
    for name, description in entries:
        print(f"  {name:<{width}}  {description}")
    return 0
