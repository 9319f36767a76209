"""The study's SQL views, registered in one place.

Each module below registers its views into :data:`phantom.analysis.registry.REGISTRY` when imported;
this face imports them all, so ``from phantom.analysis.views import REGISTRY`` is the complete
registry (what :mod:`phantom.analysis.db` defines, ``phantom query --help`` lists, the docs'
reference page describes and the Python API turns into methods). A new view module is added
to the import below, nowhere else.

- :mod:`~phantom.analysis.views.sources`: the raw views (which trials, their records, their steps,
  the geometry files) and the folders they come from;
- :mod:`~phantom.analysis.views.summary`: ``trial_steps``, ``trial_summary`` (science §4);
- :mod:`~phantom.analysis.views.precision`: each trial's precision label, and ``precisions``,
  whose check keeps one fit to one precision;
- :mod:`~phantom.analysis.views.fits`, :mod:`~phantom.analysis.views.bootstrap`: η_c, θ*, H, B_FT and their
  intervals (science §5);
- :mod:`~phantom.analysis.views.tables`: the paper's tables (correlations, isolation, stopping,
  ablation, blind prediction, frozen head);
- :mod:`~phantom.analysis.views.claims`: the paper's claims checked on the grid.
"""

from __future__ import annotations

from phantom.analysis.registry import REGISTRY, RegistryError, View, ViewContext, ViewRegistry
from phantom.analysis.views import bootstrap, claims, fits, precision, sources, summary, tables  # noqa: F401  (registers)

REGISTRY.validate()  # every view reads registered views, without a cycle

__all__ = ["REGISTRY", "RegistryError", "View", "ViewContext", "ViewRegistry"]
