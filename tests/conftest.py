"""Shared fixtures. Tests run on tiny models (milliseconds); real-model tests are marked smoke."""

from __future__ import annotations

import os

import pytest

# never touch the network or the user's hub cache from tests
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


@pytest.fixture(scope="session")
def tiny_models():
    """The three tiny families, loaded once per session (read-only: trials deep-copy them)."""
    from workers.models import load_model

    return {name: load_model(name) for name in ("tiny-gpt2", "tiny-neox", "tiny-llama")}
