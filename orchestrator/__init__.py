"""Run many trials: sweep files, grid expansion, Ray Tune dispatch, resume, status, η_c search.

The face (lazy: importing it loads neither Ray nor torch) is what the command line and the
Python API call:

- :func:`run_file`, :func:`resume`, :func:`finished_ok`: ``phantom sweep run | resume``;
- :func:`read_status`, :func:`format_status`: ``phantom sweep status`` (no Ray);
- :func:`validate_sweep`: ``phantom sweep validate``; :func:`compact_folder`: ``phantom sweep compact``;
- :func:`load_sweep`, :func:`locate_sweep`, :func:`builtin`, :func:`init_sweep`: sweep files,
  the built-in ones by name (``phantom sweeps``, ``phantom sweep init``);
- :func:`parse_only`: the ``--only`` selection.

Modules (imports run one way: the front door -> the search modes -> the engine):

- ``runner``: the front door: check, lock, Ray session, search mode, summary
- ``grid``, ``etac`` (+ ``bisect``): the search modes: every point; η_c by bisection (Optuna)
- ``session``, ``engine``, ``watch``: the Ray session; Tune runs of pending trials as packs (fit /
  restore); units whose workers cannot start them
- ``plan``, ``packing``, ``lock``, ``capacity``: the folder's plan and leftovers, trial packs,
  one driver per folder, whether the cluster can run a pack
- ``expand``, ``resolve``: sweep -> trials; model names and tokenizers without torch
- ``config``, ``loader``, ``validate``: the sweep dataclasses; YAML with ``include:`` and ``--set``
- ``status``, ``progress``, ``trainable``: reading a folder (no Ray); the live view; the worker side
"""

from phantom.lazy import face

__getattr__, __dir__, __all__ = face(__name__, {
    "run_file": "phantom.orchestrator.runner", "resume": "phantom.orchestrator.runner",
    "finished_ok": "phantom.orchestrator.runner", "run_sweep": "phantom.orchestrator.runner",
    "Outcome": "phantom.orchestrator.engine",
    "read_status": "phantom.orchestrator.status", "sweep_status": "phantom.orchestrator.status",
    "format_status": "phantom.orchestrator.status", "SweepStatus": "phantom.orchestrator.status",
    "validate_sweep": "phantom.orchestrator.validate", "compact_folder": "phantom.orchestrator.compactor",
    "load_sweep": "phantom.orchestrator.loader", "locate_sweep": "phantom.orchestrator.loader",
    "builtin": "phantom.orchestrator.loader", "init_sweep": "phantom.orchestrator.loader",
    "parse_only": "phantom.orchestrator.only",
    "SweepConfig": "phantom.orchestrator.config", "ResourcesConfig": "phantom.orchestrator.config",
    "SearchConfig": "phantom.orchestrator.config", "SentencesConfig": "phantom.orchestrator.config",
    "StopperConfig": "phantom.orchestrator.config",
})
