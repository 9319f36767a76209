"""`phantom predict` end to end: real tiny trials as the reference, a held-out tiny model."""

from __future__ import annotations

import json

import pytest

from phantom.cli import main
from phantom.config import TrainingConfig, TrialConfig
from phantom.workers.sentences import get_sentence, load_sentences
from phantom.models.tiny import PAPER_GMAX
from phantom.workers.trial import run_trial


def test_predict_for_a_model_that_was_never_finetuned(tmp_path, tiny_models, capsys):
    ref = tmp_path / "ref"
    for sid in ("longing", "awe", "shame", "relief"):
        s = get_sentence(sid)
        for lr in (1e-4, 1e-3, 1e-2, 1e-1):
            cfg = TrialConfig(model="tiny-llama", sentence_id=s.id, target=s.target, competitor=s.competitor,
                              contexts=s.contexts, protocol="lora", lr=lr, training=TrainingConfig(steps=20))
            run_trial(cfg, ref, base=tiny_models["tiny-llama"])
    assert main(["geometry", "--model", "tiny-llama", "--out", str(ref)]) == 0
    capsys.readouterr()
    assert main(["query", str(ref), "SELECT g.class, f.H FROM fits f JOIN geometry g USING (model) "
                 "WHERE f.protocol = 'lora'", "--format", "json"]) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert row["H"] is not None and row["H"] > 0

    assert main(["predict", "--model", "tiny-neox", "--protocol", "lora", "--lr", "1e-2",
                 "--reference", str(ref), "--format", "json"]) == 0
    p = json.loads(capsys.readouterr().out)
    # the held-out model is classified from its own bulk geometry: same class as the reference
    assert p["model_class"] == row["class"] and p["reference_models"] == ["tiny-llama"]
    assert p["H_class"] == pytest.approx(row["H"])
    # Eq. 22 by hand: η_c = η_ref / H̄, θ* = η_ref·Ḡ_max / H̄ with the planted G_max of every sentence
    gbar = sum(PAPER_GMAX.get(s, 0.6) for s in load_sentences()) / len(load_sentences())
    assert p["gmax_mean"] == pytest.approx(gbar, abs=1e-6)
    assert p["eta_c"] == pytest.approx(1e-4 / row["H"])
    assert p["theta"] == pytest.approx(1e-4 * gbar / row["H"], rel=1e-6)
    per = {s["sentence_id"]: s for s in p["sentences"]}
    assert per["longing"]["eta_c"] == pytest.approx(p["theta"] / 0.847, rel=1e-6)
    assert per["longing"]["above"] is (1e-2 > per["longing"]["eta_c"])
    assert p["reference"] == "class peers"

    # no reference model of its class: predicted from all other models, and it says so
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    (geo,) = (ref / "geometry").glob("tiny-llama*.parquet")
    t = pq.read_table(geo)
    other = "B" if row["class"] == "A" else "A"
    t = t.set_column(t.schema.get_field_index("class"), "class",
                     pc.cast(pc.if_else(pc.is_valid(t["class"]), other, other), t.schema.field("class").type))
    pq.write_table(t, geo)
    assert main(["predict", "--model", "tiny-neox", "--protocol", "lora", "--lr", "1e-2",
                 "--reference", str(ref), "--format", "json"]) == 0
    q = json.loads(capsys.readouterr().out)
    assert q["reference"] == "all others (no class peer)" and q["reference_models"] == ["tiny-llama"]
    assert q["model_class"] == row["class"] and q["theta"] == pytest.approx(p["theta"])
