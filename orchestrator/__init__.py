"""Run many trials: sweep files, grid expansion, Ray Tune dispatch, resume, status, η_c search.

Modules (imports run one way: the front door -> the search modes -> the engine):

- ``cli``: ``phantom sweep run | resume | status | validate``
- ``runner``: the front door: check, lock, Ray session, search mode, summary
- ``grid``, ``etac`` (+ ``bisect``): the search modes: every point; η_c by bisection (Optuna)
- ``engine``: the Ray session and Tune runs of pending trials as packs (fit / restore)
- ``plan``, ``packing``, ``lock``, ``capacity``: the folder's plan and leftovers, trial packs,
  one driver per folder, whether the cluster can run a pack
- ``expand``, ``resolve``: sweep -> trials; model names and tokenizers without torch
- ``config``, ``loader``: the sweep dataclasses; YAML with ``include:`` and ``--set``
- ``status``, ``progress``, ``trainable``: reading a folder (no Ray); the live view; the worker side

Importing this package imports neither Ray nor torch (``status`` and ``validate`` need neither).
"""

from orchestrator.config import (
    ResourcesConfig,
    SearchConfig,
    SentencesConfig,
    StopperConfig,
    SweepConfig,
)
from orchestrator.loader import load_sweep

__all__ = [
    "ResourcesConfig",
    "SearchConfig",
    "SentencesConfig",
    "StopperConfig",
    "SweepConfig",
    "load_sweep",
]
