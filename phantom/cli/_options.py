"""Option types and option groups that several subcommands share."""

from __future__ import annotations

import argparse
import math


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"should be a number, got '{text}'") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"should be a positive number, got '{text}'")
    return value


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"should be an integer, got '{text}'") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"should be at least 1, got '{text}'")
    return value


def add_settings(p: argparse.ArgumentParser) -> None:
    """The options of the analysis settings (science §4–5), as one group of ``p``."""
    from phantom.analysis import AnalysisSettings

    d = AnalysisSettings()
    g = p.add_argument_group("analysis settings (science §4–5)")
    g.add_argument("--lr-ref", action="append", metavar="PROTOCOL=RATE",
                   help="η_ref of a protocol (repeatable); defaults: "
                   + ", ".join(f"{k}={v:g}" for k, v in d.lr_ref))
    g.add_argument("--catapult", type=float, default=d.catapult, help="R threshold of 'catapult' (default %(default)s)")
    g.add_argument("--catapult-like", type=float, default=d.catapult_like, help="(default %(default)s)")
    g.add_argument("--intermediate", type=float, default=d.intermediate, help="(default %(default)s)")
    g.add_argument("--borderline", type=float, default=d.borderline, help="below it: 'drift' (default %(default)s)")
    g.add_argument("--saturation-window", type=int, default=d.saturation_window, help="Φ-saturation w (default %(default)s)")
    g.add_argument("--saturation-tol", type=float, default=d.saturation_tol, help="Φ-saturation tol (default %(default)s)")
    g.add_argument("--all-trials", action="store_true",
                   help="also analyse complete trial records that no plan.json names (view extra_trials)")
    g.add_argument("--bootstrap", type=int, default=d.bootstrap, metavar="N",
                   help="bootstrap resamples over sentences for the fit intervals, 0 = none (default %(default)s)")
    g.add_argument("--bootstrap-seed", type=int, default=d.bootstrap_seed, metavar="S",
                   help="seed of the bootstrap draw (default %(default)s)")
    g.add_argument("--confidence", type=float, default=d.confidence,
                   help="level of the bootstrap and Spearman intervals (default %(default)s)")
    g.add_argument("--mix-precisions", action="store_true",
                   help="fit trials of several precisions (fp32, bf16/fp32, ...) together; "
                   "refused by default (view precisions)")


def settings_from(args: argparse.Namespace):
    """The analysis settings of the options :func:`add_settings` adds."""
    from phantom.analysis import AnalysisSettings, parse_lr_ref

    base = AnalysisSettings(
        catapult=args.catapult, catapult_like=args.catapult_like, intermediate=args.intermediate,
        borderline=args.borderline, saturation_window=args.saturation_window,
        saturation_tol=args.saturation_tol, all_trials=args.all_trials, bootstrap=args.bootstrap,
        bootstrap_seed=args.bootstrap_seed, confidence=args.confidence, mix_precisions=args.mix_precisions,
    )
    return base.with_lr_ref(parse_lr_ref(args.lr_ref))
