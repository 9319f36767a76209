"""One root exception and a few leaves. The CLI turns any of them into one line and exit 2."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class PhantomError(Exception):
    """Root of every error a user can cause or fix (bad input, missing model, ...)."""


class ConfigError(PhantomError, ValueError):
    """A configuration value, key or file is invalid."""


class ModelError(PhantomError):
    """A model cannot be resolved or loaded."""


class SentenceError(PhantomError):
    """A sentence is unknown, or its target/competitor is not a single token."""


class StorageError(PhantomError):
    """Results storage is missing, unreadable or inconsistent."""


class QueryError(PhantomError):
    """A SQL query was refused or failed."""


class ClusterError(PhantomError):
    """The Ray cluster cannot run the trials: it cannot be reached, or its workers cannot start
    Phantom (another version, or none, on a node's path)."""


def suggest(name: str, choices: Iterable[str]) -> str:
    """``" Did you mean 'x'?"`` for a likely typo, else an empty string."""
    close = difflib.get_close_matches(str(name), [str(c) for c in choices], n=1, cutoff=0.6)
    return f" Did you mean '{close[0]}'?" if close else ""


def unknown(kind: str, name: str, choices: Iterable[str]) -> str:
    """The message for an unknown name: ``Unknown model 'x'. Did you mean 'y'? Available: ...``."""
    choices = sorted(str(c) for c in choices)
    return f"Unknown {kind} '{name}'.{suggest(name, choices)} Available: {', '.join(choices)}"
