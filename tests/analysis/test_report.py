"""`phantom analyze` on a planted grid: files written, the DuckDB file opens in a fresh client,
and the HTML report renders in headless Chromium with every figure a non-empty image."""

import os
import re
import shutil
import subprocess

import duckdb
import numpy as np
import pytest

from phantom.analysis.commands.analyze import analyze
from phantom.analysis.testing import geometry_table, step_table, trial_record, write_trial
from phantom import layout
from phantom.storage import Store

RATES = [1e-5, 2e-5, 4e-5, 8e-5]
GMAX = {"s1": 0.4, "s2": 0.6, "s3": 0.8}


def jump_series(flip, T=12):
    if flip is None:
        return [-0.3 + 0.001 * t for t in range(T + 1)]
    return [-0.3 + 0.001 * t if t < flip else 0.2 + 0.0005 * t for t in range(T + 1)]


@pytest.fixture(scope="module")
def grid(tmp_path_factory):
    root = tmp_path_factory.mktemp("grid")
    store = Store.open(root)
    for model in ("alpha", "beta"):
        for protocol in ("full", "lora"):
            for sid, g in GMAX.items():
                for lr in RATES:
                    flips = lr * g > 1.5e-5  # the planted θ*_resolve boundary
                    tid = f"{model}-{protocol}-{sid}-{lr:g}"
                    write_trial(store, step_table(tid, jump_series(4 if flips else None), model=model,
                                                  protocol=protocol, sentence_id=sid, lr=lr, gmax=g),
                                trial_record(tid, model=model, protocol=protocol, sentence_id=sid,
                                             lr=lr, gmax=g, steps=12))
        store.write_table(geometry_table(model, mean_g2=0.05 if model == "alpha" else 0.003,
                                         cls="A" if model == "alpha" else "B", sentences=GMAX),
                          *layout.geometry_file(model))
    result = analyze([root], progress=None)
    return root, result


def test_analyze_writes_everything(grid):
    root, result = grid
    out = root / "analysis"
    for name in ("trial_summary", "fits", "correlations", "isolation", "stopping", "ablation",
                 "blind_prediction", "eta_c"):
        assert (out / f"{name}.parquet").is_file() and (out / f"{name}.csv").is_file()
    assert result.rows["trial_summary"] == 2 * 2 * 3 * 4
    assert "48 trials (48 ok)" in result.summary


def test_database_opens_in_any_client(grid):
    root, _ = grid
    conn = duckdb.connect(str(root / "analysis" / "phantom.duckdb"), read_only=True)
    try:
        # η_c per sentence: largest non-flipping and smallest flipping rate of the planted rule
        rows = conn.execute(
            "SELECT sentence_id, eta_c FROM eta_c WHERE model = 'alpha' AND protocol = 'lora' "
            "ORDER BY sentence_id").fetchall()
        expect = {}
        for sid, g in GMAX.items():
            no = max([lr for lr in RATES if lr * g <= 1.5e-5], default=None)
            yes = min([lr for lr in RATES if lr * g > 1.5e-5], default=None)
            expect[sid] = np.sqrt(no * yes) if no and yes else None
        assert {s: (round(e, 15) if e else None) for s, e in rows} == \
            {s: (round(e, 15) if e else None) for s, e in expect.items()}
        assert conn.execute("SELECT count(*) FROM steps").fetchall() == [(48 * 13,)]
        assert conn.execute("SELECT count(*) FROM geometry").fetchall() == [(2,)]
    finally:
        conn.close()


def _chromium():
    return shutil.which("chromium") or shutil.which("chromium-browser")


CHECK = """<script>
var errors = [];
window.addEventListener('error', function (e) { errors.push('error: ' + (e.message || e.target.src || e.type)); }, true);
window.addEventListener('load', function () {
  var imgs = document.images, bad = [];
  for (var i = 0; i < imgs.length; i++) {
    if (!imgs[i].complete || imgs[i].naturalWidth < 50 || imgs[i].naturalHeight < 50) bad.push(i);
  }
  var p = document.createElement('pre'); p.id = 'phantom-check';
  p.textContent = 'IMAGES=' + imgs.length + ' BAD=' + bad.join(',') + ' ERRORS=' + errors.length;
  document.body.appendChild(p);
});
</script>"""


@pytest.mark.skipif(not _chromium(), reason="Debian's chromium is not installed (apt-get install -y chromium)")
def test_report_renders_in_chromium(grid, tmp_path):
    root, _ = grid
    html = (root / "analysis" / "report.html").read_text()
    n_img = html.count("<img ")
    assert n_img == 6  # every figure has data in this grid
    page = tmp_path / "report.html"
    page.write_text(html.replace("<head>", "<head>" + CHECK, 1))
    proc = subprocess.run(
        [_chromium(), "--headless", "--no-sandbox", "--disable-gpu",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr",
         "--v=0", "--virtual-time-budget=5000", "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    m = re.search(r"IMAGES=(\d+) BAD=([\d,]*) ERRORS=(\d+)", proc.stdout)
    assert m, proc.stdout[-2000:]
    assert (int(m.group(1)), m.group(2), int(m.group(3))) == (n_img, "", 0)
    console = [l for l in proc.stderr.splitlines() if "CONSOLE" in l]
    assert console == []
