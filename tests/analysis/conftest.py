import duckdb
import pytest

from analysis import db
from analysis.settings import AnalysisSettings


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
    from analysis.registry import ViewContext

    c = duckdb.connect()
    db.register_functions(c)
    db.define_views(c, ViewContext((), AnalysisSettings()), ["lr_ref"])
    yield c
    c.close()
