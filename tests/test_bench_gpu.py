"""bench/bench_gpu.py --smoke: the one command that gives the GPU figures runs here, on the CPU,
and prints every figure it promises (docs/how-to/benchmarks.md)."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench" / "bench_gpu.py"
NUMBER = r"[-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_gpu", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_smoke_run_prints_every_figure(bench, capsys):
    assert bench.main(["--smoke"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].startswith("device: cpu (no GPU)")
    assert "grid: lr50, 2 sentences x 2 rates x 3 steps, full FT, precision auto" in lines
    assert re.search(rf"^cold: time to the first step {NUMBER} s", out, re.M)
    for mode in ("unpacked", "packed"):
        # 2 sentences x 2 rates, 3 steps each; `auto` on a CPU trains and observes in fp32
        assert f"{mode}: trials 4, trial steps 12" in out
        assert re.search(rf"^{mode}: .*precision fp32, observed in fp32$", out, re.M)
        for figure, unit in (("time to the first step", " s"), ("step time", " ms"), ("steps per second", "")):
            assert re.search(rf"^{mode}: {figure} {NUMBER}{unit}$", out, re.M), (mode, figure)
        assert f"{mode}: peak GPU memory n/a (no GPU)" in lines
    assert re.search(rf"^packed/unpacked: steps per second {NUMBER}x$", out, re.M)

    # step 0: bf16's own forward moves Φ₀; a bf16 trial records fp32's Φ₀ exactly
    fp32 = float(re.search(rf"^step-0 phi: fp32 ({NUMBER})$", out, re.M).group(1))
    forward = re.search(rf"^step-0 phi: bf16 autocast forward ({NUMBER}) \(fp32 - bf16 ({NUMBER})\)$", out, re.M)
    assert forward and float(forward.group(2)) != 0.0
    recorded = re.search(rf"^step-0 phi: recorded by a bf16 trial ({NUMBER}) \(fp32 trial - bf16 trial ({NUMBER}): "
                         r"observed in fp32\)$", out, re.M)
    assert recorded and float(recorded.group(1)) == pytest.approx(fp32, abs=1e-6) and float(recorded.group(2)) == 0.0
    assert re.search(rf"^step time: fp32 {NUMBER} ms, bf16 {NUMBER} ms \(with its fp32 observation forward, "
                     rf"alone {NUMBER} ms\)$", out, re.M)
