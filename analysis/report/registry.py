"""The report's figures and tables, registered as the views are (phantom.analysis.registry).

An entry is a key, a caption, the views it reads and the function that draws it (a figure) or
the ``SELECT`` that lists it (a table). The views are declared and checked when the entry is
registered: reading a view the view registry does not have is an error, and so is a table whose
SQL names a view it does not declare. What is built from this registry, nowhere else:

- the HTML report (phantom.analysis.report.page): a section per figure, then a section per table, in
  registration order;
- the Python API (phantom.Results): ``figures()``, ``figure(key)`` and one method per figure
  that names one (``phase_diagram()``, ``phi_curves()``, ...).

A figure's function takes a DuckDB connection with the analysis views and returns a
``matplotlib.figure.Figure``, or None when the folder has no data for it (the report then says
what is missing: ``missing``). ``optional``: an extension beyond the paper's grid (the
frozen-head ablation), left out of the report with one line when the folder has no data for it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from phantom.analysis.registry import RegistryError, ViewRegistry
from phantom.analysis.views import REGISTRY as VIEWS


@dataclass(frozen=True)
class FigureEntry:
    key: str
    caption: str
    reads: tuple[str, ...]
    draw: Callable  # (conn) -> matplotlib Figure | None
    missing: str  # what the folder needs for this figure (said when it has no data for it)
    optional: bool = False  # an extension beyond the paper's grid: no section without data
    method: str | None = None  # the Python API's method of the same figure (phantom.Results)


@dataclass(frozen=True)
class TableEntry:
    key: str
    caption: str
    reads: tuple[str, ...]
    sql: str  # the SELECT the report lists (its first rows)


@dataclass
class ReportRegistry:
    views: ViewRegistry
    figures: dict[str, FigureEntry] = field(default_factory=dict)
    tables: dict[str, TableEntry] = field(default_factory=dict)

    def figure(self, key: str, caption: str, *, reads: Iterable[str], missing: str,
               optional: bool = False, method: str | None = None):
        """Decorator: ``@REPORT.figure("phase", "Phase diagram ...", reads=("trial_summary",
        "fits"), missing="needs trials", method="phase_diagram")`` over ``(conn) -> Figure``."""
        reads = self._check("figure", key, tuple(reads), self.figures)
        if method is not None:
            taken = {f.method: f.key for f in self.figures.values() if f.method}
            if method in self.views or method in taken:
                who = f"the view '{method}'" if method in self.views else f"figure '{taken[method]}'"
                raise RegistryError(f"figure '{key}': method '{method}' is already {who}")

        def wrap(fn: Callable) -> Callable:
            self.figures[key] = FigureEntry(key, caption, reads, fn, missing, optional, method)
            return fn

        return wrap

    def table(self, key: str, caption: str, *, reads: Iterable[str], sql: str | None = None) -> TableEntry:
        """A table of the report: ``sql`` (default ``SELECT * FROM <the one view it reads>``)."""
        reads = self._check("table", key, tuple(reads), self.tables)
        if sql is None:
            if len(reads) != 1:
                raise RegistryError(f"table '{key}' reads {len(reads)} views: give its `sql`")
            sql = f"SELECT * FROM {reads[0]}"
        undeclared = sorted(set(self.views.named_in(sql)) - set(reads))
        if undeclared:
            raise RegistryError(f"table '{key}': its SQL reads {', '.join(undeclared)}, not declared in `reads`")
        entry = self.tables[key] = TableEntry(key, caption, reads, sql)
        return entry

    def methods(self) -> dict[str, FigureEntry]:
        """The figures the Python API has a method for, by method name."""
        return {f.method: f for f in self.figures.values() if f.method}

    def _check(self, kind: str, key: str, reads: tuple[str, ...], taken: dict) -> tuple[str, ...]:
        if key in taken:
            raise RegistryError(f"{kind} '{key}' is registered twice")
        if not reads:
            raise RegistryError(f"{kind} '{key}' reads no view: declare `reads`")
        for name in reads:
            if name not in self.views:
                raise RegistryError(f"{kind} '{key}' reads an unknown view '{name}'")
        return reads


# The report's registry; phantom.analysis.report.figures / figures_arch / tables register into it, and
# the face of phantom.analysis.report imports them all.
REPORT = ReportRegistry(VIEWS)
