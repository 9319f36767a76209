"""The frozen-head ablation: `frozen_head` pairs every lora-frozen-head trial with its lora twin
using trial_summary's own outcome columns, `frozen_head_models` gives gmax_head − gmax at step 0
per model, the report has the section and a figure (or the note when there are no such trials),
and on tiny-neox (an untied head) the two protocols really run and pair up."""

from __future__ import annotations

import pytest

from phantom.analysis import db
from phantom.analysis.report import png as to_png
from phantom.analysis.report.figures_arch import NO_FROZEN_HEAD, frozen_head
from phantom.analysis.report import build_report
from phantom.analysis.settings import AnalysisSettings
from phantom.analysis.testing import step_table, trial_record, write_trial
from phantom.storage import Store

T = 8
GMAX = {"s1": 0.4, "s2": 0.6}
HEAD = {"s1": 0.43, "s2": 0.58}  # the untied head's G_gc at step 0


def series(flip):
    """Φ_0..Φ_T with a jump at ``flip`` (None: never flips)."""
    return [-0.2 + 0.002 * t if flip is None or t < flip else 0.15 + 0.001 * t for t in range(T + 1)]


# (sentence, lr) -> (lora flip step, frozen-head flip step)
PLAN = {("s1", 1e-4): (3, None), ("s1", 1e-3): (2, 5), ("s2", 1e-4): (None, None), ("s2", 1e-3): (4, 4)}


def _trial(store, model, protocol, sid, lr, flip, *, seed=0, tied=False):
    tid = f"{model}-{protocol}-{sid}-{lr:g}-{seed}"
    write_trial(store, step_table(tid, series(flip), model=model, protocol=protocol, sentence_id=sid,
                                  lr=lr, seed=seed, gmax=GMAX[sid]),
                trial_record(tid, model=model, protocol=protocol, sentence_id=sid, lr=lr, seed=seed,
                             steps=T, gmax=GMAX[sid], gmax_head=GMAX[sid] if tied else HEAD[sid],
                             tied=tied))
    return tid


@pytest.fixture
def folder(tmp_path):
    store = Store.open(tmp_path / "r")
    for (sid, lr), (fl, ff) in PLAN.items():
        _trial(store, "untied", "lora", sid, lr, fl)
        _trial(store, "untied", "lora-frozen-head", sid, lr, ff)
        _trial(store, "tied", "lora", sid, lr, fl, tied=True)
    _trial(store, "untied", "lora-frozen-head", "s1", 1e-3, 5, seed=1)  # no lora twin
    return tmp_path / "r"


def test_pairs_use_trial_summary(folder, open_views):
    conn = open_views(folder)
    rows = db.records(conn, "SELECT * FROM frozen_head ORDER BY sentence_id, lr, seed")
    assert len(rows) == 5 and {r["model"] for r in rows} == {"untied"}
    summ = {r["trial_id"]: r for r in db.records(conn, "SELECT * FROM trial_summary")}
    for r in rows:
        f = summ[r["frozen_trial_id"]]
        assert r["frozen_flipped"] == f["flipped"] and r["frozen_flip_step"] == f["flip_step"]
        assert r["frozen_character"] == f["character"] and r["frozen_R"] == f["R"]
        assert r["frozen_phi_T"] == f["phi_T"]
        assert r["head_gap"] == pytest.approx(HEAD[r["sentence_id"]] - GMAX[r["sentence_id"]])
        assert r["tied"] is False
        if r["seed"] == 1:
            assert r["lora_trial_id"] is None and r["lora_flipped"] is None
            continue
        lo = summ[r["lora_trial_id"]]
        assert lo["protocol"] == "lora" and (lo["sentence_id"], lo["lr"], lo["seed"]) == \
            (r["sentence_id"], r["lr"], r["seed"])
        assert r["lora_flipped"] == lo["flipped"] and r["lora_flip_step"] == lo["flip_step"]
        assert r["lora_character"] == lo["character"] and r["lora_R"] == lo["R"]
        assert r["phi_T_diff"] == pytest.approx(f["phi_T"] - lo["phi_T"])
        # the planted flip steps
        fl, ff = PLAN[r["sentence_id"], r["lr"]]
        assert (r["lora_flip_step"], r["frozen_flip_step"]) == (fl, ff)
        assert r["same_outcome"] == ((fl is None) == (ff is None))


def test_per_model_head_gap_and_counts(folder, open_views):
    conn = open_views(folder)
    m = {r["model"]: r for r in db.records(conn, "SELECT * FROM frozen_head_models")}
    u, t = m["untied"], m["tied"]
    gaps = [HEAD[s] - GMAX[s] for s in GMAX]
    assert u["tied"] is False and u["n_sentences"] == 2
    assert u["head_gap_mean"] == pytest.approx(sum(gaps) / 2)
    assert u["head_gap_min"] == pytest.approx(min(gaps)) and u["head_gap_max"] == pytest.approx(max(gaps))
    assert u["head_gap_max_abs"] == pytest.approx(0.03)
    assert u["n_frozen_trials"] == 5 and u["n_pairs"] == 4
    # s1@1e-4: only lora; s1@1e-3 and s2@1e-3: both; s2@1e-4: neither
    assert (u["both_flip"], u["only_lora_flips"], u["only_frozen_flips"], u["neither_flips"]) == (2, 1, 0, 1)
    assert u["flip_step_diff_mean"] == pytest.approx(((5 - 2) + (4 - 4)) / 2)
    assert t["tied"] is True and t["head_gap_max_abs"] == 0 and t["n_frozen_trials"] == 0


def test_report_section_and_figure(folder, open_views, tmp_path):
    conn = open_views(folder)
    png = to_png(frozen_head(conn))
    assert png and png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    html = build_report(conn, AnalysisSettings())
    assert "id='fig-frozen-head'" in html and NO_FROZEN_HEAD not in html
    assert "id='table-frozen_head_models'" in html and "id='table-frozen_head'" in html
    # a folder with no lora-frozen-head trial: no section, one line, not a failure or an empty image
    store = Store.open(tmp_path / "none")
    _trial(store, "tied", "lora", "s1", 1e-4, 3, tied=True)
    conn2 = open_views(tmp_path / "none")
    assert frozen_head(conn2) is None
    html2 = build_report(conn2, AnalysisSettings())
    assert "id='fig-frozen-head'" not in html2 and f"No data for this figure: {NO_FROZEN_HEAD}" not in html2
    assert f"Not in this grid: LoRA with the LM head trainable against frozen (the frozen-head ablation) ({NO_FROZEN_HEAD})." in html2


def test_tiny_neox_lora_against_frozen_head(tmp_path, open_views, tiny_models):
    """tiny-neox has an untied head: both protocols run, pair up, and the head's G_gc at step 0
    is its own (not the embedding's)."""
    from phantom.config import TrainingConfig, TrialConfig
    from phantom.workers.sentences import get_sentence
    from phantom.workers.trial import run_trial

    s = get_sentence("longing")
    for protocol in ("lora", "lora-frozen-head"):
        cfg = TrialConfig(model="tiny-neox", sentence_id=s.id, target=s.target, competitor=s.competitor,
                          contexts=s.contexts, protocol=protocol, lr=1e-2,
                          training=TrainingConfig(steps=3))
        run_trial(cfg, tmp_path / "neox", base=tiny_models["tiny-neox"])
    conn = open_views(tmp_path / "neox")
    (row,) = db.records(conn, "SELECT * FROM frozen_head")
    assert row["tied"] is False and row["lora_trial_id"] and row["frozen_trial_id"]
    assert row["lora_status"] == row["frozen_status"] == "ok"
    assert row["head_gap"] != 0
    (m,) = db.records(conn, "SELECT * FROM frozen_head_models")
    assert m["n_pairs"] == 1 and m["head_gap_max_abs"] == pytest.approx(abs(row["head_gap"]))
