"""The view registry: definition order from declared dependencies, errors for unknown views and
cycles, and `phantom query` defining only what a query needs."""

import duckdb
import pytest

from phantom.analysis import db
from phantom.analysis.registry import REGISTRY, RegistryError, ViewContext, ViewRegistry
from phantom.analysis.settings import AnalysisSettings
from phantom.analysis.testing import step_table, trial_record, write_trial


def small_registry() -> ViewRegistry:
    reg = ViewRegistry()

    # registered before the views it reads: the order comes from `reads`, not from here
    @reg.register("top", reads=("middle", "base"))
    def top(ctx):
        return "SELECT m.v + b.v AS v FROM middle m, base b"

    @reg.register("middle", reads=("base",))
    def middle(ctx):
        return "SELECT v * 10 AS v FROM base"

    @reg.register("base", kind="raw")
    def base(ctx):
        return "SELECT 1 AS v"

    @reg.register("unrelated")
    def unrelated(ctx):
        return "SELECT 42 AS v"

    return reg


CTX = ViewContext((), AnalysisSettings())


@pytest.mark.parametrize("cache", ["readers", "all", "none"])
def test_out_of_order_registration_still_defines(cache):
    reg = small_registry()
    assert [v.name for v in reg.order()] == ["base", "middle", "top", "unrelated"]
    assert [v.name for v in reg.order(["top"])] == ["base", "middle", "top"]
    conn = duckdb.connect()
    db.define_views(conn, CTX, ["top"], registry=reg, cache=cache)
    assert conn.execute("SELECT v FROM top").fetchall() == [(11,)]
    names = {r[0] for r in conn.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    assert "unrelated" not in names  # only what `top` needs
    conn.close()


def test_unknown_dependency_and_cycles_are_errors():
    reg = small_registry()

    @reg.register("broken", reads=("nope",))
    def broken(ctx):
        return "SELECT 1"

    with pytest.raises(RegistryError, match="view 'broken' reads an unknown view 'nope'"):
        reg.order()
    assert [v.name for v in reg.order(["top"])] == ["base", "middle", "top"]  # not involved

    reg = small_registry()

    @reg.register("a", reads=("b",))
    def a(ctx):
        return "SELECT * FROM b"

    @reg.register("b", reads=("c",))
    def b(ctx):
        return "SELECT * FROM c"

    @reg.register("c", reads=("a",))
    def c(ctx):
        return "SELECT * FROM a"

    with pytest.raises(RegistryError, match="cycle: a -> b -> c -> a"):
        reg.validate()
    with pytest.raises(RegistryError, match="registered twice"):
        reg.register("a")(lambda ctx: "SELECT 1")
    with pytest.raises(RegistryError, match="unknown view 'zzz'"):
        reg.order(["zzz"])


def test_the_project_registry_is_valid_and_declares_what_it_reads(tmp_path):
    import re

    from phantom.analysis.testing import geometry_table, write_plan
    from phantom import layout
    from phantom.storage import Store

    write_trial(tmp_path, step_table("t", [-0.1, 0.1]), trial_record("t", steps=1))
    write_plan(tmp_path, ["t"])
    Store.open(tmp_path).write_table(geometry_table("m", mean_g2=0.05, cls="A", sentences={"s": 0.5}),
                                     *layout.geometry_file("m"))
    ctx = db.context([tmp_path])
    REGISTRY.validate()
    for v in REGISTRY.views.values():
        sql = v.build(ctx)
        # every registered view the SQL reads (FROM / JOIN) is declared, so `phantom query`
        # never defines it too late or not at all
        targets = set(re.findall(r"\b(?:FROM|JOIN)\s+([A-Za-z_][A-Za-z0-9_]*)", sql, re.I))
        read = {t for t in targets if t in REGISTRY} - {v.name}
        assert read == set(v.reads), (v.name, read ^ set(v.reads))


def defined(conn) -> set[str]:
    return {r[0] for r in conn.execute("SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall()}


def test_query_defines_only_the_views_it_names(folder):
    with db.connect_readonly([folder], only_for="SELECT count(*) FROM steps") as conn:
        # steps reads its rows through trial_records (the kept copy, loose or in a part)
        assert defined(conn) == {"steps", "trial_records", "trial_copies", "plan", "folders"}
    with db.connect_readonly([folder], only_for="SELECT * FROM eta_c") as conn:
        got = defined(conn)
        assert {"eta_c", "trial_summary", "lr_ref"} <= got and "fits" not in got and "isolation" not in got
        assert db.scalar(conn, "SELECT count(*) FROM eta_c") == 1
    with db.connect_readonly([folder], only_for="SHOW TABLES") as conn:
        assert defined(conn) >= set(REGISTRY.views)
