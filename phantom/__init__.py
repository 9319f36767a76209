"""Phantom: run, resume and analyse the phantom-transitions fine-tuning study at scale.

The project is split by concept (see README): ``workers`` runs one trial, ``orchestrator``
runs many with Ray Tune, ``analysis`` reads what they wrote with DuckDB. This package holds
what all three share: errors, configuration, paths and the command line, and the Python API
for notebooks (:mod:`phantom.api`): :func:`open` results, :func:`run` or :func:`resume` a sweep.
Importing it is light: DuckDB, matplotlib, Ray and torch load when a function needs them.
"""

from phantom.api import Results, RunResult, open, resume, run
from phantom.release import __version__

__all__ = ["Results", "RunResult", "__version__", "open", "resume", "run"]
