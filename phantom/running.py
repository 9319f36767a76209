"""Running sweeps from Python: :func:`run`, :func:`resume` and :class:`RunResult` (the face is
phantom.api). They call what ``phantom sweep run`` and ``phantom sweep resume`` call
(:func:`phantom.orchestrator.run_file`, :func:`phantom.orchestrator.resume`), with the same
one-line errors.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from collections.abc import Mapping
from typing import Any

from phantom.errors import ConfigError
from phantom.reading import Results, open

__all__ = ["RunResult", "resume", "run"]

PathLike = str | os.PathLike


@dataclasses.dataclass(frozen=True)
class RunResult:
    """What :func:`run` or :func:`resume` did.

    Attributes:
        uri: The sweep folder (``STORAGE/NAME``); :meth:`open` reads it.
        ok: Whether the sweep (or, with ``only``, the selected trials) finished without an
            error: what exit status 0 means for ``phantom sweep run``.
        dispatched: Trials handed to Ray Tune by this call.
        already: Trials that were complete before it.
        restored: Whether an interrupted Ray Tune experiment was restored.
        selected: The trial ids ``only`` selected (None: the whole sweep).
    """

    uri: str
    ok: bool
    dispatched: int
    already: int
    restored: bool
    selected: tuple[str, ...] | None = None

    def open(self, all_trials: bool = False, **settings: Any) -> Results:  # noqa: A003
        """:func:`phantom.open` of this sweep's folder (same arguments)."""
        return open(self.uri, all_trials, **settings)


def run(sweep_file: PathLike, storage: PathLike | None = None, only: Mapping[str, Any] | None = None,
        address: str | None = None, verbose: bool = False, **overrides: Any) -> RunResult:
    """Run a sweep file, as ``phantom sweep run`` does: only what storage lacks runs.

    The progress view and the summary are printed to ``sys.stdout`` (a notebook cell's
    output); the run stops at the first error with the CLI's one-line message, before anything
    is written when the sweep file, a model, a sentence or ``only`` is wrong.

    Args:
        sweep_file: The sweep YAML (e.g. ``sweeps/lr50.yaml``), or the name of a built-in sweep
            (``"lr50"``; ``phantom sweeps`` lists them).
        storage: The results root (a path or URI); the data goes to ``STORAGE/NAME``
            (``--storage``; default: the file's ``storage`` key).
        only: Run only the trials with these values (``--only``): a mapping of ``model``,
            ``sentence``, ``protocol``, ``lr``, ``seed`` to a value or a list of values, e.g.
            ``{"protocol": "lora", "model": ["gemma3-270m", "smollm2-135m"]}``. The folder's
            plan stays the whole sweep.
        address: A Ray cluster to attach to (default: start Ray here, and stop it after).
        verbose: Show Ray's own logs, warnings and worker output (``--verbose``).
        **overrides: Sweep keys to override, one ``--set`` each: a double underscore separates
            nested keys and the value is a Python value, so ``training__steps=2`` is
            ``--set training.steps=2`` and ``models=["tiny-llama"]`` is
            ``--set models=[tiny-llama]``.

    Returns:
        The folder and the outcome; ``result.open()`` reads the results.

    Raises:
        ConfigError: The sweep file, an override or ``only`` is invalid.
        PhantomError: Any other error ``phantom sweep run`` reports (a model, a sentence, the
            folder's lock, storage).

    Example:
        ```python
        done = phantom.run("sweeps/lr50.yaml", storage="/tmp/runs",
                           models=["tiny-llama"], training__steps=2)
        done.ok, done.uri
        ```
    """
    from phantom.orchestrator import finished_ok, parse_only, run_file

    selected = parse_only(_only_specs(only))
    sets = [_set_spec(key, value) for key, value in overrides.items()]
    outcome = run_file(sweep_file, sets, storage=_text(storage), address=address, verbose=verbose,
                       stream=sys.stdout, only=selected)
    return _result(outcome, finished_ok(outcome))


def resume(folder: PathLike, errored: bool = False, only: Mapping[str, Any] | None = None,
           address: str | None = None, verbose: bool = False) -> RunResult:
    """Continue the sweep of an existing folder, as ``phantom sweep resume`` does.

    Args:
        folder: The sweep folder (``STORAGE/NAME``, as :attr:`RunResult.uri`).
        errored: Also re-run the trials that failed (``--errored``).
        only: Resume only these trials (as in :func:`run`).
        address: A Ray cluster to attach to.
        verbose: Show Ray's own logs, warnings and worker output.

    Returns:
        The folder and the outcome (``dispatched`` is 0 when nothing was left to run).

    Raises:
        StorageError: ``folder`` is not a sweep folder.
        PhantomError: Any other error ``phantom sweep resume`` reports.
    """
    from phantom.orchestrator import finished_ok, parse_only
    from phantom.orchestrator import resume as resume_sweep

    selected = parse_only(_only_specs(only))
    outcome = resume_sweep(_text(folder), address=address, rerun_errored=errored, verbose=verbose,
                           stream=sys.stdout, only=selected)
    return _result(outcome, finished_ok(outcome))


def _result(outcome, ok: bool) -> RunResult:
    return RunResult(outcome.uri, ok, outcome.dispatched, outcome.already, outcome.restored, outcome.selected)


def _text(path: PathLike | None) -> str | None:
    return None if path is None else os.fspath(path)


def _only_specs(only: Mapping[str, Any] | None) -> list[str]:
    """``{"model": ["a", "b"], "lr": 1e-3}`` -> ``["model=a,b", "lr=0.001"]`` (the ``--only``
    form, so parse_only checks it and words its errors as for the CLI)."""
    if only is None:
        return []
    if not isinstance(only, Mapping):
        raise ConfigError(f"`only` should be a mapping key -> value(s), e.g. {{'protocol': 'lora'}}, got {only!r}")
    specs = []
    for key, values in only.items():
        if not isinstance(values, (list, tuple, set, frozenset)):
            values = [values]
        specs.append(f"{key}=" + ",".join(str(v) for v in values))
    return specs


def _set_spec(key: str, value: Any) -> str:
    """``training__steps=2`` -> ``"training.steps=2"`` (the ``--set`` form: the value as YAML;
    JSON is YAML, and 1e-05 reads back as a float with the sweep loader)."""
    try:
        text = json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        raise ConfigError(f"override {key}={value!r}: not a value a sweep file can hold") from None
    return f"{key.replace('__', '.')}={text}"
