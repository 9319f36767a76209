import duckdb
import pytest

from phantom.analysis import db
from phantom.analysis.settings import AnalysisSettings


@pytest.fixture
def open_views():
    """connect(paths) → connection, closed after the test."""
    conns = []

    def _open(*paths, settings=None):
        c = db.connect([str(p) for p in paths], settings or AnalysisSettings())
        conns.append(c)
        return c

    yield _open
    for c in conns:
        c.close()


@pytest.fixture
def memdb():
    """An empty in-memory connection with the project's functions and the default lr_ref."""
    from phantom.analysis.registry import ViewContext

    c = duckdb.connect()
    db.register_functions(c)
    db.define_views(c, ViewContext((), AnalysisSettings()), ["lr_ref"])
    yield c
    c.close()


@pytest.fixture
def folder(tmp_path):
    """Three small trials (t0, t1, t2 at three rates) in one results folder."""
    from phantom.analysis.testing import step_table, trial_record, write_trial

    for k, lr in enumerate([1e-5, 2e-5, 4e-5]):
        write_trial(tmp_path, step_table(f"t{k}", [-0.1, 0.05 * k, 0.1 * k], lr=lr),
                    trial_record(f"t{k}", lr=lr, steps=2))
    return tmp_path
