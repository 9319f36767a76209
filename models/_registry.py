"""The registered model names: the embedded real models and the tiny test models.

A name that is not registered can still be a model: a local folder or a Hugging Face hub id
(:func:`phantom.models.resolve`). Registering records the kind and its spec: the :class:`Embedded`
of an embedded model, the transformers family of a tiny one.
"""

from __future__ import annotations

import os
from pathlib import Path

from phantom.models import tiny
from phantom.models._embedded import EMBEDDED, Embedded

KINDS = ("tiny", "embedded", "local", "hub")
_REGISTRY: dict[str, tuple[str, Embedded | str]] = {}  # name -> ('embedded', spec) | ('tiny', family)


def register(name: str, kind: str, spec: Embedded | str) -> None:
    """Register ``name`` as an embedded model (``spec``: its :class:`Embedded`) or a tiny one
    (``spec``: its family)."""
    if kind not in ("embedded", "tiny"):
        raise ValueError(f"register: `kind` should be 'embedded' or 'tiny', got {kind!r}")
    _REGISTRY[name] = (kind, spec)


def registered() -> list[str]:
    return sorted(_REGISTRY)


def registered_spec(name: str) -> tuple[str, Embedded | str] | None:
    """(kind, spec) of a registered name, else None."""
    return _REGISTRY.get(name)


def describe(name: str) -> str:
    """'embedded', 'tiny', 'local' or 'hub' — without loading or checking anything."""
    if name in _REGISTRY:
        return _REGISTRY[name][0]
    if Path(name).expanduser().is_dir():
        return "local"
    return "hub"


def cache_dir() -> Path:
    """Where converted weights live: $PHANTOM_CACHE, else ~/.cache/phantom."""
    return Path(os.environ.get("PHANTOM_CACHE") or Path.home() / ".cache" / "phantom").expanduser()


def cache_target(name: str) -> Path:
    """The float cache folder of an embedded model (``<cache>/models/<name>``)."""
    return cache_dir() / "models" / name


for _spec in EMBEDDED.values():
    register(_spec.name, "embedded", _spec)
for _name, _family in tiny.FAMILIES.items():
    register(_name, "tiny", _family)
