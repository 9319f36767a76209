"""The study's files, shipped inside the package: the paper's sweeps (``lr50``, ``study``,
``paper-grid``, ``cross-arch``, ...) and its sentences (``sentences.yaml``).

This folder stays where users look for them in the repository (``sweeps/``) and installs as
``phantom.sweeps``, so a wheel carries them too: ``phantom sweeps`` lists them, ``phantom sweep
run lr50`` runs one by name, ``phantom sweep init lr50`` copies one (with the files it reads)
into the working folder to edit. A sweep file added here is shipped and listed without any
other change. This package reads nothing but its own folder and imports nothing of Phantom.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

SENTENCES = "sentences.yaml"  # the sentences every built-in sweep reads (and `phantom trial`'s default)
SUFFIX = ".yaml"


def folder() -> Path:
    """The folder that holds the shipped files (the repository's ``sweeps/`` in a checkout)."""
    return Path(str(files(__name__)))


def sentences_file() -> Path:
    """The shipped sentences file."""
    return folder() / SENTENCES


def names() -> list[str]:
    """The built-in sweeps, by name (the file name without ``.yaml``), sorted."""
    return sorted(p.name[: -len(SUFFIX)] for p in folder().glob(f"*{SUFFIX}") if p.name != SENTENCES)


def path(name: str) -> Path | None:
    """The file of the built-in sweep ``name``, or None when there is no such sweep."""
    return folder() / f"{name}{SUFFIX}" if name in names() else None
