"""Lazy faces (PEP 562): a package lists what it offers and the module that defines each name;
that module is imported the first time the name is read. Importing a face therefore costs
nothing: ``import phantom`` loads neither the analysis' DuckDB nor the workers' torch, and a
layer's own modules can import one another without loading the whole layer.

A face::

    __getattr__, __dir__, __all__ = face(__name__, {"run_sweep": "phantom.orchestrator.runner"})
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping


def face(package: str, names: Mapping[str, str]) -> tuple[Callable, Callable, list[str]]:
    """``__getattr__``, ``__dir__`` and ``__all__`` for ``package``: ``names`` maps each public
    name to the module that defines it under that name."""
    names = dict(names)

    def __getattr__(name: str):
        where = names.get(name)
        if where is None:
            raise AttributeError(f"module '{package}' has no attribute '{name}'")
        value = getattr(importlib.import_module(where), name)
        setattr(sys.modules[package], name, value)  # read once: later reads are plain attributes
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(names))

    return __getattr__, __dir__, sorted(names)
