"""The report's figures and tables are registered as the views are: with the views they read,
declared and checked (phantom.analysis.report.registry)."""

from __future__ import annotations

import ast
import inspect
import textwrap

import pytest

from phantom.analysis.registry import RegistryError
from phantom.analysis.report import REPORT
from phantom.analysis.report.registry import ReportRegistry
from phantom.analysis.views import REGISTRY


def test_reading_an_unknown_view_is_an_error():
    reg = ReportRegistry(REGISTRY)
    with pytest.raises(RegistryError, match=r"^figure 'x' reads an unknown view 'fitz'$"):
        reg.figure("x", "X", reads=("trial_summary", "fitz"), missing="-")
    with pytest.raises(RegistryError, match=r"^table 't' reads an unknown view 'nope'$"):
        reg.table("t", "T", reads=("nope",))
    with pytest.raises(RegistryError, match=r"^figure 'y' reads no view"):
        reg.figure("y", "Y", reads=(), missing="-")
    assert reg.figures == {} and reg.tables == {}


def test_a_table_declares_every_view_its_sql_reads():
    reg = ReportRegistry(REGISTRY)
    with pytest.raises(RegistryError, match=r"^table 't': its SQL reads geometry, not declared"):
        reg.table("t", "T", reads=("fits",), sql="SELECT * FROM fits JOIN geometry USING (model)")
    entry = reg.table("t", "T", reads=("fits",))
    assert entry.sql == "SELECT * FROM fits"
    with pytest.raises(RegistryError, match=r"^table 't' is registered twice$"):
        reg.table("t", "T", reads=("fits",))


def test_a_figure_method_never_hides_a_view_or_another_figure():
    reg = ReportRegistry(REGISTRY)
    with pytest.raises(RegistryError, match=r"method 'fits' is already the view 'fits'"):
        reg.figure("f", "F", reads=("fits",), missing="-", method="fits")
    reg.figure("a", "A", reads=("fits",), missing="-", method="draw_a")(lambda conn: None)
    with pytest.raises(RegistryError, match=r"method 'draw_a' is already figure 'a'"):
        reg.figure("b", "B", reads=("fits",), missing="-", method="draw_a")


def _sql_of(fn) -> str:
    """The SQL in a function: its string constants (f-strings' literal parts too) with a FROM
    (labels such as "fraction of trials that flip" are not SQL)."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))
    texts = [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)]
    return "\n".join(t for t in texts if "FROM " in t)


@pytest.mark.parametrize("key", list(REPORT.figures))
def test_every_figure_reads_only_the_views_it_declares(key):
    """The SQL of a figure's function names no registered view beyond its ``reads``."""
    f = REPORT.figures[key]
    code = _sql_of(f.draw)
    assert code, key
    assert set(REGISTRY.named_in(code)) <= set(f.reads), (key, REGISTRY.named_in(code), f.reads)
    assert set(f.reads) <= set(REGISTRY.named_in(code)), f"{key} declares a view it does not read"


def test_the_report_keeps_its_figures_tables_and_methods():
    assert list(REPORT.figures) == ["phase", "phi", "flip", "bulk", "H", "burial", "frozen-head"]
    assert [k for k, f in REPORT.figures.items() if f.optional] == ["frozen-head"]
    assert REPORT.methods()["phase_diagram"].key == "phase" and REPORT.methods()["phi_curves"].key == "phi"
    assert list(REPORT.tables) == ["fits", "uncertainty", "correlations", "isolation", "stopping", "ablation",
                                   "blind", "eta_c_sentence", "eta_c", "extra", "frozen_head_models", "frozen_head"]


def test_the_api_figure_methods_come_from_the_registry():
    from phantom import Results

    assert Results.figure_methods() == {name: f.key for name, f in REPORT.methods().items()}
    assert Results.figures() == {k: f.caption for k, f in REPORT.figures.items()}
    # a figure method never hides a view, nor a method of Results
    assert not set(Results.figure_methods()) & set(Results.views())
    assert not set(Results.figure_methods()) & set(dir(Results))
