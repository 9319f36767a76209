"""Reading results from Python: :func:`open` and :class:`Results` (the face is phantom.api).

:func:`open` reads results through the read-only connection of ``phantom query`` (``connect_readonly``
of :mod:`phantom.analysis`, with the statement check of ``phantom query``). What the results
offer is generated from the registries, never listed here: the view methods from the view
registry (phantom.analysis.views), the figures and their methods (``phase_diagram()``, ``phi_curves()``,
...) from the report's registry (phantom.analysis.report), so a view or a figure registered later is a
method without any change here.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from phantom.errors import ConfigError, QueryError, StorageError, unknown

if TYPE_CHECKING:  # pragma: no cover
    import duckdb
    from matplotlib.figure import Figure

    from phantom.analysis import AnalysisSettings

__all__ = ["Results", "UnknownViewError", "open"]

PathLike = str | os.PathLike


class UnknownViewError(QueryError, AttributeError):
    """A view that the registry does not have (also an AttributeError, so ``hasattr`` works)."""


# ----------------------------------------------------------------------------------------------
# results


def open(paths: PathLike | Iterable[PathLike], all_trials: bool = False, **settings: Any) -> Results:  # noqa: A001
    """Open results for reading, as ``phantom query`` does.

    Args:
        paths: A results folder (it has ``trials/``), a storage root holding several sweep
            folders, a glob of either, a list of any of these, or the ``phantom.duckdb`` file
            that ``phantom analyze`` writes.
        all_trials: Also analyse complete trial records that no plan names (``--all-trials``).
        **settings: The analysis settings of ``phantom analyze`` / ``phantom query``, by the
            field names of ``phantom.analysis.settings.AnalysisSettings``: ``catapult``,
            ``catapult_like``, ``intermediate``, ``borderline``, ``saturation_window``,
            ``saturation_tol``, ``bootstrap``, ``bootstrap_seed``, ``confidence``,
            ``mix_precisions`` (fit trials of several precisions together), and
            ``lr_ref`` as a mapping protocol -> rate (merged with the defaults, like
            ``--lr-ref``).

    Returns:
        The results. The raw views (``trials``, ``steps``, ...) are ready at once; the first
        statement that needs a derived view (``trial_summary``, ``fits``, ...) computes them
        all, once, as ``phantom query`` does for ``fits``. Close the results (or use ``with``)
        to release the connections and their temporary folders.

    Raises:
        StorageError: A path holds no results, or the DuckDB file does not exist.
        ConfigError: An unknown or invalid setting, or settings given with a ``.duckdb`` file
            (its views were computed by ``phantom analyze`` with its own settings).
        QueryError: The file is not a phantom analysis database.

    Example:
        ```python
        res = phantom.open("runs/lr50", lr_ref={"lora": 2e-4}, bootstrap=0)
        res.trial_summary().df()
        ```
    """
    targets = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    if not targets:
        raise StorageError("no results folder given")
    if len(targets) == 1 and os.fspath(targets[0]).endswith(".duckdb"):
        if all_trials or settings:
            given = ["all_trials"] * bool(all_trials) + sorted(settings)
            raise ConfigError(
                f"settings ({', '.join(given)}) do not apply to {os.fspath(targets[0])}: its views were "
                "computed by `phantom analyze` (re-run it with them, or open the results folders)")
        return Results(targets, None)
    return Results(targets, _settings(all_trials, settings))


class Results:
    """Results opened by :func:`phantom.open`: SQL, the study's views and its figures.

    Every user-facing view of the registry is a method of the same name that returns its rows
    as a relation: ``trials()``, ``steps()``, ``trial_summary()``, ``fits()``, ``eta_c()``,
    ``claims()``, ... (:meth:`views` lists them with what each holds). Every figure of the
    report that names a method is one too, returning a matplotlib Figure: ``phase_diagram()``,
    ``phi_curves()``, ``through_flip()``, ... (:meth:`figure_methods`). A view or a figure
    registered later becomes a method without any change here.

    A relation (``duckdb.DuckDBPyRelation``) is read lazily; turn it into a table with
    ``.df()`` (pandas), ``.pl()`` (polars), ``.to_arrow_table()`` (Arrow; ``.arrow()`` streams
    record batches) or ``.fetchall()``, or refine
    it with ``.filter()``, ``.project()``, ``.order()``. Relations live as long as the results
    are open.

    The connection cannot write: the views live in a catalog attached read-only, file access is
    limited to the results folders, the configuration is locked, and :meth:`sql` accepts only
    statements that read (as ``phantom query``). Export with ``.df().to_csv(...)`` or
    ``pyarrow.parquet.write_table(rel.to_arrow_table(), ...)``.

    Attributes:
        paths: The results folders opened (or the ``phantom.duckdb`` file).
        settings: The analysis settings the views are built with (None for a ``.duckdb`` file,
            whose views hold the settings of the ``phantom analyze`` that wrote it).
    """

    def __init__(self, targets: list[PathLike], settings: AnalysisSettings | None):
        from phantom.analysis import connect_readonly, resolve_results

        self.settings = settings
        # Two connections at most, each built once: the raw views (which trials, their steps:
        # cheap, opened now, so a bad folder fails here) and, at the first statement that
        # needs a derived view, every view (trial_summary, the fits and their bootstrap: the
        # cost of a `phantom query` that reads `fits`). Relations of either stay valid until
        # close(). A phantom.duckdb file is one connection with everything.
        self._conns: dict[str, Any] | None = {}
        if settings is None:  # a phantom.duckdb written by `phantom analyze`
            self.paths: tuple[str, ...] = (os.fspath(targets[0]),)
            self._conns[_ALL] = connect_readonly(targets)
        else:
            self._stores = resolve_results(targets)
            self.paths = tuple(s.root if s.is_local else s.uri for s in self._stores)
            self._connection(_RAW)

    # --- SQL ---------------------------------------------------------------------------------

    def sql(self, text: str) -> duckdb.DuckDBPyRelation:
        """Run one statement that reads (SELECT, WITH, SHOW, DESCRIBE, SUMMARIZE, EXPLAIN).

        Args:
            text: The SQL; the views (``trials``, ``fits``, ...) are its tables.

        Returns:
            A read-only DuckDB relation: ``.df()``, ``.pl()``, ``.to_arrow_table()``,
            ``.fetchall()``.

        Raises:
            QueryError: Several statements, a statement that writes (refused before it runs,
                with ``phantom query``'s message), or DuckDB's own error on one line.
        """
        import duckdb

        from phantom.analysis import check_read_only, one_line

        statement = check_read_only(text)
        conn = self._connection(_needs(statement))
        try:
            return conn.sql(statement)
        except duckdb.Error as exc:
            raise QueryError(one_line(exc)) from None

    def view(self, name: str) -> duckdb.DuckDBPyRelation:
        """Every row of one view: ``res.view("fits")`` is ``res.fits()``.

        Args:
            name: A view of :meth:`views`.

        Returns:
            A read-only DuckDB relation, as :meth:`sql`.

        Raises:
            UnknownViewError: ``name`` is not a user-facing view (with a suggestion).
        """
        if name not in self.views():
            raise UnknownViewError(unknown("view", name, self.views()))
        return self.sql(f"SELECT * FROM {name}")

    @staticmethod
    def views() -> dict[str, str]:
        """The user-facing views, each with one line on what it holds, each after the views it reads.

        The registry's internal steps (views marked ``internal``) are left out; they can still
        be queried with :meth:`sql`.
        """
        from phantom.analysis import REGISTRY  # the face: every view registered

        return {v.name: v.doc for v in REGISTRY.public()}

    def __getattr__(self, name: str):
        # views and figures as methods: looked up in the registries at call time, so a new view
        # or figure needs no edit here
        if name.startswith("_"):
            raise AttributeError(name)
        figures = self.figure_methods()
        if name in figures:
            return self._figure_method(name, figures[name])
        views = self.views()
        if name not in views:
            raise UnknownViewError(f"'Results' has no attribute '{name}': {unknown('view', name, views)}")

        def rows() -> duckdb.DuckDBPyRelation:
            return self.view(name)

        rows.__name__ = rows.__qualname__ = name
        rows.__doc__ = f"Every row of the view ``{name}``: {views[name]}"
        return rows

    def __dir__(self) -> list[str]:
        return sorted(set(super().__dir__()) | set(self.views()) | set(self.figure_methods()))

    # --- figures -----------------------------------------------------------------------------

    @staticmethod
    def figures() -> dict[str, str]:
        """The report's figures, by the key :meth:`figure` takes, each with its caption."""
        from phantom.analysis import REPORT

        return {f.key: f.caption for f in REPORT.figures.values()}

    @staticmethod
    def figure_methods() -> dict[str, str]:
        """The figures that are methods (``phase_diagram``, ``phi_curves``, ...), each with the
        key :meth:`figure` takes: ``res.phase_diagram()`` is ``res.figure("phase")``."""
        from phantom.analysis import REPORT

        return {name: f.key for name, f in REPORT.methods().items()}

    def figure(self, key: str) -> Figure:
        """One of the report's figures (``phantom analyze`` draws the same), as a matplotlib Figure.

        Args:
            key: One of :meth:`figures` (``"phase"``, ``"phi"``, ``"flip"``, ``"bulk"``,
                ``"H"``, ``"burial"``, ``"frozen-head"``).

        Returns:
            A ``matplotlib.figure.Figure`` (not registered with pyplot; in a notebook it
            shows as the value of a cell, and ``fig.savefig(path)`` writes it).

        Raises:
            ConfigError: An unknown key.
            StorageError: The results hold no data for that figure (the message says what it
                needs).
        """
        from phantom.analysis import REPORT

        if key not in REPORT.figures:
            raise ConfigError(unknown("figure", key, REPORT.figures))
        entry = REPORT.figures[key]
        fig = entry.draw(self._connection(_ALL))
        if fig is None:
            raise StorageError(f"no data for the figure '{key}' ({entry.caption}) in these results: {entry.missing}")
        _show_figures_inline()
        return fig

    def _figure_method(self, name: str, key: str):
        from phantom.analysis import REPORT

        def draw() -> Figure:
            return self.figure(key)

        draw.__name__ = draw.__qualname__ = name
        draw.__doc__ = f"The report's figure '{key}': {REPORT.figures[key].caption} (as :meth:`figure`)."
        return draw

    # --- lifetime ----------------------------------------------------------------------------

    def close(self) -> None:
        """Close the connection and remove its temporary folder; the relations it returned stop
        working. Closing twice is harmless."""
        conns, self._conns = self._conns, None
        for conn in (conns or {}).values():
            conn.close()

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._conns is None

    def __enter__(self) -> Results:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"{len(self.views())} views"
        return f"<phantom.Results {', '.join(self.paths)} ({state})>"

    def _connection(self, kind: str):
        """The connection for ``kind`` (_RAW or _ALL), opened the first time it is needed."""
        if self._conns is None:
            raise QueryError("these results are closed: phantom.open them again")
        if _ALL in self._conns:  # everything is there (the raw views too)
            return self._conns[_ALL]
        if kind not in self._conns:
            from phantom.analysis import connect_readonly

            only = " ".join(_raw_views()) if kind == _RAW else None
            self._conns[kind] = connect_readonly(self._stores, self.settings, only_for=only)
        return self._conns[kind]


_RAW, _ALL = "raw", "all"


def _raw_views() -> list[str]:
    """The raw views: they read the result files only (phantom.analysis.views)."""
    from phantom.analysis import REGISTRY

    return [v.name for v in REGISTRY.order() if v.kind == "raw"]


def _needs(statement: str) -> str:
    """_RAW when the statement names only raw views, else _ALL (a statement that names no view,
    as SHOW TABLES, gets every view: as in ``phantom query``)."""
    from phantom.analysis import REGISTRY

    named = REGISTRY.named_in(statement)
    return _RAW if named and set(named) <= set(_raw_views()) else _ALL


def _settings(all_trials: bool, given: Mapping[str, Any]) -> AnalysisSettings:
    """AnalysisSettings from keyword arguments, checked as the CLI's options are."""
    from phantom.analysis import AnalysisSettings, parse_lr_ref

    fields = {f.name: f for f in dataclasses.fields(AnalysisSettings)}
    allowed = sorted(set(fields) - {"all_trials"})
    kw: dict[str, Any] = {"all_trials": bool(all_trials)}
    rates: dict[str, float] = {}
    for key, value in given.items():
        if key not in allowed:
            raise ConfigError(unknown("setting", key, allowed))
        if key == "lr_ref":
            if not isinstance(value, Mapping):
                raise ConfigError(f"`lr_ref` should be a mapping protocol -> rate (e.g. {{'lora': 2e-4}}), got {value!r}")
            rates = parse_lr_ref([f"{p}={r}" for p, r in value.items()])
            continue
        if isinstance(fields[key].default, bool):  # a switch (mix_precisions)
            if not isinstance(value, bool):
                raise ConfigError(f"`{key}` should be True or False, got {value!r}")
            kw[key] = value
            continue
        numeric = (int,) if isinstance(fields[key].default, int) else (int, float)
        if isinstance(value, bool) or not isinstance(value, numeric):
            kind = "a whole number" if numeric == (int,) else "a number"
            raise ConfigError(f"`{key}` should be {kind}, got {value!r}")
        kw[key] = value
    return AnalysisSettings(**kw).with_lr_ref(rates)


def _show_figures_inline() -> None:
    """In IPython with the inline backend, make a returned Figure render as an image: a Figure
    built without pyplot has no display formatter until ``%matplotlib inline`` registers one."""
    if "IPython" not in sys.modules:
        return
    from IPython import get_ipython

    shell = get_ipython()
    if shell is None or not hasattr(shell, "display_formatter"):
        return
    import matplotlib
    from matplotlib.figure import Figure

    if "inline" not in matplotlib.get_backend():
        return  # the user chose another backend: leave it alone
    try:
        shell.display_formatter.formatters["image/png"].lookup_by_type(Figure)
    except KeyError:
        shell.run_line_magic("matplotlib", "inline")
