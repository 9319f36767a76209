"""End to end: real tiny-model trials (`phantom trial`) and `phantom geometry` into one folder,
then `phantom analyze`, then the views answer consistently with the raw Parquet."""

import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from phantom.cli import main

RATES = ["1e-4", "3e-2"]


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep")
    for lr in RATES:
        assert main(["trial", "--model", "tiny-llama", "--sentence", "shame", "--protocol", "full",
                     "--lr", lr, "--steps", "6", "--out", str(out), "--quiet"]) == 0
    assert main(["geometry", "--model", "tiny-llama", "--out", str(out), "--pairs", "2000",
                 "--sentence", "shame"]) == 0
    return out


def test_analyze_real_trials(sweep, capsys):
    capsys.readouterr()
    assert main(["analyze", str(sweep), "--no-report"]) == 0
    out = capsys.readouterr().out
    assert "2 trials (2 ok)" in out
    steps = pq.read_table(sweep / "steps").to_pandas()
    summary = pq.read_table(sweep / "analysis" / "trial_summary.parquet").to_pandas()
    # the fits table: the model's bulk class (from the geometry probe) and its η_c count, as the
    # geometry and trial_summary tables say (one sentence: 1/1 when one rate flips and one does not)
    geometry = pq.read_table(sweep / "geometry" / "tiny-llama.parquet").to_pandas()
    flips = sorted(summary.flip_step.notna())
    row = next(line for line in out.splitlines() if line.startswith("tiny-llama") and " full " in line)
    assert row.split()[2] == geometry["class"].iloc[0]
    assert row.split()[-2] == ("1/1" if flips == [False, True] else "0/1")
    assert len(summary) == 2
    for _, s in summary.iterrows():
        mine = steps[steps.trial_id == s.trial_id].groupby("step").phi.mean().sort_index()
        phi = mine.to_numpy()
        d = np.abs(np.diff(phi))
        assert s.evaluations == 7 and s.phi0 == pytest.approx(phi[0])
        assert s.R == pytest.approx(d.max() / d.mean())
        pos = np.flatnonzero(phi > 0)
        want = 0 if phi[0] > 0 else (int(pos[0]) if pos.size else None)
        assert (None if np.isnan(s.flip_step) else int(s.flip_step)) == want


def test_query_views_answer(sweep, capsys):
    capsys.readouterr()
    assert main(["query", str(sweep), "SELECT g.model, g.class, s.gmax AS g_sentence, t.gmax AS g_trial "
                 "FROM geometry g JOIN geometry_sentences s USING (model) JOIN trials t "
                 "ON t.model = g.model AND t.sentence_id = s.sentence_id LIMIT 1", "--format", "json"]) == 0
    row = json.loads(capsys.readouterr().out)[0]
    assert row["model"] == "tiny-llama" and row["class"] in ("A", "B")
    # the inference-only probe and the trial's step 0 see the same G_max
    assert row["g_sentence"] == pytest.approx(row["g_trial"], abs=1e-6)
    assert main(["query", str(sweep), "SELECT count(*) AS n, count(DISTINCT lr) AS rates FROM steps",
                 "--format", "csv"]) == 0
    assert capsys.readouterr().out.splitlines() == ["n,rates", "14,2"]
