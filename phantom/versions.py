"""What software a trial ran on: the ``versions`` JSON of every trial record.

Besides the main packages' versions it names the lock the environment was installed from
(``requirements/lock.txt``, scripts/lock.sh) by the first 16 hex digits of its SHA-256, and
``lock_drift``: the locked packages whose installed version differs from the lock (empty when
the environment is exactly the lock; torch is compared with ``requirements/torch.txt``, local
build labels such as ``+cpu`` aside). Computed once per process.
"""

from __future__ import annotations

import hashlib
import platform
import re
from functools import lru_cache
from importlib import metadata
from pathlib import Path

from phantom.release import __version__

REPO = Path(__file__).resolve().parents[1]
LOCK_FILE = REPO / "requirements" / "lock.txt"
TORCH_FILE = REPO / "requirements" / "torch.txt"
PACKAGES = ("torch", "transformers", "peft", "accelerate", "ray")
MAX_DRIFT = 20  # entries listed; the count says how many there are

_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;]+)\s*(?:;\s*(.+))?$")


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def file_hash(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    except OSError:
        return None


def pins(path: Path) -> dict[str, str]:
    """``name -> version`` of the ``name==version`` lines of a requirements file whose
    environment marker (if any) holds here."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return {}
    out: dict[str, str] = {}
    for line in lines:
        m = _PIN.match(line.split("#", 1)[0].strip())
        if not m:
            continue
        name, version, marker = m.groups()
        if marker:
            try:
                from packaging.markers import Marker

                if not Marker(marker).evaluate():
                    continue
            except Exception:  # noqa: BLE001 - no packaging, or a marker it cannot read: compare anyway
                pass
        out[_norm(name)] = version
    return out


def drift(locked: dict[str, str]) -> list[str]:
    """``'name installed (lock X)'`` for each locked package installed at another version or missing."""
    out = []
    for name, want in sorted(locked.items()):
        try:
            have = metadata.version(name)
        except metadata.PackageNotFoundError:
            out.append(f"{name} missing (lock {want})")
            continue
        if have != want and have.split("+", 1)[0] != want:
            out.append(f"{name} {have} (lock {want})")
    return out


@lru_cache(maxsize=1)
def versions() -> dict:
    """The software of this process: phantom, Python, the main packages, the lock and the drift."""
    out: dict = {"phantom": __version__, "python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    out["lock"] = file_hash(LOCK_FILE)
    if out["lock"] is not None:
        found = drift({**pins(LOCK_FILE), **pins(TORCH_FILE)})
        out["lock_drift"] = found[:MAX_DRIFT] + ([f"... {len(found) - MAX_DRIFT} more"] if len(found) > MAX_DRIFT else [])
    return out
