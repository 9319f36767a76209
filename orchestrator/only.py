"""``--only KEY=V1,V2``: run part of a grid sweep now, keep the whole sweep as its plan.

A sweep that does not fit one pass of a small machine (``sweeps/cross-arch.yaml``: LoRA on three
models first, then the memory-heavy full fine-tuning one model at a time) runs in passes
selected with ``--only``. Unlike narrowing the file with ``--set models=[...]`` — which makes a
*different* sweep, whose plan then replaces the folder's — the folder's ``plan.json`` stays the
whole sweep, so ``sweep status`` counts what every pass left to do and ``phantom analyze``
reads every pass's trials without ``--all-trials``.

Keys: ``model``, ``sentence``, ``protocol``, ``lr``, ``seed``. A trial is selected when, for
every key given, its value is one of the listed values (keys AND, values OR); a key given twice
takes the union of its values. A value the sweep has no trial with is refused in one line.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from phantom.config import TrialConfig
from phantom.errors import ConfigError, unknown

KEYS = {"model": "model", "sentence": "sentence_id", "protocol": "protocol", "lr": "lr", "seed": "seed"}


def parse_only(specs: Sequence[str] | None) -> dict[str, tuple]:
    """``["model=a,b", "protocol=lora"]`` -> ``{"model": ("a", "b"), "protocol": ("lora",)}``."""
    only: dict[str, tuple] = {}
    for spec in specs or ():
        key, sep, values = spec.partition("=")
        key = key.strip()
        if not sep or not values.strip():
            raise ConfigError(f"--only {spec!r}: expected KEY=VALUE[,VALUE...], e.g. --only model=gemma3-270m")
        if key not in KEYS:
            raise ConfigError(f"--only: {unknown('key', key, KEYS)}")
        parsed = []
        for v in values.split(","):
            v = v.strip()
            if key in ("lr", "seed"):
                try:
                    parsed.append(float(v) if key == "lr" else int(v))
                except ValueError:
                    kind = "a number" if key == "lr" else "an integer"
                    raise ConfigError(f"--only {key}={v!r}: not {kind}") from None
            else:
                parsed.append(v)
        only[key] = only.get(key, ()) + tuple(parsed)
    return only


def _same(key: str, a, b) -> bool:
    return math.isclose(a, b, rel_tol=1e-9) if key == "lr" else a == b


def _show(key: str, value) -> str:
    return f"{value:g}" if key == "lr" else str(value)


def check_only(sweep, only: dict[str, tuple]) -> None:
    """``--only`` selects trials of a grid; an η_c search chooses its own rates."""
    if only and not sweep.search.mode.selects:
        raise ConfigError("--only selects trials of a grid sweep; an eta-c search chooses its own rates "
                          "(narrow it with --set, e.g. --set models=[...])")


def select(trials: Iterable[TrialConfig], only: dict[str, tuple], name: str) -> list[TrialConfig]:
    """The trials of ``trials`` that ``only`` selects (all of them when it is empty); a value
    that no trial of the sweep has, or a combination that selects nothing, is a ConfigError."""
    trials = list(trials)
    if not only:
        return trials
    for key, values in only.items():
        have = {getattr(t, KEYS[key]) for t in trials}
        for v in values:
            if not any(_same(key, v, h) for h in have):
                shown = ", ".join(_show(key, h) for h in sorted(have))
                raise ConfigError(f"--only {key}={_show(key, v)}: no trial of {name} has it; its values: {shown}")
    chosen = [t for t in trials
              if all(any(_same(k, getattr(t, KEYS[k]), v) for v in vs) for k, vs in only.items())]
    if not chosen:
        raise ConfigError(f"--only {describe_only(only)}: selects no trial of {name}")
    return chosen


def describe_only(only: dict[str, tuple]) -> str:
    return " ".join(f"{k}={','.join(_show(k, v) for v in vs)}" for k, vs in only.items())
