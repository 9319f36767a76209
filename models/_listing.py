"""What ``phantom models`` shows: read from the specs, package metadata and the cache folder's
files, never from weights (no torch)."""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from pathlib import Path

from phantom.errors import ModelError, unknown
from phantom.models._embedded import missing_requirements, read_marker
from phantom.models._registry import registered
from phantom.models._source import resolve


@dataclass(frozen=True)
class ModelInfo:
    name: str
    source: str  # embedded | tiny
    tied: bool | None
    params: int | None
    state: str  # cached | installed | not-installed | on-demand
    install: str | None = None  # the pip command, when not installed


def safetensors_params(path: Path) -> int | None:
    """Number of parameters stored in a safetensors file, from its JSON header only."""
    try:
        with path.open("rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(n))
    except (OSError, ValueError, struct.error):
        return None
    total = 0
    for key, meta in header.items():
        if key != "__metadata__":
            count = 1
            for dim in meta["shape"]:
                count *= dim
            total += count
    return total


def _cached_tied(target: Path, marker: dict) -> bool | None:
    if "tied" in marker:
        return bool(marker["tied"])
    try:  # caches written before phantom.json recorded it
        config = json.loads((target / "config.json").read_text())
    except (OSError, ValueError):
        return None
    value = config.get("tie_word_embeddings", (config.get("text_config") or {}).get("tie_word_embeddings"))
    return None if value is None else bool(value)


def model_info(name: str) -> ModelInfo:
    """Source, head, parameter count and cache state of a registered model (no weights read)."""
    if name not in registered():
        raise ModelError(unknown("model", name, registered()))
    source = resolve(name)
    if source.kind == "tiny":
        return ModelInfo(name, source.kind, source.tied, None, "on-demand")
    spec, target = source.embedded, source.path
    if source.cached:
        marker = read_marker(target)
        tied = _cached_tied(target, marker)
        params = marker.get("params") or safetensors_params(target / "model.safetensors")
        return ModelInfo(name, source.kind, spec.tied if tied is None else tied, params, "cached")
    missing = missing_requirements(spec)
    if missing:
        return ModelInfo(name, source.kind, spec.tied, None, "not-installed", spec.install_command(missing))
    return ModelInfo(name, source.kind, spec.tied, None, "installed")
