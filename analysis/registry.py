"""The SQL views, each registered with the views it reads (as lm-eval's task registry).

A view is a name, a function that returns its ``SELECT`` for a :class:`ViewContext`, and the
names of the views that ``SELECT`` reads. The definition order is a topological sort of those
dependencies, so a view may be registered anywhere; an unknown dependency or a cycle is an error
when the order is asked for. ``phantom query`` defines only the views its SQL names and their
transitive dependencies (:meth:`ViewRegistry.closure`).

Kinds: ``raw`` views read the result files themselves (``phantom analyze`` re-creates them in its
DuckDB file by absolute path); ``derived`` views read other views; those with ``snapshot`` are
materialised by ``phantom analyze`` (Parquet + CSV) and read from that snapshot in its file.

``cache``: a view that others read is computed once into a table when a connection is opened
(:mod:`phantom.analysis.db`), instead of being inlined into every reader (DuckDB expands a view at each
reference, so a chain of views that read ``trial_summary`` several times would recompute it,
and bind it, that many times). Snapshot views are cached; so are a few small derived hubs.
The raw views are not: they are shallow, and caching the records (with their config JSON)
would cost a simple ``phantom query`` more than it saves.

``internal``: an intermediate step of another view's SQL (the shape-fit points, the bootstrap
draws, ...), not a table a user reads. Still queryable; left out of :meth:`ViewRegistry.public`,
the list the Python API (phantom.api) turns into methods.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from phantom.analysis.settings import AnalysisSettings
    from phantom.analysis.views.sources import Source


class RegistryError(ValueError):
    """A view reads an unknown view, two views share a name, or the dependencies have a cycle."""


@dataclass(frozen=True)
class ViewContext:
    """What a view's SQL may depend on: the results folders and the analysis settings."""

    sources: tuple[Source, ...]
    settings: AnalysisSettings


@dataclass(frozen=True)
class View:
    name: str
    build: Callable[[ViewContext], str]  # -> the SELECT (no CREATE VIEW)
    reads: tuple[str, ...]
    kind: str = "derived"  # raw | derived
    snapshot: bool = True  # phantom analyze writes it as <name>.parquet / .csv
    cache: bool = True  # computed once into a table when other views read it
    doc: str = ""
    internal: bool = False  # an intermediate step, not a table for users (see the module doc)
    # run on the relation once it is defined: raises a PhantomError when the views built on it
    # would be wrong (phantom.analysis.views.precisions: fits that would mix precisions)
    check: Callable[[object, str, ViewContext], None] | None = None
    # views that must be defined (their checks passed) before this one, though its SQL does not
    # read them: the fits are guarded by ``precisions``
    guards: tuple[str, ...] = ()

    @property
    def depends(self) -> tuple[str, ...]:
        return self.reads + self.guards

    def create_sql(self, ctx: ViewContext) -> str:
        return f"CREATE OR REPLACE VIEW {self.name} AS\n{self.build(ctx)}"


@dataclass
class ViewRegistry:
    views: dict[str, View] = field(default_factory=dict)

    def register(self, name: str, *, reads: Iterable[str] = (), kind: str = "derived",
                 snapshot: bool | None = None, cache: bool | None = None, internal: bool = False,
                 check: Callable[[object, str, ViewContext], None] | None = None,
                 guards: Iterable[str] = ()):
        """Decorator: ``@REGISTRY.register("fits", reads=("trial_summary", ...))`` over a
        function ``(ctx) -> SELECT``. Raw views are never snapshots; ``cache`` defaults to
        ``snapshot``; ``internal`` marks an intermediate step (not in :meth:`public`);
        ``check(conn, relation, ctx)`` runs once the view is defined (it may refuse);
        ``guards``: views whose checks must pass before this one is defined."""
        if kind not in ("raw", "derived"):
            raise RegistryError(f"`kind` should be 'raw' or 'derived', got '{kind}'")

        def wrap(fn: Callable[[ViewContext], str]) -> Callable[[ViewContext], str]:
            if name in self.views:
                raise RegistryError(f"view '{name}' is registered twice")
            snap = ((kind == "derived") if snapshot is None else snapshot) and kind == "derived"
            self.views[name] = View(name, fn, tuple(reads), kind, snap,
                                    snap if cache is None else cache,
                                    (fn.__doc__ or "").strip().split("\n")[0], internal, check,
                                    tuple(guards))
            return fn

        return wrap

    def __contains__(self, name: str) -> bool:
        return name in self.views

    def __getitem__(self, name: str) -> View:
        return self.views[name]

    def public(self) -> list[View]:
        """The views a user reads (every view not marked ``internal``), each after the views it
        reads (:meth:`order`)."""
        return [v for v in self.order() if not v.internal]

    def order(self, names: Iterable[str] | None = None, given: Iterable[str] = ()) -> list[View]:
        """``names`` (default: every view) and their transitive dependencies, each after the
        views it reads; ties keep the registration order. ``given``: relations the caller
        provides (tables in a test): neither defined nor followed. RegistryError on an unknown
        name, an unknown dependency or a cycle."""
        wanted = list(self.views) if names is None else list(names)
        out: list[View] = []
        state: dict[str, str] = {g: "done" for g in given}  # name -> "visiting" | "done"

        def visit(name: str, path: tuple[str, ...]) -> None:
            if state.get(name) == "done":
                return
            if state.get(name) == "visiting":
                cycle = path[path.index(name):] + (name,)
                raise RegistryError("views depend on each other in a cycle: " + " -> ".join(cycle))
            if name not in self.views:
                who = f"view '{path[-1]}' reads" if path else "asked for"
                raise RegistryError(f"{who} an unknown view '{name}'")
            state[name] = "visiting"
            for dep in self.views[name].depends:
                visit(dep, path + (name,))
            state[name] = "done"
            out.append(self.views[name])

        for name in given:
            if name not in self.views:
                raise RegistryError(f"given an unknown view '{name}'")

        for name in wanted:
            visit(name, ())
        return out

    def validate(self) -> None:
        """Every dependency is registered and there is no cycle."""
        self.order()

    def named_in(self, sql: str) -> list[str]:
        """The registered views whose names appear as words in ``sql`` (a cheap over-estimate:
        a column called like a view only defines one view too many)."""
        import re

        words = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", sql.lower()))
        return [name for name in self.views if name.lower() in words]


# The project's registry; the modules of phantom.analysis.views register into it when imported, and
# the face of that package imports them all: `from phantom.analysis.views import REGISTRY` is complete.
REGISTRY = ViewRegistry()
view = REGISTRY.register
