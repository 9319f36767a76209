"""The one real-model test: 2 steps on SmolLM2-135M through the GGUF path (~30 s)."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest

from phantom.config import TrainingConfig, TrialConfig
from phantom.errors import SentenceError
from phantom.workers.models import load_model
from phantom.workers.sentences import get_sentence
from phantom.workers.trial import resolve_ids, run_trial

pytestmark = pytest.mark.smoke


def test_smollm2_gguf_convert_cache_and_train(tmp_path, monkeypatch):
    monkeypatch.setenv("PHANTOM_CACHE", str(tmp_path / "cache"))
    lm = load_model("smollm2-135m")  # de-quantizes the GGUF from the wheel
    assert (tmp_path / "cache" / "models" / "smollm2-135m" / "model.safetensors").is_file()
    again = load_model("smollm2-135m")  # from the float cache
    assert lm.family == "llama" and lm.tied and again.tied
    E0, E1 = lm.input_embeddings(), again.input_embeddings()
    assert E0.shape == (49152, 576) and bool((E0 == E1).all())

    s = get_sentence("longing")
    cfg = TrialConfig(model="smollm2-135m", sentence_id=s.id, target=s.target, competitor=s.competitor,
                      contexts=s.contexts, protocol="full", lr=1e-4, training=TrainingConfig(steps=2))
    res = run_trial(cfg, tmp_path / "out", base=again)
    rows = pq.read_table(res.steps_path).to_pylist()
    assert res.status == "ok" and [r["step"] for r in rows] == [0, 1, 2]
    assert rows[2]["loss"] < rows[0]["loss"]  # two steps on one example do lower its CE
    assert rows[1]["dG_max"] > 0.0 and abs(rows[2]["phi"] - rows[2]["signal"] - rows[2]["drag"]) < 1e-6

    sk = get_sentence("skepticism")
    bad = cfg.replace(sentence_id=sk.id, target=sk.target, competitor=sk.competitor, contexts=sk.contexts)
    with pytest.raises(SentenceError, match="'scepticism' is not a single token"):
        resolve_ids(bad, lm.tokenizer)
