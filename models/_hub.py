"""Hugging Face hub ids: the local cache, offline detection, the endpoint, and the one-line
message for a model that is neither cached nor reachable.

``huggingface_hub`` itself reads ``HF_HOME``, ``HF_ENDPOINT`` and ``HF_HUB_OFFLINE``; the probe
here reads the same variables so that an offline machine is told so in well under a second,
instead of after transformers' minute of retries.
"""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path
from urllib.parse import urlparse

from phantom.models._registry import registered

HUB_ID_RE = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
OFFLINE_VARS = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")  # huggingface_hub honours both
DEFAULT_ENDPOINT = "https://huggingface.co"


def is_hub_id(name: str) -> bool:
    """Whether ``name`` has the syntax of a hub id (``org/name`` or ``name``), not of a path."""
    return not name.startswith(("/", ".", "~")) and bool(HUB_ID_RE.match(name))


def hub_file(name: str, filename: str) -> Path | None:
    """The cached copy of ``filename`` of hub model ``name``, or None (nothing is downloaded)."""
    from huggingface_hub import try_to_load_from_cache

    try:
        path = try_to_load_from_cache(name, filename)
    except Exception:  # an id that is not even valid syntax is simply not cached
        return None
    return Path(path) if isinstance(path, str) else None


def hub_cached(name: str) -> bool:
    """Whether hub model ``name`` is in the local Hugging Face cache (its config is)."""
    return hub_file(name, "config.json") is not None


def hub_offline() -> bool:
    """Whether the environment says the hub is not to be contacted."""
    return any(os.environ.get(var, "").lower() in ("1", "true", "yes", "on") for var in OFFLINE_VARS)


def hub_reachable(timeout: float = 3.0) -> bool:
    """One quick TCP connect to ``HF_ENDPOINT`` (else the hub) instead of transformers' minute
    of retries when offline; False at once when the environment says offline."""
    if hub_offline():
        return False
    url = urlparse(os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT)
    port = url.port or (80 if url.scheme == "http" else 443)  # an http:// mirror listens on 80
    try:
        socket.create_connection((url.hostname, port), timeout=timeout).close()
        return True
    except OSError:
        return False


def offline_message(name: str) -> str:
    return (
        f"model '{name}' is not in the local Hugging Face cache and the hub is unreachable"
        " (no network or HF_HUB_OFFLINE=1); download it where the hub is reachable, or pass a"
        f" local directory. Registered offline models: {', '.join(registered())}"
    )
