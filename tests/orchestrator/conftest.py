"""Fixtures for the orchestrator tests: sweep files in tmp_path (the local Ray, ``ray_local``, is
tests/conftest.py's)."""

from __future__ import annotations

import os

import pytest
import yaml

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_DEDUP_LOGS", "0")
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")


@pytest.fixture
def write_sweep(tmp_path):
    def write(data: dict | str, name: str = "sweep.yaml") -> Path:
        path = tmp_path / name
        path.write_text(data if isinstance(data, str) else yaml.safe_dump(data), encoding="utf-8")
        return path

    return write
