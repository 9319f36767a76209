"""Phantom: run, resume and analyse the phantom-transitions fine-tuning study at scale.

Everything installs under this one import root (docs/design/layout.md): ``phantom.workers``
runs one trial, ``phantom.orchestrator`` runs many with Ray Tune, ``phantom.analysis`` reads
what they wrote with DuckDB, ``phantom.models`` says where a model's weights come from. The
modules directly under ``phantom`` are the floor all of them use (errors, configuration,
schema, outcomes, storage) and, on top, the Python API for notebooks (:mod:`phantom.api`):
:func:`open` results, :func:`run` or :func:`resume` a sweep — and the command line
(:mod:`phantom.cli`).

This face is lazy: ``import phantom`` (or ``import phantom.errors``) loads none of the API, the
orchestrator or the analysis until a name below is read.
"""

from phantom.lazy import face
from phantom.release import __version__

__getattr__, __dir__, _names = face(__name__, {
    "Results": "phantom.api", "RunResult": "phantom.api", "open": "phantom.api",
    "resume": "phantom.api", "run": "phantom.api",
})
__all__ = [*_names, "__version__"]
