"""Run many trials: sweep files, grid expansion, Ray Tune dispatch, resume, status, η_c search.

Importing this package does not import Ray (``status`` and ``validate`` never need it); the
modules that do (``runner``, ``progress``, ``trainable``, ``etac``) import it themselves.
"""

from orchestrator.config import (
    ResourcesConfig,
    SearchConfig,
    SentencesConfig,
    StopperConfig,
    SweepConfig,
)
from orchestrator.loader import load_sweep
from orchestrator.status import SweepStatus, sweep_status

__all__ = [
    "ResourcesConfig",
    "SearchConfig",
    "SentencesConfig",
    "StopperConfig",
    "SweepConfig",
    "SweepStatus",
    "load_sweep",
    "sweep_status",
]
