"""phantom.api: the notebook API answers as the command line does.

``open(...).sql`` returns what ``phantom query`` returns, through the same read-only connection
and statement check; the views are methods generated from the registry; the figures are the
report's, as matplotlib Figures; ``run`` / ``resume`` call what ``phantom sweep run / resume``
call; bad input raises the CLI's one-line error (compared with ``phantom``'s stderr).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

import phantom
from phantom.analysis.testing import random_grid, step_table, trial_record, write_trial
from phantom.orchestrator.testing import tiny_sweep
from phantom.cli import main
from phantom.errors import ConfigError, PhantomError, QueryError, StorageError

# every kind of trial (errors, divergences, several contexts, η_c brackets), as analysis tests use
SETTINGS = {"lr_ref": {"lora": 3e-4, "full": 3e-5}, "bootstrap": 50, "catapult": 12.0}
CLI_SETTINGS = ["--lr-ref", "lora=3e-4", "--lr-ref", "full=3e-5", "--bootstrap", "50", "--catapult", "12"]


@pytest.fixture(scope="module")
def grid(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("grid")
    random_grid(folder)
    return folder


@pytest.fixture(scope="module")
def res(grid):
    with phantom.open(grid, **SETTINGS) as r:
        yield r


def _three_trials(folder: Path) -> Path:
    """Three trials of one sentence at three rates."""
    for k, lr in enumerate([1e-5, 2e-5, 4e-5]):
        write_trial(folder, step_table(f"t{k}", [-0.1, 0.05 * k, 0.1 * k], lr=lr),
                    trial_record(f"t{k}", lr=lr, steps=2))
    return folder


@pytest.fixture
def small(tmp_path) -> Path:
    return _three_trials(tmp_path)


@pytest.fixture(scope="module")
def small_res(tmp_path_factory):
    """Results of three trials, no bootstrap: for what does not depend on the data."""
    folder = _three_trials(tmp_path_factory.mktemp("small"))
    with phantom.open(folder, bootstrap=0) as r:
        yield folder, r


def cli(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def rows(table) -> list[str]:
    """Rows as sorted reprs: order-free, NaN-safe, exact."""
    return sorted(repr(r) for r in table.to_pylist())


# ----------------------------------------------------------------------------------------------
# the package


def test_import_phantom_is_light():
    code = ("import sys, phantom; heavy = ('duckdb', 'matplotlib', 'ray', 'torch', 'analysis', 'orchestrator');"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"
    assert phantom.open is phantom.api.open and phantom.run is phantom.api.run
    assert set(phantom.__all__) >= {"open", "run", "resume", "Results", "RunResult"}


def test_every_public_function_and_class_has_a_docstring():
    import inspect

    from phantom import api

    for name in api.__all__:
        obj = getattr(api, name)
        assert obj.__doc__ and obj.__doc__.strip(), name
        if inspect.isclass(obj):
            for attr, member in vars(obj).items():
                if not attr.startswith("_") and callable(getattr(member, "__func__", member)):
                    assert getattr(obj, attr).__doc__, f"{name}.{attr}"


# ----------------------------------------------------------------------------------------------
# SQL and views


@pytest.mark.parametrize("sql", [
    "SELECT * FROM trial_summary ORDER BY trial_id",
    "SELECT * FROM fits ORDER BY model, protocol",
    "SELECT * FROM claims ORDER BY ord",
    "SELECT model, protocol, character, count(*) AS n FROM trial_summary GROUP BY ALL ORDER BY ALL",
])
def test_sql_returns_what_phantom_query_returns(res, grid, tmp_path, capsys, sql):
    out = tmp_path / "q.parquet"
    code, _, err = cli(capsys, "query", grid, sql, "--format", "parquet", "--out", out, *CLI_SETTINGS)
    assert code == 0, err
    expected = pq.read_table(out)
    got = res.sql(sql).to_arrow_table()
    assert got.num_rows > 0 and got.schema.names == expected.schema.names
    assert rows(got) == rows(expected)
    # .df(), .pl() and .arrow() hold the same rows (.arrow() streams batches in DuckDB 2)
    assert len(res.sql(sql).df()) == len(res.sql(sql).pl()) == expected.num_rows
    stream = res.sql(sql).arrow()
    assert rows(stream.read_all() if hasattr(stream, "read_all") else stream) == rows(expected)


def test_settings_reach_the_views(res):
    from phantom.analysis.settings import DEFAULT_LR_REF

    assert dict(res.sql("SELECT protocol, lr_ref FROM lr_ref").fetchall()) == {**DEFAULT_LR_REF, **SETTINGS["lr_ref"]}
    assert res.settings.catapult == 12.0 and res.settings.bootstrap == 50 and not res.settings.all_trials


def test_every_user_view_is_a_method(res):
    from phantom.analysis.registry import REGISTRY

    names = list(res.views())
    assert {"trials", "steps", "trial_summary", "fits", "claims", "eta_c"} <= set(names)
    internal = [v.name for v in REGISTRY.views.values() if v.internal]
    assert internal and not set(internal) & set(names)
    for name in names:
        method = getattr(res, name)
        assert method.__doc__ and name in dir(res)
        assert rows(method().to_arrow_table()) == rows(res.sql(f"SELECT * FROM {name}").to_arrow_table())
    # the internal steps are not methods, yet SQL reads them
    assert not hasattr(res, internal[0])
    res.sql(f"SELECT count(*) FROM {internal[0]}").fetchall()
    # a view never hides a method of Results
    assert not set(names) & {a for a in dir(phantom.Results) if not a.startswith("_")}


def test_a_newly_registered_view_is_a_method(small):
    from phantom.analysis.registry import REGISTRY, view

    @view("api_test_rates", reads=("trials",))
    def _rates(ctx):
        """The rates of the trials (registered by a test)."""
        return "SELECT DISTINCT lr FROM trials ORDER BY lr"

    try:
        with phantom.open(small) as r:
            assert r.views()["api_test_rates"] == "The rates of the trials (registered by a test)."
            assert r.api_test_rates().fetchall() == [(1e-5,), (2e-5,), (4e-5,)]
    finally:
        del REGISTRY.views["api_test_rates"]


def test_unknown_view_is_one_line_with_a_suggestion(res):
    with pytest.raises(QueryError, match=r"^Unknown view 'fitz'\. Did you mean 'fits'\? Available: ") as e:
        res.view("fitz")
    assert "\n" not in str(e.value)
    with pytest.raises(PhantomError, match=r"has no attribute 'fitz': Unknown view 'fitz'\. Did you mean 'fits'\?"):
        res.fitz()
    assert not hasattr(res, "fitz")


# statements that write: refused before they run, with phantom query's message
WRITES = ["CREATE TABLE x AS SELECT 1", "INSERT INTO trials SELECT * FROM trials", "DROP VIEW steps",
          "COPY trials TO 'OUT'", "ATTACH 'OUT' AS other", "SET threads = 1", "LOAD httpfs",
          "SELECT 1; SELECT 2", "", "SELEC 1", "SELECT nope FROM trials", "SELECT * FROM fitz"]


@pytest.mark.parametrize("sql", WRITES)
def test_refused_and_bad_statements_fail_as_phantom_query_does(small_res, tmp_path, capsys, sql):
    folder, res = small_res
    sql = sql.replace("OUT", str(tmp_path / "written"))
    code, out, err = cli(capsys, "query", folder, sql, "--bootstrap", "0")
    assert code == 2 and out == ""
    with pytest.raises(QueryError) as e:
        res.sql(sql)
    assert err == f"phantom: error: {e.value}\n"
    assert not (tmp_path / "written").exists()


def test_a_relation_cannot_write(res, grid, tmp_path):
    import duckdb

    before = {p: p.stat().st_mtime_ns for p in grid.rglob("*")}
    rel = res.trials()
    for write in (lambda: rel.to_table("x"), lambda: rel.create_view("v"),
                  lambda: rel.query("t", "DROP VIEW trials").fetchall(),
                  lambda: rel.query("t", "CREATE TABLE z AS SELECT 1").fetchall(),
                  lambda: rel.insert_into("trials"),
                  lambda: rel.write_csv(str(tmp_path / "x.csv"))):
        with pytest.raises(duckdb.Error):
            write()
    assert not (tmp_path / "x.csv").exists()
    assert {p: p.stat().st_mtime_ns for p in grid.rglob("*")} == before


def test_raw_views_do_not_wait_for_the_fits(small):
    """A statement on the raw views (trials, steps, ...) does not build trial_summary, the fits
    and their bootstrap; the first one that needs them does, and earlier relations still work."""
    with phantom.open(small) as r:
        trials = r.trials()
        joined = r.sql("SELECT s.trial_id, s.step FROM steps s JOIN trials t USING (trial_id)")
        assert len(joined.fetchall()) == 9 and list(r._conns) == ["raw"]
        assert len(r.fits().fetchall()) == 1 and set(r._conns) == {"raw", "all"}
        assert sorted(trials.project("trial_id").fetchall()) == [("t0",), ("t1",), ("t2",)]
        assert len(r.steps().fetchall()) == 9


def test_close_and_context_manager(small):
    with phantom.open(small) as r:
        rel = r.trial_summary()
        assert rel.aggregate("count(*)").fetchall()[0] == (3,)
        folders = [c.folder for c in r._conns.values()]
        assert len(folders) == 2 and all(os.path.isdir(f) for f in folders)
    assert r.closed and not any(os.path.exists(f) for f in folders)
    with pytest.raises(QueryError, match="^these results are closed"):
        r.trials()
    r.close()  # twice: harmless
    assert "closed" in repr(r)


# ----------------------------------------------------------------------------------------------
# what phantom.open accepts


def test_bad_paths_and_settings_fail_as_the_cli_does(small, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    cases = [
        ((tmp_path / "nope",), {}, [tmp_path / "nope"], StorageError),
        ((empty,), {}, [empty], StorageError),
        ((str(tmp_path / "no-match-*"),), {}, [tmp_path / "no-match-*"], StorageError),
        ((tmp_path / "nope.duckdb",), {}, [tmp_path / "nope.duckdb"], StorageError),
        ((small,), {"lr_ref": {"loraa": 1e-4}}, [small, "--lr-ref", "loraa=1e-4"], ConfigError),
        ((small,), {"lr_ref": {"lora": -1}}, [small, "--lr-ref", "lora=-1"], ConfigError),
        ((small,), {"catapult": 1.0}, [small, "--catapult", "1"], ConfigError),
        ((small,), {"bootstrap": -1}, [small, "--bootstrap", "-1"], ConfigError),
        ((small,), {"confidence": 1.5}, [small, "--confidence", "1.5"], ConfigError),
    ]
    for args, kw, argv, kind in cases:
        code, _, err = cli(capsys, "query", *argv, "SELECT 1")
        with pytest.raises(kind) as e:
            phantom.open(*args, **kw)
        assert code == 2 and err == f"phantom: error: {e.value}\n", (args, kw)
    # what only the API can get wrong
    for kw, message in [({"catapultt": 3}, r"^Unknown setting 'catapultt'\. Did you mean 'catapult'\?"),
                        ({"bootstrap": 1.5}, r"^`bootstrap` should be a whole number, got 1\.5$"),
                        ({"catapult": "12"}, r"^`catapult` should be a number, got '12'$"),
                        ({"lr_ref": 1e-4}, r"^`lr_ref` should be a mapping protocol -> rate")]:
        with pytest.raises(ConfigError, match=message):
            phantom.open(small, **kw)
    with pytest.raises(StorageError, match="^no results folder given$"):
        phantom.open([])


def test_open_the_duckdb_file_of_phantom_analyze(small):
    from phantom.analysis.commands.analyze import analyze
    from phantom.analysis.settings import AnalysisSettings

    analyze([str(small)], AnalysisSettings(bootstrap=20), report=False, progress=None)
    file = small / "analysis" / "phantom.duckdb"
    with phantom.open(file) as from_file, phantom.open(small, bootstrap=20) as live:
        assert from_file.paths == (str(file),) and from_file.settings is None
        for name in ("trials", "trial_summary", "fits", "claims"):
            assert rows(getattr(from_file, name)().to_arrow_table()) == rows(getattr(live, name)().to_arrow_table())
        assert len(from_file.phase_diagram().axes) == len(live.phase_diagram().axes) == 1
    with pytest.raises(ConfigError, match=r"settings \(all_trials, bootstrap\) do not apply to .*phantom\.duckdb"):
        phantom.open(file, all_trials=True, bootstrap=5)


def test_all_trials_and_several_folders(small, tmp_path):
    from phantom.analysis.testing import write_plan

    other = tmp_path / "other"
    write_trial(other, step_table("u0", [-0.1, 0.2, 0.3], lr=2e-5, sentence_id="s2"),
                trial_record("u0", lr=2e-5, steps=2, sentence_id="s2"))
    write_trial(other, step_table("u1", [-0.1, 0.2, 0.3], lr=4e-5, sentence_id="s2"),
                trial_record("u1", lr=4e-5, steps=2, sentence_id="s2"))
    write_plan(other, ["u0"])  # u1: a complete record outside the plan
    with phantom.open([small, other]) as r:
        assert sorted(t for (t,) in r.sql("SELECT trial_id FROM trials").fetchall()) == ["t0", "t1", "t2", "u0"]
        assert r.extra_trials().fetchall()[0][0] == "u1"
        assert r.paths == (str(small), str(other))
    with phantom.open([small, other], all_trials=True) as r:
        assert r.trials().aggregate("count(*)").fetchall()[0] == (5,)


# ----------------------------------------------------------------------------------------------
# figures


def _titles(fig) -> list[str]:
    return sorted(ax.get_title() for ax in fig.axes if ax.get_visible() and ax.get_title())


def test_figures_are_the_reports_as_matplotlib_figures(res):
    import matplotlib.pyplot as plt
    from matplotlib.figure import Figure

    groups = sorted(f"{m} / {p}" for m in ("m1", "m2") for p in ("full", "lora"))  # as random_grid writes
    phi = res.phi_curves()
    assert isinstance(phi, Figure) and _titles(phi) == groups
    for ax in phi.axes:
        if ax.get_visible():  # one labelled line per sentence the group has at η_ref
            model, protocol = ax.get_title().split(" / ")
            sentences = res.sql(f"SELECT DISTINCT sentence_id FROM reference_trials WHERE model = '{model}' "
                                f"AND protocol = '{protocol}' ORDER BY 1").fetchall()
            assert sorted(line.get_label() for line in ax.lines if not line.get_label().startswith("_")) == \
                [s for (s,) in sentences] and len(sentences) >= 2
    phase = res.phase_diagram()
    assert isinstance(phase, Figure) and _titles(phase) == groups
    # every trial that ran with an x is a point (pre-resolved trials have no flip to place,
    # errored ones did not train)
    n = res.sql("SELECT count(*) FROM trial_summary WHERE x > 0 AND character IS NOT NULL "
                "AND character NOT IN ('pre-resolved', 'error')").fetchall()[0][0]
    assert n > 0 and sum(len(c.get_offsets()) for ax in phase.axes for c in ax.collections) == n
    assert plt.get_fignums() == []  # not registered with pyplot: nothing to close, nothing leaks
    # the same drawing code as the report: its PNG comes from the same Figure
    from phantom.analysis.report import png

    assert png(phase)[:8] == b"\x89PNG\r\n\x1a\n"
    assert set(res.figures()) >= {"phase", "phi", "flip", "bulk", "H", "burial"}


def test_figure_errors(res):
    with pytest.raises(ConfigError, match=r"^Unknown figure 'phasee'\. Did you mean 'phase'\?"):
        res.figure("phasee")
    with pytest.raises(StorageError, match=r"^no data for the figure 'bulk' .*needs `phantom geometry"):
        res.figure("bulk")


# ----------------------------------------------------------------------------------------------
# running sweeps


def _sweep_file(tmp_path, **over) -> Path:
    import yaml

    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(tiny_sweep(**over)), encoding="utf-8")
    return path


def test_run_and_resume_fail_as_the_cli_does(tmp_path, capsys):
    import ray

    ray_was_up = ray.is_initialized()  # (placed before the test that starts Ray: it is not)
    path = _sweep_file(tmp_path)
    storage = tmp_path / "st"
    not_a_sweep = tmp_path / "plain"
    not_a_sweep.mkdir()
    runs = [
        ({"sweep_file": tmp_path / "missing.yaml", "storage": storage}, ["sweep", "run", tmp_path / "missing.yaml",
                                                                         "--storage", storage]),
        ({"sweep_file": path}, ["sweep", "run", path]),  # no storage
        ({"sweep_file": path, "storage": storage, "training__stepz": 2},
         ["sweep", "run", path, "--storage", storage, "--set", "training.stepz=2"]),
        ({"sweep_file": path, "storage": storage, "training__steps": 0},
         ["sweep", "run", path, "--storage", storage, "--set", "training.steps=0"]),
        ({"sweep_file": path, "storage": storage, "only": {"modle": "tiny-gpt2"}},
         ["sweep", "run", path, "--storage", storage, "--only", "modle=tiny-gpt2"]),
        ({"sweep_file": path, "storage": storage, "only": {"sentence": "awe"}},
         ["sweep", "run", path, "--storage", storage, "--only", "sentence=awe"]),
        ({"sweep_file": path, "storage": storage, "only": {"lr": [0.1, 1e-3]}},
         ["sweep", "run", path, "--storage", storage, "--only", "lr=0.1,0.001"]),
    ]
    for kw, argv in runs:
        code, _, err = cli(capsys, *argv)
        with pytest.raises(PhantomError) as e:
            phantom.run(**kw)
        assert code == 2 and err == f"phantom: error: {e.value}\n", kw
    code, _, err = cli(capsys, "sweep", "resume", not_a_sweep)
    with pytest.raises(StorageError) as e:
        phantom.resume(not_a_sweep)
    assert code == 2 and err == f"phantom: error: {e.value}\n"
    with pytest.raises(ConfigError, match=r"^override models=<object .*>: not a value a sweep file can hold$"):
        phantom.run(path, storage=storage, models=object())
    with pytest.raises(ConfigError, match=r"^`only` should be a mapping"):
        phantom.run(path, storage=storage, only=["model=tiny-gpt2"])
    assert not storage.exists() and ray.is_initialized() == ray_was_up


@pytest.mark.timeout(600)
def test_run_then_open_then_resume(ray_local, tmp_path, capsys):
    path = _sweep_file(tmp_path)  # tiny-gpt2, 5 steps: the overrides make it tiny-llama, 2 steps
    done = phantom.run(path, storage=tmp_path / "st", models=["tiny-llama"], training__steps=2)
    folder = tmp_path / "st" / "tiny"
    assert done == phantom.RunResult(str(folder), True, 4, 0, False, None)
    out = capsys.readouterr().out  # the CLI's progress and summary, on stdout as `phantom sweep run`
    assert "4 trials planned: 4 ok, 0 diverged, 0 error, 0 not done" in out
    with done.open() as r:
        trials = r.sql("SELECT trial_id, model, steps, status FROM trials").fetchall()
        assert len(trials) == len({t[0] for t in trials}) == 4
        assert {t[1:] for t in trials} == {("tiny-llama", 2, "ok")}
        steps = r.sql("SELECT trial_id, step FROM steps").fetchall()
        assert len(steps) == len(set(steps)) == 4 * 3
    before = {p: p.stat().st_mtime_ns for p in folder.rglob("*.parquet") if "ray" not in p.parts}

    again = phantom.resume(folder)
    assert again == phantom.RunResult(str(folder), True, 0, 4, False, None)
    assert "all 4 trials of tiny are complete: nothing to run" in capsys.readouterr().out
    after = {p: p.stat().st_mtime_ns for p in folder.rglob("*.parquet") if "ray" not in p.parts}
    assert {k: v for k, v in after.items() if k.name != "skipped.parquet"} == \
        {k: v for k, v in before.items() if k.name != "skipped.parquet"}
