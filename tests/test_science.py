"""The science reference (docs/reference/science.md) against the code: every quantity's
functions, views and columns exist (docs/science.py QUANTITIES, the one table of them), every
quantity is defined on the page in the section the table says, every observable the worker
writes and every column of the main views is a documented quantity, the claims agree with the
claims view, and the docs send readers to the page, not to a SPEC.md the repository lacks."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "reference" / "science.md"


@pytest.fixture(scope="module")
def hooks():
    sys.path.insert(0, str(ROOT / "docs"))
    try:
        import hooks
    finally:
        sys.path.remove(str(ROOT / "docs"))
    return hooks


@pytest.fixture(scope="module")
def science(hooks):
    """docs/science.py as the docs build loads it (unchecked: the tests below are the checks)."""
    return hooks.science_module()


@pytest.fixture(scope="module")
def columns(hooks):
    return hooks.described()


def test_every_function_view_and_column_named_exists(science, columns):
    assert science.quantity_problems(columns) == []


def test_the_check_fails_on_a_renamed_function_view_or_column(science, columns):
    Q = science.Quantity
    bad = (
        Q("a", "Φ", "renamed function", "3.3", "dimensionless", ("phantom.workers.observables.born_gap_old",)),
        Q("b", "Φ", "no such module", "3.3", "dimensionless", ("phantom.workers.no_such_module.f",)),
        Q("c", "Φ", "no such view", "3.3", "dimensionless", ("phantom.outcomes.flip_step",), ("trial_sumary.phi0",)),
        Q("d", "Φ", "no such column", "3.3", "dimensionless", ("phantom.outcomes.flip_step",), ("trial_summary.phi00",)),
        # a view that reads the Parquet file: its column must be in phantom.schema too
        Q("e", "Φ", "not in the schema", "3.3", "dimensionless", ("phantom.outcomes.flip_step",), ("trials.in_plan",)),
        Q("a", "Φ", "listed twice, no function, no section", "9", "dimensionless", ()),
    )
    problems = science.quantity_problems(columns, bad)
    expected = ["born_gap_old", "no_such_module", "no view 'trial_sumary'", "no column 'phi00'",
                "not in phantom.schema.TRIAL_SCHEMA", "listed twice", "names no function", "no section 9"]
    for text in expected:
        assert any(text in p for p in problems), (text, problems)
    assert len(problems) == len(expected)


# the quantities issue 29 names (by their key in QUANTITIES)
ISSUE_29 = {
    "phi", "signal", "drag", "sigma", "pr", "ipr", "pr-classical", "xi", "xi-pair", "burial", "efficiency",
    "drive", "born-rank", "softmax-ranks", "delta", "dg-max", "rotation", "pool", "flip", "eta-c", "r",
    "character", "theta-shape", "theta-resolve", "h", "b-ft", "mean-g2", "ks", "class", "blind", "verdict",
}


def test_every_quantity_of_the_issue_is_listed(science):
    assert ISSUE_29 <= {q.key for q in science.QUANTITIES}


def _sections(text: str) -> dict[str, str]:
    """'3' and '3.3' -> the text of that section of the page (to the next heading of its level
    or above)."""
    heads = [(m.start(), m.group(1), m.group(2)) for m in
             re.finditer(r"^(#{2,3}) (\d+(?:\.\d+)?)[. ]", text, flags=re.MULTILINE)]
    out = {}
    for i, (start, level, number) in enumerate(heads):
        end = next((s for s, lv, _ in heads[i + 1:] if len(lv) <= len(level)), len(text))
        out[number] = text[start:end]
    return out


def test_every_quantity_is_defined_in_its_section_and_nothing_else_is(science):
    text = PAGE.read_text(encoding="utf-8")
    defined = re.findall(r"\{: #q-([a-z0-9-]+) \}", text)
    keys = [q.key for q in science.QUANTITIES]
    assert sorted(defined) == sorted(keys)  # each once, and no definition the table lacks
    sections = _sections(text)
    for q in science.QUANTITIES:
        assert q.section in sections, (q.key, q.section)
        assert f"{{: #q-{q.key} }}" in sections[q.section], f"{q.key} is not defined in §{q.section}"


def test_the_page_asks_for_every_block(hooks, science):
    text = PAGE.read_text(encoding="utf-8")
    asked = re.findall(r"^<!-- phantom:generate ([a-z-]+) -->$", text, flags=re.MULTILINE)
    assert sorted(asked) == sorted([f"quantities-{s}" for s in science.SECTIONS]
                                   + ["science-claims", "quantity-columns"])
    for name in asked:
        assert name in hooks.GENERATORS
    # the section numbers the blocks use are the page's
    sections = _sections(text)
    for name, number in science.SECTIONS.items():
        assert f"{{#{name}}}" in sections[number].splitlines()[0], (name, number)
        assert f"<!-- phantom:generate quantities-{name} -->" in sections[number]


# Columns that identify a row or count rows, not quantities.
KEYS = {"trial_id", "step", "bracket_id", "source", "in_plan", "model", "protocol", "sentence_id",
        "context_index", "target", "competitor", "seed"}
NOT_QUANTITIES = {
    "geometry": {"family", "vocab_size", "dim", "hist_edges", "hist_counts"},  # the model; Figure 6's histogram
    "blind_prediction": {"reason"},  # why there is no prediction, in words
}


@pytest.mark.parametrize("view", ["steps", "trial_summary", "eta_c", "fits", "geometry", "geometry_sentences",
                                  "blind_prediction", "isolation", "ablation", "stopping", "correlations"])
def test_every_column_of_the_science_views_is_a_documented_quantity(science, columns, view):
    documented = {loc.partition(".")[2] for q in science.QUANTITIES for loc in q.where if loc.startswith(view + ".")}
    described = columns[view]
    if view == "correlations":  # x and y name the variables correlated
        described = [c for c in described if c not in ("scope", "x", "y")]
    missing = [c for c in described if c not in documented and c not in KEYS and not c.startswith("n_")
               and c not in NOT_QUANTITIES.get(view, ())]
    assert missing == [], f"{view}: columns with no quantity in docs/science.py QUANTITIES: {missing}"


def test_every_observable_the_worker_writes_is_documented(science):
    from phantom.schema import OBSERVABLE_COLUMNS

    documented = {loc.partition(".")[2] for q in science.QUANTITIES for loc in q.where if loc.startswith("steps.")}
    assert [c for c in OBSERVABLE_COLUMNS if c not in documented] == []


def test_the_claims_block_lists_the_claims_view_and_claims_md_agrees(hooks, science):
    from phantom.analysis.views.claims import CLAIMS

    assert science.claim_problems() == []
    assert science.claims_md_ids() == [c.id for c in CLAIMS]
    block = hooks.gen_science_claims()
    assert [f"**`{c.id}`**" in block for c in CLAIMS] == [True] * len(CLAIMS)


def test_the_build_fails_when_the_table_and_the_code_disagree(hooks, science, monkeypatch):
    hooks.science.cache_clear()
    monkeypatch.setattr(science, "QUANTITIES", (science.Quantity(
        "phi", "Φ", "Born gap", "3.3", "dimensionless", ("phantom.workers.observables.born_gap_old",)),))
    try:
        with pytest.raises(ValueError, match="born_gap_old"):
            hooks.gen_quantities("3")
    finally:
        hooks.science.cache_clear()


def test_the_docs_send_readers_to_the_page_not_to_spec_md():
    nav = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    assert "reference/science.md" in nav
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "(docs/reference/science.md)" in readme
    assert "(reference/science.md)" in (ROOT / "docs" / "index.md").read_text(encoding="utf-8")
    pages = [ROOT / "README.md", ROOT / "mkdocs.yml",
             *(p for p in (ROOT / "docs").rglob("*.md") if "results" not in p.relative_to(ROOT / "docs").parts)]
    for page in pages:
        text = page.read_text(encoding="utf-8")
        assert "SPEC" not in text, f"{page.relative_to(ROOT)} still cites SPEC"


def test_the_code_cites_the_science_page_not_spec_md():
    """Docstrings and comments cite the page's sections (``science §3.1``); the sweep files too."""
    folders = ("phantom", "models", "workers", "orchestrator", "analysis", "sweeps", "bench", "docker", "scripts")
    files = [p for d in folders for p in (ROOT / d).rglob("*") if p.suffix in (".py", ".yaml", ".sbatch", ".sh")
             and not any(q.is_symlink() for q in (p, *p.parents))]  # phantom/workers is workers/: once
    cited = [f"{p.relative_to(ROOT)}:{i}" for p in files
             for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1) if re.search(r"\bSPEC\b", line)]
    assert cited == [], "still cites SPEC: " + ", ".join(cited)
    assert sum("science §" in p.read_text(encoding="utf-8") for p in files) >= 20
