"""The documentation: the MkDocs site builds with warnings as errors, its generated reference
pages cover what the code registers (every view, every subcommand, every sweep key, every
Parquet column), and the README stays a short front page whose links all resolve."""

from __future__ import annotations

import argparse
import dataclasses
import html
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"

needs_mkdocs = pytest.mark.skipif(
    importlib.util.find_spec("mkdocs") is None or importlib.util.find_spec("material") is None,
    reason="mkdocs and mkdocs-material are not installed (requirements/lock.txt has them)",
)


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The site built once, strictly (any warning — a broken link, an unknown anchor, a page
    missing from the nav, a docstring mkdocstrings cannot render — fails the build)."""
    out = tmp_path_factory.mktemp("site")
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(ROOT / "mkdocs.yml"),
         "--site-dir", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert proc.returncode == 0, f"mkdocs build --strict failed:\n{proc.stdout}\n{proc.stderr}"
    return out


def ids(page: Path, prefix: str) -> list[str]:
    """The element ids on a built page that start with ``prefix`` (without it), in order."""
    return [m for m in re.findall(rf'id="{re.escape(prefix)}([^"]+)"', page.read_text(encoding="utf-8"))]


def section(page: Path, anchor: str) -> str:
    """The text of a built page from the element with id ``anchor`` to the next h3."""
    text = page.read_text(encoding="utf-8")
    start = text.index(f'id="{anchor}"')
    end = text.find("<h3", start)
    return html.unescape(re.sub(r"<[^>]+>", "", text[start:end if end > 0 else None]))


# ----------------------------------------------------------------------------------------------
# the site


@needs_mkdocs
def test_the_site_builds_strictly_with_every_page(site):
    for page in ("index.html", "tutorial/first-trial.html", "reference/cli.html",
                 "reference/views.html", "reference/sweep-file.html", "reference/results.html",
                 "reference/outcomes.html", "results/main-job.html", "results/cross-architecture.html"):
        assert (site / page).is_file(), page
    # the offline plugin: search works from file:// without a server, and nothing a page loads
    # comes from the internet (no Google Fonts, the WebWorker shim vendored, not from unpkg)
    assert list((site / "search").glob("*.js")), "no offline search index"
    for page in site.rglob("*.html"):
        text = page.read_text(encoding="utf-8")
        remote = re.findall(r'<(?:script|link)[^>]+(?:src|href)="(https?:[^"]+)"', text)
        assert not remote, f"{page.relative_to(site)} loads {remote}"


@needs_mkdocs
def test_views_reference_lists_exactly_the_registered_views(site):
    from phantom.analysis import db  # noqa: F401  (registers every view)
    from phantom.analysis.registry import REGISTRY

    page = site / "reference" / "views.html"
    user, helpers = ids(page, "view-"), ids(page, "helper-view-")
    assert len(user) == len(set(user)) and len(helpers) == len(set(helpers))
    assert set(user) | set(helpers) == set(REGISTRY.views)
    assert not set(user) & set(helpers)
    # helpers: the intermediate steps other views read, not written by analyze, cached for
    # their readers — the four the analysis has always called internal, no user-facing view
    assert set(helpers) == {v.name for v in REGISTRY.views.values() if v.internal} == {
        "shape_points", "sentence_burial", "resamples", "correlation_points", "geometry_rows"}
    for name in helpers:
        v = REGISTRY[name]
        assert not v.snapshot
        assert any(name in other.reads for other in REGISTRY.views.values()), name


@needs_mkdocs
def test_views_reference_shows_the_columns_duckdb_gives(site):
    from phantom.schema import TRIAL_COLUMNS

    page = site / "reference" / "views.html"
    text = section(page, "view-trial_copies")
    listed = re.findall(r"(\w+) (?:varchar|integer|bigint|double|boolean|timestamp with time zone)\b", text)
    # trial_copies is every record with the folder and part it came from (phantom.results):
    # the Parquet contract plus source and part
    assert listed == ["source", "part", *TRIAL_COLUMNS]


@needs_mkdocs
def test_cli_reference_names_every_subcommand(site):
    from phantom.cli import build_parser

    def walk(parser, path):
        yield path
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    yield from walk(sub, path + [name])

    commands = ["-".join(p) for p in walk(build_parser(), ["phantom"])]
    assert {"phantom-trial", "phantom-sweep-run", "phantom-sweep-resume", "phantom-query",
            "phantom-analyze"} <= set(commands)
    page = site / "reference" / "cli.html"
    assert set(commands) <= set(ids(page, ""))
    text = page.read_text(encoding="utf-8")
    assert "--errored" in text and "--only" in text  # the help itself, not just the names


@needs_mkdocs
def test_sweep_file_reference_has_every_key(site):
    from phantom.orchestrator.config import SweepConfig

    text = html.unescape((site / "reference" / "sweep-file.html").read_text(encoding="utf-8"))
    for f in dataclasses.fields(SweepConfig):
        assert f"<code>{f.name}</code>" in text, f.name
        if dataclasses.is_dataclass(f.default_factory() if f.default_factory is not dataclasses.MISSING else None):
            for sub in dataclasses.fields(f.default_factory()):
                assert f"<code>{f.name}.{sub.name}</code>" in text, f"{f.name}.{sub.name}"


@needs_mkdocs
def test_parquet_reference_has_every_column(site):
    from phantom.schema import STEP_COLUMNS, TRIAL_COLUMNS

    text = (site / "reference" / "results.html").read_text(encoding="utf-8")
    for name in [*STEP_COLUMNS, *TRIAL_COLUMNS]:
        assert f"<code>{name}</code>" in text, name


# ----------------------------------------------------------------------------------------------
# the README


def test_readme_is_short_and_starts_with_the_two_commands():
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 150, f"README.md has {len(lines)} lines"
    body = [line for line in lines[1:] if line.strip()]  # after the title
    assert lines[0].startswith("# ")
    assert body[0].startswith("```")
    assert body[1].split("#")[0].strip() == "bash scripts/main.sh"
    assert body[2].split("#")[0].strip() == "bash scripts/test.sh"
    assert body[3] == "```"
    for script in ("scripts/main.sh", "scripts/test.sh"):
        assert (ROOT / script).is_file()


def test_every_relative_link_in_the_readme_resolves():
    text = README.read_text(encoding="utf-8")
    links = re.findall(r"\]\(([^)\s]+)\)", text)
    relative = [link for link in links if not re.match(r"^[a-z]+:|^#", link)]
    assert len(relative) >= 10  # the README is mostly a map into docs/
    for link in relative:
        assert (README.parent / link.split("#")[0]).exists(), link


def test_dated_results_pages_are_dated_sections_in_order():
    """docs/results/ is a lab notebook that changes append to: every section of a results page
    is headed by the date it was measured, oldest first (a new measurement goes at the end)."""
    pages = sorted(p for p in (ROOT / "docs" / "results").glob("*.md") if p.name != "index.md")
    assert {p.stem for p in pages} >= {"main-job", "cross-architecture"}
    for page in pages:
        heads = re.findall(r"^## (.*)$", page.read_text(encoding="utf-8"), flags=re.MULTILINE)
        assert heads, page.name
        dates = []
        for head in heads:
            m = re.match(r"(\d{4}-\d{2}-\d{2}): \S", head)
            assert m, f"{page.name}: section '{head}' does not start with 'YYYY-MM-DD: '"
            dates.append(m.group(1))
        assert dates == sorted(dates), f"{page.name}: sections out of date order {dates}"


# ----------------------------------------------------------------------------------------------
# what cannot drift: the README against the site's nav and the repository's folders (issue 29)


def _nav_pages() -> list[str]:
    """Every page of mkdocs.yml's nav, as a path under docs/."""
    import yaml

    class Loader(yaml.SafeLoader):  # mkdocs.yml may hold !!python/name tags; the nav does not
        pass

    Loader.add_multi_constructor("", lambda loader, suffix, node: None)
    nav = yaml.load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"), Loader=Loader)["nav"]
    out: list[str] = []

    def walk(node):
        if isinstance(node, str):
            out.append(node)
        elif isinstance(node, list):
            for x in node:
                walk(x)
        elif isinstance(node, dict):
            for x in node.values():
                walk(x)

    walk(nav)
    return out


def test_the_readme_links_every_page_of_the_site():
    """The README's documentation list is the site's nav, whole (it once lacked three pages)."""
    linked = {link.split("#")[0].removeprefix("docs/")
              for link in re.findall(r"\]\((docs/[^)\s]+)\)", README.read_text(encoding="utf-8"))}
    pages = {p for p in _nav_pages() if not p.endswith("index.md")}  # a section's index: its own pages are linked
    assert sorted(pages - linked) == [], "pages of the site the README does not link"
    assert sorted(p for p in linked if p.endswith(".md") and p not in set(_nav_pages())) == []


def _layout_rows(text: str) -> dict[str, list[str]]:
    table = text.split("## Layout", 1)[1]
    return {m.group(1): [c.strip() for c in m.group(0).split("|")[2:-1]]
            for m in re.finditer(r"^\| `([a-z_]+)/` \|.*\|$", table, flags=re.MULTILINE)}


@pytest.mark.parametrize("page", ["README.md", "docs/index.md"])
def test_the_layout_tables_name_every_folder_and_its_import(page):
    """Each top-level folder of the repository once, with ``phantom.<folder>`` where it installs
    (the links under phantom/)."""
    ignored = {line.strip().strip("/") for line in (ROOT / ".gitignore").read_text().splitlines() if line.strip()}
    folders = {p.name for p in ROOT.iterdir() if p.is_dir() and not p.name.startswith((".", "_"))
               and p.name not in ignored and not p.name.endswith(".egg-info")}
    rows = _layout_rows((ROOT / page).read_text(encoding="utf-8"))
    assert sorted(rows) == sorted(folders)
    links = {p.name for p in (ROOT / "phantom").iterdir() if p.is_symlink()}
    for folder, cells in rows.items():
        want = "`phantom`" if folder == "phantom" else f"`phantom.{folder}`" if folder in links else ""
        assert cells[0] == want, (folder, cells[0])
