"""What each entry point imports: the heavy libraries a command may load, per command (issue 28).

A command runs in a fresh interpreter; at its exit the heavy top-level modules in ``sys.modules``
are compared with what that command is allowed. The CLI, ``validate``, ``status``, ``query`` and
the sweep driver never import torch or transformers; a trial imports peft only for a protocol
that uses it, and never Ray, DuckDB or matplotlib.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from phantom.orchestrator.testing import tiny_sweep
from phantom.testing import imports_after as imported

PREVIOUS = Path(__file__).parent / "data" / "previous-release" / "previous"


def write_sweep(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


@pytest.fixture
def folder(tmp_path) -> Path:
    """A finished results folder (the previous release's fixture, copied)."""
    return Path(shutil.copytree(PREVIOUS, tmp_path / "previous"))


def test_help_imports_no_heavy_library(tmp_path):
    got, out = imported(["--help"], tmp_path)
    assert got == set(), out
    got, out = imported(["query", "--help"], tmp_path)  # the list of views: the registry, not DuckDB
    assert not got & {"torch", "transformers", "ray", "duckdb", "scipy", "matplotlib", "pandas"}, (got, out)
    assert "trial_summary" in out


def test_validate_status_query_import_neither_torch_nor_transformers(folder, tmp_path):
    never = {"torch", "transformers", "peft", "accelerate", "ray", "scipy", "matplotlib"}
    got, out = imported(["sweep", "validate", str(write_sweep(tmp_path, tiny_sweep()))], tmp_path)
    assert not got & (never | {"duckdb"}), (got, out)
    got, out = imported(["sweep", "status", str(folder)], tmp_path)
    assert not got & (never | {"duckdb", "tokenizers"}), (got, out)
    assert "6 trials planned" in out
    got, out = imported(["query", str(folder), "SELECT count(*) AS n FROM trials"], tmp_path)
    assert "duckdb" in got and not got & (never | {"tokenizers"}), (got, out)


@pytest.mark.parametrize("protocol, peft", [("full", False), ("lora", True)])
def test_a_trial_imports_what_its_protocol_uses(protocol, peft, tmp_path):
    got, out = imported(["trial", "--model", "tiny-llama", "--sentence", "longing", "--protocol", protocol,
                         "--lr", "1e-4", "--steps", "1", "--quiet", "--out", str(tmp_path / "one")], tmp_path)
    assert {"torch", "transformers"} <= got, (got, out)
    assert ("peft" in got) is peft, (got, out)
    assert not got & {"ray", "duckdb", "matplotlib"}, (got, out)


def test_the_sweep_driver_imports_neither_torch_nor_transformers(tmp_path):
    sweep = write_sweep(tmp_path, tiny_sweep(models=["tiny-llama"], learning_rates=[1e-3], training={"steps": 1},
                                   sentences={"file": tiny_sweep()["sentences"]["file"], "ids": ["longing"]}))
    got, out = imported(["sweep", "run", str(sweep), "--storage", str(tmp_path / "st")], tmp_path)
    assert "ray" in got and "1 trials planned: 1 ok" in out, (got, out)
    assert not got & {"torch", "transformers", "peft", "accelerate", "duckdb", "scipy", "matplotlib"}, (got, out)
