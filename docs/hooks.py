"""MkDocs hook: the reference pages that are generated from the code at build time.

A page asks for a generated block with an HTML comment on a line of its own (invisible where
the Markdown is read as is, e.g. on GitHub)::

    <!-- phantom:generate cli -->

and :func:`on_page_markdown` replaces it with the block. The blocks read the code itself, so
they cannot drift from it:

- ``cli``: every ``phantom`` subcommand's ``--help``, from the argparse parsers
  (:func:`phantom.cli.build_parser`);
- ``sweep-keys``: every sweep file key, from the configuration dataclasses
  (:class:`phantom.orchestrator.config.SweepConfig` and the dataclasses it nests): type, default, the
  field's ``help`` metadata and the dataclass docstring;
- ``views`` / ``helper-views``: the SQL views of :data:`phantom.analysis.views.REGISTRY`, each with
  its docstring, what it reads and its columns (``DESCRIBE`` on an in-memory connection over a
  one-trial synthetic folder, :mod:`phantom.analysis.testing`);
- ``report``: the report's figures and tables, from :data:`phantom.analysis.report.REPORT` (key,
  caption, the views each reads, the Python API's method);
- ``step-columns`` / ``trial-columns``: the Parquet column contract (:mod:`phantom.schema`);
- ``sweep-files``: each shipped ``sweeps/*.yaml`` with the comment block that opens it;
- ``quantities-<section>`` / ``quantity-columns`` / ``science-claims``: the science page
  (docs/reference/science.md): every quantity of :data:`QUANTITIES` with the functions that compute
  it and the view columns that hold it (each imported / looked up at build time: a missing one
  fails the build), the same turned into column → quantity, and the claims of
  :data:`phantom.analysis.views.claims.CLAIMS` with the views and quantities each is judged on
  (the build fails when docs/reference/claims.md lists other claims).

This file is also imported by ``tests/test_docs.py`` (:func:`helper_view`,
:func:`cli_commands`) and ``tests/test_science.py`` (:data:`QUANTITIES` and its checks).
"""

from __future__ import annotations

import argparse
import dataclasses
import enum
import os
import re
import shutil
import sys
import tempfile
import types
import typing
import functools
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # the checkout's packages, whatever the working directory
    sys.path.insert(0, str(ROOT))

MARKER = re.compile(r"^<!-- phantom:generate ([a-z-]+) -->$", re.MULTILINE)


# ----------------------------------------------------------------------------------------------
# the CLI


def _walk(parser: argparse.ArgumentParser, path: list[str], summary: str = ""):
    yield path, parser, summary
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help or "" for a in action._choices_actions}
            for name, sub in action.choices.items():
                yield from _walk(sub, path + [name], helps.get(name, ""))


def cli_commands() -> list[tuple[str, argparse.ArgumentParser, str]]:
    """(command line, parser, one-line help) for ``phantom`` and every subcommand, depth first."""
    from phantom.cli import build_parser

    return [(" ".join(p), parser, s) for p, parser, s in _walk(build_parser(), ["phantom"])]


def _help_text(parser: argparse.ArgumentParser) -> str:
    # a fixed width, so the page does not depend on the terminal that builds it
    old = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "100"
    try:
        return parser.format_help().rstrip()
    finally:
        if old is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = old


def gen_cli() -> str:
    commands = cli_commands()
    out = ["| command | what it does |", "| --- | --- |"]
    for line, _, summary in commands[1:]:
        out.append(f"| [`{line}`](#{_slug(line)}) | {_cell(summary)} |")
    for line, parser, summary in commands:
        out += ["", f"## `{line}` {{#{_slug(line)}}}", ""]
        if summary:
            out += [" ".join(summary.split()), ""]
        out += ["```text", _help_text(parser), "```"]
    return "\n".join(out)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _text(text: str) -> str:
    """A table cell of prose: also a literal ``*`` (θ*_shape is not emphasis)."""
    return _cell(text).replace("*", "\\*")


# ----------------------------------------------------------------------------------------------
# sweep file keys


def _type_name(tp) -> str:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        text = " or ".join(_type_name(a) for a in inner)
        return text + (" or null" if len(inner) < len(args) else "")
    if origin is tuple:
        return f"list of {_type_name(args[0])}" if args else "list"
    if dataclasses.is_dataclass(tp):
        return "mapping"
    if isinstance(tp, type) and issubclass(tp, enum.Enum):  # a vocabulary (phantom.protocols.Protocol)
        return "string"
    return {str: "string", int: "integer", float: "number", bool: "true/false"}.get(tp, getattr(tp, "__name__", str(tp)))


def _default(f: dataclasses.Field) -> str:
    if f.default is not dataclasses.MISSING:
        value = f.default
    elif f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        value = f.default_factory()  # type: ignore[misc]
        if dataclasses.is_dataclass(value):
            return "(see below)"
    else:
        return "**required**"
    if value is None:
        return "`null`"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, tuple):
        return "`[" + ", ".join(map(str, value)) + "]`"
    if isinstance(value, str):
        return f"`{value}`"
    return f"`{value:g}`" if isinstance(value, float) else f"`{value}`"


def _doc(cls) -> str:
    return " ".join((cls.__doc__ or "").split())


def gen_sweep_keys() -> str:
    from phantom.orchestrator.config import ProtocolRates, SweepConfig

    hints = typing.get_type_hints(SweepConfig)
    out = [_doc(SweepConfig), "", "| key | type | default | meaning |", "| --- | --- | --- | --- |"]
    nested = []
    for f in dataclasses.fields(SweepConfig):
        tp = hints[f.name]
        help_ = f.metadata.get("help", "")
        if dataclasses.is_dataclass(tp):
            nested.append((f.name, tp))
            help_ = help_ or f"see [`{f.name}:`](#{f.name})"
        if f.name == "learning_rates":
            nested.append((f.name, ProtocolRates))
            help_ += "; see [`learning_rates:`](#learning_rates)"
        out.append(f"| `{f.name}` | {_cell(_type_name(tp))} | {_default(f)} | {_cell(help_)} |")
    for name, cls in nested:
        sub_hints = typing.get_type_hints(cls)
        out += ["", f"### `{name}:` {{#{name}}}", "", f"`{cls.__module__}.{cls.__name__}`: {_doc(cls)}", "",
                "| key | type | default | meaning |", "| --- | --- | --- | --- |"]
        for f in dataclasses.fields(cls):
            key = f"{name}.{f.name}"
            if cls is ProtocolRates:
                key = f"{name}.{f.name.replace('_', '-')}"
            out.append(f"| `{key}` | {_cell(_type_name(sub_hints[f.name]))} | {_default(f)} | "
                       f"{_cell(f.metadata.get('help', ''))} |")
    return "\n".join(out)


# ----------------------------------------------------------------------------------------------
# the views


def helper_view(view) -> bool:
    """A view the registry marks ``internal``: an intermediate step other views read. Users
    query the views that read it instead."""
    return view.internal


def _views():
    from phantom.analysis.views import REGISTRY  # the face: every view registered

    return REGISTRY.order()


@cache
def _columns() -> dict[str, list[tuple[str, str]]]:
    """Every view's columns: DESCRIBE over a results folder holding one synthetic trial."""
    from phantom.analysis import db, testing
    from phantom.analysis.settings import AnalysisSettings

    folder = tempfile.mkdtemp(prefix="phantom-docs-")
    try:
        testing.write_trial(folder, testing.step_table("t0", [-0.2, -0.1, 0.1, 0.2]),
                            testing.trial_record("t0", steps=3))
        with db.connect([folder], AnalysisSettings()) as conn:  # the settings analyze uses by default
            return {v.name: [(r[0], r[1]) for r in conn.execute(f"DESCRIBE {v.name}").fetchall()]
                    for v in _views()}
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _view_block(v, prefix: str) -> list[str]:
    doc = " ".join((v.build.__doc__ or "").split())
    kind = "raw (reads the result files)" if v.kind == "raw" else "derived"
    if v.snapshot:
        kind += "; written by `phantom analyze` as `analysis/" + v.name + ".parquet` / `.csv`"
    reads = ", ".join(f"[`{r}`](#{'helper-view' if helper_view(_by_name()[r]) else 'view'}-{r})" for r in v.reads)
    cols = ", ".join(f"`{name}` {typ.lower()}" for name, typ in _columns()[v.name])
    return ["", f"### `{v.name}` {{#{prefix}-{v.name}}}", "", doc, "",
            f"- **kind**: {kind}", f"- **reads**: {reads or 'the result files only'}",
            f"- **columns** ({len(_columns()[v.name])}): {cols}"]


@cache
def _by_name():
    return {v.name: v for v in _views()}


def gen_views() -> str:
    out: list[str] = []
    for v in _views():
        if not helper_view(v):
            out += _view_block(v, "view")
    return "\n".join(out)


def gen_helper_views() -> str:
    out: list[str] = []
    for v in _views():
        if helper_view(v):
            out += _view_block(v, "helper-view")
    return "\n".join(out)


def gen_report() -> str:
    """The report's figures, then its tables, in the report's order."""
    from phantom.analysis.report import REPORT

    def reads(names) -> str:
        return ", ".join(f"[`{r}`](../reference/views.md#{'helper-view' if helper_view(_by_name()[r]) else 'view'}-{r})"
                         for r in names)

    out = ["| figure | caption | reads | Python API |", "| --- | --- | --- | --- |"]
    for f in REPORT.figures.values():
        method = f"`res.{f.method}()`" if f.method else f"`res.figure(\"{f.key}\")`"
        out.append(f"| `{f.key}` | {_text(f.caption)}{' (when the folder has it)' if f.optional else ''} | "
                   f"{reads(f.reads)} | {method} |")
    out += ["", "| table | caption | reads |", "| --- | --- | --- |"]
    for t in REPORT.tables.values():
        out.append(f"| `{t.key}` | {_text(t.caption)} | {reads(t.reads)} |")
    return "\n".join(out)


# ----------------------------------------------------------------------------------------------
# the Parquet contract


def gen_step_columns() -> str:
    from phantom.schema import STEP_FIELDS

    out = ["| # | column | Arrow type |", "| --- | --- | --- |"]
    for i, (name, typ) in enumerate(STEP_FIELDS, 1):
        out.append(f"| {i} | `{name}` | {typ} |")
    return "\n".join(out)


def gen_trial_columns() -> str:
    from phantom.schema import TrialRecord

    out = [_doc(TrialRecord), "", "| # | column | Arrow type | meaning |", "| --- | --- | --- | --- |"]
    for i, f in enumerate(dataclasses.fields(TrialRecord), 1):
        out.append(f"| {i} | `{f.name}` | {f.metadata['arrow']} | {_cell(f.metadata.get('doc', ''))} |")
    return "\n".join(out)


# ----------------------------------------------------------------------------------------------
# the sweep files shipped


def gen_sweep_files() -> str:
    """Each ``sweeps/*.yaml`` with the comment block that opens it (its own description)."""
    out: list[str] = []
    for path in sorted((ROOT / "sweeps").glob("*.yaml")):
        lines = []
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.startswith("#"):
                break
            lines.append(line[2:] if line.startswith("# ") else line[1:])
        out += ["", f"## `sweeps/{path.name}` {{#{_slug(path.stem)}}}", "", "```text", *lines, "```"]
    return "\n".join(out)


# ----------------------------------------------------------------------------------------------
# the science reference (docs/reference/science.md)
#
# QUANTITIES is the one place that says, for every quantity the code computes, which function
# computes it and which view columns hold it. The page keeps the hand-written definitions (each
# an element with id ``q-<key>``); the blocks below generate the cross-references, and
# :func:`check_quantities` fails the build when a function, a view or a column named here does
# not exist (tests/test_science.py runs the same check).


@dataclasses.dataclass(frozen=True)
class Quantity:
    """One quantity of the science page: its definition is the element ``#q-<key>`` of
    docs/reference/science.md, in section ``section``."""

    key: str  # the page's anchor is q-<key>
    symbol: str  # as the page writes it
    name: str
    section: str  # "3.3": the subsection of science.md that defines it
    unit: str
    functions: tuple[str, ...]  # dotted paths, imported at build time
    where: tuple[str, ...] = ()  # "view.column": the registered views (and Parquet files) holding it


_OBS = "phantom.workers.observables."
_OUT = "phantom.outcomes."
_SUMMARY = "phantom.analysis.views.summary."
_FITS = "phantom.analysis.views.fits."
_BOOT = "phantom.analysis.views.bootstrap."
_TABLES = "phantom.analysis.views.tables."
_STATS = "phantom.analysis.stats."
_GEOM = "phantom.workers.geometry."

Q = Quantity
QUANTITIES: tuple[Quantity, ...] = (
    # 1. the experiment
    Q("sentence", "s", "sentence (g, c, contexts)", "1.1", "words (one token each)",
      ("phantom.workers.sentences.Sentence", "phantom.workers.sentences.load_sentences"),
      ("trials.sentence_id", "trials.target", "trials.competitor", "trials.context", "trials.n_contexts",
       "steps.context_id", "trial_summary.n_contexts")),
    Q("lr", "η", "learning rate", "1.2", "learning rate", ("phantom.config.TrialConfig",),
      ("trials.lr", "steps.lr", "trial_summary.lr", "stopping.lr", "ablation.lr", "frozen_head.lr")),
    Q("budget", "T", "budget of optimizer steps", "1.2", "steps", ("phantom.config.TrainingConfig",),
      ("trials.steps", "trials.steps_done", "trial_summary.budget", "trial_summary.steps_done",
       "trial_summary.last_step", "trial_summary.evaluations", "eta_c.budget")),
    Q("hard", "Φ₀ ≤ 0", "hard context", "1.3", "yes/no", ("phantom.workers.probe.is_hard",),
      ("geometry_sentences.phi0",)),
    # 2. notation
    Q("psi", "ψ_i", "unit embedding row", "2", "unit vector", (_OBS + "unit_rows",)),
    Q("gmax", "G_max = G_gc", "overlap of target and competitor", "2", "dimensionless (cosine)",
      (_OBS + "observe",),
      ("steps.gmax", "trials.gmax", "trial_steps.gmax", "trial_summary.gmax", "geometry_sentences.gmax",
       "eta_c.gmax", "eta_c_sentence.gmax", "ablation.gmax", "frozen_head.gmax")),
    Q("gmax-head", "G_gc (head)", "overlap of g and c in the LM head", "2", "dimensionless (cosine)",
      (_GEOM + "sentence_values",),
      ("trials.gmax_head", "trial_summary.gmax_head", "geometry_sentences.gmax_head", "frozen_head.gmax_head")),
    Q("tied", "W_U = E", "tied head", "2", "yes/no", ("phantom.workers.models.head_is_tied",),
      ("trials.tied", "trial_summary.tied", "geometry.tied")),
    Q("logits", "z_g, z_c", "logits of g and c", "2", "nats (logit units)", (_OBS + "observe",),
      ("steps.z_g", "steps.z_c")),
    Q("probabilities", "p_g, p_c", "softmax probabilities of g and c", "2", "probability",
      (_OBS + "observe",), ("steps.p_g", "steps.p_c")),
    # 3. per-step observables
    Q("pool", "P", "nucleus pool", "3.1", "tokens", (_OBS + "nucleus_pool",),
      ("steps.pool_size", "steps.pool_capped", "trial_steps.pool_size", "trial_summary.pool_size0")),
    Q("pool-mass", "Σ_{j∈P} p_j", "pool mass", "3.1", "probability", (_OBS + "observe",), ("steps.pool_mass",)),
    Q("born-scores", "b_g, b_c", "Born scores", "3.2", "dimensionless", (_OBS + "born_scores",),
      ("steps.born_g", "steps.born_c")),
    Q("born-rank", "Born rank", "rank of g by Born score", "3.2", "rank (1 = top)", (_OBS + "observe",),
      ("steps.born_rank", "trial_steps.born_rank", "trial_summary.born_rank0", "trial_summary.born_rank_T",
       "geometry_sentences.born_rank0")),
    Q("phi", "Φ", "Born gap", "3.3", "dimensionless", (_OBS + "born_gap", _OBS + "observe"),
      ("steps.phi", "trial_summary.phi0", "trial_summary.phi_T", "geometry_sentences.phi0", "ablation.phi",
       "frozen_head.phi0", "frozen_head.lora_phi_T", "frozen_head.frozen_phi_T", "frozen_head.phi_T_diff")),
    Q("sigma", "σ", "self-sabotage factor", "3.4", "dimensionless", (_OBS + "signal_drag",)),
    Q("signal", "S", "signal", "3.4", "dimensionless", (_OBS + "signal_drag",),
      ("steps.signal", "trial_steps.S", "trial_summary.S0", "trial_summary.S_T")),
    Q("drag", "D", "background drag", "3.4", "dimensionless", (_OBS + "signal_drag",),
      ("steps.drag", "trial_steps.D", "trial_summary.D0", "trial_summary.D_T")),
    Q("softmax-ranks", "rank_g, rank_c", "softmax ranks", "3.5", "rank (1 = top)", (_OBS + "observe",),
      ("steps.rank_g", "steps.rank_c", "trial_steps.rank_resolved")),
    Q("delta", "Δ", "logit gap", "3.5", "nats (logit units)", (_OBS + "observe",),
      ("steps.logit_gap", "trial_steps.delta", "trial_summary.delta0")),
    Q("hidden", "ψ_g·h, ψ_c·h, ‖h‖", "hidden-state alignment", "3.5", "the hidden state's units",
      (_OBS + "observe",),
      ("steps.h_dot_g", "steps.h_dot_c", "steps.h_norm", "trial_steps.h_dot_g", "trial_steps.h_dot_c")),
    Q("purity", "γ", "purity", "3.6", "dimensionless", (_OBS + "purity",), ("steps.purity",)),
    Q("pr", "PR", "participation ratio", "3.6", "tokens (effective number)", (_OBS + "purity",), ("steps.pr",)),
    Q("ipr", "IPR", "inverse participation ratio (classical)", "3.6", "dimensionless", (_OBS + "observe",),
      ("steps.ipr",)),
    Q("pr-classical", "PR_cl", "classical participation ratio", "3.6", "tokens (effective number)",
      (_OBS + "observe",), ("steps.pr_classical",)),
    Q("xi", "ξ", "localisation length", "3.7", "radians", (_OBS + "localisation",), ("steps.xi",)),
    Q("xi-pair", "ξ_pair", "pairwise localisation length", "3.7", "radians", (_OBS + "localisation",),
      ("steps.xi_pair",)),
    Q("burial", "B", "burial depth", "3.7", "dimensionless", (_OBS + "observe",),
      ("steps.burial", "trial_steps.B", "trial_summary.B0", "trial_summary.B_T", "geometry_sentences.B0")),
    Q("efficiency", "ε", "geometric efficiency", "3.8", "dimensionless", (_OBS + "observe",),
      ("steps.efficiency", "trial_steps.eps", "trial_summary.eps0", "geometry_sentences.eps0", "ablation.eps0")),
    Q("phi-ablated", "Φ_abl", "Φ with the competitor ablated", "3.9", "dimensionless",
      (_OBS + "ablate_competitor",),
      ("steps.phi_ablated", "trial_steps.phi_ablated", "trial_summary.phi_ablated_T", "ablation.phi_ablated",
       "ablation.ratio")),
    Q("drive", "drive_pred", "kinetic drive", "3.10", "dimensionless (dΔ/dt per unit η)",
      (_OBS + "vocab_drive", _OBS + "vocab_cosines"), ("steps.drive_pred",)),
    Q("dg-max", "dG_max", "drift of the overlaps", "3.11", "dimensionless (cosine)", (_OBS + "geometry_drift",),
      ("steps.dG_max", "trial_steps.dG_max", "trial_summary.max_dG", "isolation.max_dG",
       "isolation.n_dG_trials", "isolation.embedding_frozen")),
    Q("rotation", "∠ψ_g", "rotation of ψ_g", "3.11", "radians", (_OBS + "geometry_drift",),
      ("steps.psi_g_rotation",)),
    Q("loss", "L", "cross-entropy on g", "3.12", "nats", (_OBS + "observe",),
      ("steps.loss", "trial_steps.loss", "trial_summary.loss0", "trial_summary.loss_T")),
    Q("step-costs", "‖∇‖, ms", "gradient norm and timings", "3.12",
      "gradient 2-norm; milliseconds", ("phantom.workers.trial.run_trial",),
      ("steps.grad_norm", "steps.step_ms", "steps.obs_ms")),
    # 4. per-trial summary
    Q("trial-phi", "Φ_t", "Φ of a trial at step t", "4.1", "dimensionless",
      (_OUT + "trial_phi", _SUMMARY + "trial_steps"), ("trial_steps.phi", "trial_steps.n_contexts")),
    Q("flip", "t_flip", "flip step", "4.2", "steps", (_OUT + "flip_step", _OUT + "FlipStop", _SUMMARY + "trial_summary"),
      ("trial_summary.flip_step", "frozen_head.lora_flip_step", "frozen_head.frozen_flip_step")),
    Q("rank-flip", "t_rank", "rank flip step", "4.2", "steps", (_SUMMARY + "trial_summary",),
      ("trial_summary.rank_flip_step",)),
    Q("flipped", "flipped", "the η_c outcome of a trial", "4.2", "yes/no", (_OUT + "flipped", _SUMMARY + "trial_summary"),
      ("trial_summary.flipped", "frozen_head.lora_flipped", "frozen_head.frozen_flipped",
       "frozen_head.same_outcome")),
    Q("r", "R", "jump concentration ratio", "4.3", "dimensionless", (_SUMMARY + "trial_summary",),
      ("trial_summary.R", "frozen_head.lora_R", "frozen_head.frozen_R")),
    Q("jump-step", "t_jump", "jump step", "4.3", "steps", (_SUMMARY + "trial_summary",), ("trial_summary.jump_step",)),
    Q("r-delta", "R_Δ", "jump concentration of Δ", "4.3", "dimensionless", (_SUMMARY + "trial_summary",),
      ("trial_summary.R_delta",)),
    Q("amplification", "R/R_Δ", "softmax amplification", "4.3", "dimensionless", (_SUMMARY + "trial_summary",),
      ("trial_summary.amplification",)),
    Q("character", "character", "trajectory character", "4.4", "label",
      (_OUT + "Character", _SUMMARY + "trial_summary", "phantom.analysis.settings.AnalysisSettings"),
      ("trial_summary.character", "stopping.character", "frozen_head.lora_character",
       "frozen_head.frozen_character", "isolation.n_catapult", "isolation.n_catapult_like", "isolation.n_drift",
       "fits.n_immediate", "fits.n_stopped_at_flip")),
    Q("failure-mode", "failure mode", "kinematic or structural failure", "4.5", "label", (_SUMMARY + "trial_summary",),
      ("trial_summary.failure_mode", "stopping.failure_mode")),
    Q("phi-stop", "t_sat", "Φ-saturation stop", "4.6", "steps",
      (_OUT + "PhiSaturation", _OUT + "saturation_step", _SUMMARY + "trial_summary"),
      ("trial_summary.phi_stop", "stopping.phi_stop", "stopping.ce_stop")),
    Q("compute-saved", "1 − t_sat/T", "compute saved", "4.6", "fraction of the budget", (_SUMMARY + "trial_summary",),
      ("trial_summary.compute_saved", "stopping.compute_saved")),
    Q("ranking-changed", "ranking changed", "ranking changed after the stop", "4.6", "yes/no",
      (_SUMMARY + "trial_summary",),
      ("trial_summary.ranking_changed_after_stop", "stopping.ranking_changed_after_stop")),
    Q("status", "status", "how a trial ended", "4.7", "label", (_OUT + "TrialStatus", _OUT + "StopReason"),
      ("trials.status", "trials.error", "trials.stop_reason", "trial_summary.status", "trial_summary.stop_reason",
       "frozen_head.lora_status", "frozen_head.frozen_status")),
    # 5. fits across the grid
    Q("lr-ref", "η_ref", "reference (standard) rate", "5.1", "learning rate",
      ("phantom.analysis.settings.AnalysisSettings", "phantom.analysis.views.sources.lr_ref"),
      ("lr_ref.lr_ref", "reference_trials.lr_ref", "fits.lr_ref", "fits.ref_lr_min", "fits.ref_lr_max",
       "eta_c.lr_ref", "eta_c_sentence.lr_ref", "blind_prediction.lr_ref")),
    Q("x", "x = η·G_max", "control product", "5.2", "learning rate", (_SUMMARY + "trial_summary",),
      ("trial_summary.x", "shape_points.x")),
    Q("theta-shape", "θ*_shape", "shape boundary", "5.2", "learning rate",
      (_FITS + "shape_fit_sql", _FITS + "shape_fit", _BOOT + "fit_replicates"),
      ("fits.theta_shape", "fits.shape_lo", "fits.shape_hi", "fits.shape_errors", "fits.n_shape",
       "shape_fit.theta_shape")),
    Q("eta-c", "η_c", "critical learning rate", "5.3", "learning rate",
      (_OUT + "eta_c", _OUT + "bracket_status", _FITS + "eta_c", _FITS + "eta_c_sentence"),
      ("eta_c.eta_c", "eta_c.lr_lo", "eta_c.lr_hi", "eta_c.status", "eta_c.non_monotone", "eta_c_sentence.eta_c",
       "fits.n_eta_c", "fits.n_non_monotone")),
    Q("theta", "θ(s)", "threshold of a sentence", "5.3", "learning rate", (_FITS + "eta_c", _FITS + "eta_c_sentence"),
      ("eta_c.theta", "eta_c_sentence.theta")),
    Q("theta-resolve", "θ*_resolve", "resolution boundary", "5.3", "learning rate", (_BOOT + "fit_replicates",),
      ("fits.theta_resolve", "fits.theta_min", "fits.theta_max")),
    Q("gbar", "Ḡ_max", "mean G_max of the sentences", "5.3", "dimensionless (cosine)",
      (_BOOT + "fit_replicates", _TABLES + "blind_prediction"),
      ("fits.gmax_resolved", "fits.gmax_all", "blind_prediction.gbar")),
    Q("h", "H", "reduced field", "5.4", "dimensionless", (_BOOT + "fit_replicates", _FITS + "eta_c_sentence"),
      ("fits.H", "fits.H_min", "fits.H_max", "eta_c.H", "eta_c_sentence.H")),
    Q("b-ft", "B_FT", "burial depth after fine-tuning", "5.5", "dimensionless",
      (_FITS + "sentence_burial", _BOOT + "fit_replicates"), ("fits.B_FT", "sentence_burial.B_FT")),
    Q("bootstrap", "CI", "bootstrap interval", "5.6", "the unit of its fit",
      (_BOOT + "resamples", _BOOT + "resample_indices", _FITS + "fits"),
      ("fits.theta_shape_ci_lo", "fits.theta_shape_ci_hi", "fits.theta_shape_boot_defined",
       "fits.theta_resolve_ci_lo", "fits.theta_resolve_ci_hi", "fits.H_ci_lo", "fits.H_ci_hi",
       "fits.B_FT_ci_lo", "fits.B_FT_ci_hi", "fits.n_boot")),
    Q("spearman", "ρ", "Spearman rank correlation", "5.7", "dimensionless",
      (_TABLES + "correlations", _STATS + "spearman", _STATS + "spearman_p"),
      ("correlations.rho", "correlations.p_value", "correlations.rho_lo", "correlations.rho_hi", "correlations.n",
       "isolation.rho_gmax_R", "isolation.p_gmax_R", "isolation.rho_gmax_R_lo", "isolation.rho_gmax_R_hi")),
    Q("mean-g2", "⟨G²⟩", "bulk density (mean G²)", "5.8", "dimensionless", (_GEOM + "bulk_statistics",),
      ("geometry.mean_g2", "geometry.n_pairs")),
    Q("frac-above-tau", "f(G > τ)", "fraction of pairs above τ", "5.8", "fraction", (_GEOM + "bulk_statistics",),
      ("geometry.frac_above_tau", "geometry.tau")),
    Q("ks", "KS_norm, KS_exp", "Kolmogorov–Smirnov distances", "5.8", "dimensionless",
      (_STATS + "ks_normal", _STATS + "ks_exponential", _STATS + "ks_distance"),
      ("geometry.ks_norm", "geometry.ks_exp")),
    Q("class", "class", "bulk class A/B", "5.8", "label (A or B)", (_STATS + "bulk_class",),
      ("geometry.class", "geometry.class_index", "blind_prediction.class")),
    Q("h-class", "H̄_class", "mean H of the reference models", "5.9", "dimensionless",
      (_TABLES + "blind_prediction", "phantom.analysis.commands.predict.predict"),
      ("blind_prediction.H_class", "blind_prediction.reference", "blind_prediction.n_reference",
       "blind_prediction.reference_models")),
    Q("blind", "η_c,pred, θ*_pred", "blind prediction", "5.9", "learning rate",
      (_TABLES + "blind_prediction", "phantom.analysis.commands.predict.predict"),
      ("blind_prediction.eta_c_pred", "blind_prediction.theta_pred", "blind_prediction.eta_c_measured",
       "blind_prediction.theta_measured")),
    Q("rel-error", "rel. error", "relative error of the blind prediction", "5.9", "fraction",
      (_TABLES + "blind_prediction",), ("blind_prediction.rel_error",)),
    Q("head-gap", "G_gc(head) − G_gc", "head gap", "5.10", "dimensionless (cosine)",
      (_TABLES + "frozen_head", _TABLES + "frozen_head_models"),
      ("frozen_head.head_gap", "frozen_head_models.head_gap_mean", "frozen_head_models.head_gap_min",
       "frozen_head_models.head_gap_max", "frozen_head_models.head_gap_max_abs")),
    Q("verdict", "verdict", "a claim checked", "5.11", "label (holds, fails, untestable)",
      ("phantom.analysis.views.claims.claims", "phantom.analysis.views.claims.Claim"),
      ("claims.verdict", "claims.measured", "claims.why", "claims.paper")),
    # 6. architectures and protocols
    Q("model", "architecture", "model", "6.1", "name", ("phantom.workers.models.load_model",),
      ("trials.model", "steps.model")),
    Q("protocol", "protocol", "fine-tuning protocol", "6.2", "label",
      ("phantom.protocols.Protocol", "phantom.workers.protocols.apply_protocol"),
      ("trials.protocol", "steps.protocol")),
    Q("trainable", "trainable / total", "parameters that train", "6.2", "parameters",
      ("phantom.workers.protocols.count_params",), ("trials.trainable_params", "trials.total_params")),
)
del Q

# the raw views that read a Parquet file as is: their columns must be in its schema (phantom.schema)
PARQUET_VIEWS = {"steps": "STEP_SCHEMA", "trials": "TRIAL_SCHEMA", "geometry": "GEOMETRY_SCHEMA",
                 "geometry_sentences": "GEOMETRY_SCHEMA"}

SCIENCE_SECTIONS = {
    "experiment": "1", "notation": "2", "observables": "3", "summary": "4", "fits": "5", "protocols": "6",
}


def resolve(dotted: str):
    """The object a dotted path names (a module, then attributes), imported; ValueError if none."""
    import importlib

    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        name = ".".join(parts[:i])
        try:
            obj = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name and not name.startswith(f"{exc.name}."):
                raise
            continue
        for attr in parts[i:]:
            if not hasattr(obj, attr):
                raise ValueError(f"'{dotted}': '{name}' has no '{'.'.join(parts[i:])}'")
            obj = getattr(obj, attr)
        return obj
    raise ValueError(f"'{dotted}': no such module")


def quantity_problems(quantities=QUANTITIES) -> list[str]:
    """What does not exist: every function imported, every view in the registry, every column
    in the view (DESCRIBE) and, for a view that reads a Parquet file, in its schema."""
    import phantom.schema as schema
    from phantom.analysis.views import REGISTRY

    problems = []
    keys = [q.key for q in quantities]
    problems += [f"quantity '{k}' is listed twice" for k in sorted({k for k in keys if keys.count(k) > 1})]
    for q in quantities:
        if q.section.split(".")[0] not in SCIENCE_SECTIONS.values():
            problems.append(f"{q.key}: no section {q.section}")
        if not q.functions:
            problems.append(f"{q.key}: names no function")
        for path in q.functions:
            try:
                resolve(path)
            except (ValueError, ImportError) as exc:
                problems.append(f"{q.key}: {exc}")
        for loc in q.where:
            view, _, column = loc.partition(".")
            if view not in REGISTRY:
                problems.append(f"{q.key}: '{loc}': no view '{view}' in phantom.analysis.views.REGISTRY")
                continue
            if column not in [c for c, _ in _columns()[view]]:
                problems.append(f"{q.key}: '{loc}': view '{view}' has no column '{column}'")
            if view in PARQUET_VIEWS:
                names = getattr(schema, PARQUET_VIEWS[view]).names
                if column not in names:
                    problems.append(f"{q.key}: '{loc}': not in phantom.schema.{PARQUET_VIEWS[view]}")
    return problems


@cache
def check_quantities() -> None:
    """ValueError (the build fails) listing what :func:`quantity_problems` finds; once a build."""
    problems = quantity_problems()
    if problems:
        raise ValueError("docs/hooks.py QUANTITIES names what the code does not have:\n  "
                         + "\n  ".join(problems))


def _view_link(name: str) -> str:
    """The view's entry in the views reference (from a page beside it)."""
    anchor = "helper-view" if helper_view(_by_name()[name]) else "view"
    return f"[`{name}`](views.md#{anchor}-{name})"


def _where(q: Quantity) -> str:
    by_view: dict[str, list[str]] = {}
    for loc in q.where:
        view, _, column = loc.partition(".")
        by_view.setdefault(view, []).append(column)
    if not by_view:
        return "— (not stored)"
    return " · ".join(f"{_view_link(v)}: " + ", ".join(f"`{c}`" for c in cols) for v, cols in by_view.items())


def _quantity_row(q: Quantity) -> str:
    functions = "<br>".join(f"`{f}`" for f in q.functions)
    return (f"| [{_text(q.symbol)}](#q-{q.key}) | {_text(q.name)} | §{q.section} | {_cell(q.unit)} | "
            f"{functions} | {_where(q)} |")


def gen_quantities(section: str) -> str:
    """The quantities of one section of science.md ("3"): symbol (linked to its definition),
    unit, the functions that compute it, the columns that hold it."""
    check_quantities()
    rows = [q for q in QUANTITIES if q.section.split(".")[0] == section]
    out = ["| quantity | name | § | unit | computed by | held in (view: columns) |",
           "| --- | --- | --- | --- | --- | --- |"]
    out += [_quantity_row(q) for q in rows]
    return "\n".join(out)


def gen_column_index() -> str:
    """Every view column that holds a quantity, by view: the inverse of the quantity tables."""
    check_quantities()
    by_view: dict[str, dict[str, list[Quantity]]] = {}
    for q in QUANTITIES:
        for loc in q.where:
            view, _, column = loc.partition(".")
            by_view.setdefault(view, {}).setdefault(column, []).append(q)
    order = [v.name for v in _views()]
    out = ["| view | column | quantity |", "| --- | --- | --- |"]
    for view in sorted(by_view, key=order.index):
        described = [c for c, _ in _columns()[view]]
        for column, qs in sorted(by_view[view].items(), key=lambda item: described.index(item[0])):
            links = ", ".join(f"[{_text(q.symbol)}](#q-{q.key}) (§{q.section})" for q in qs)
            out.append(f"| {_view_link(view)} | `{column}` | {links} |")
    return "\n".join(out)


# the claims


def claims_md_ids() -> list[str]:
    """The claim ids of docs/reference/claims.md's table (its first column), in order."""
    text = (ROOT / "docs" / "reference" / "claims.md").read_text(encoding="utf-8")
    table = re.search(r"^\| claim \| .*\n\| --- .*\n((?:\|.*\n)*)", text, flags=re.MULTILINE)
    return [row.split("|")[1].strip() for row in table.group(1).splitlines()] if table else []


def claim_reads(claim) -> list[str]:
    """The views a claim's per-group SQL reads (registered view names among its words)."""
    from phantom.analysis.views import REGISTRY

    return REGISTRY.named_in(claim.groups)


def claim_quantities(claim) -> list[Quantity]:
    """The quantities whose columns, in the views the claim reads, its SQL names."""
    words = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", claim.groups))
    views = set(claim_reads(claim))
    return [q for q in QUANTITIES
            if any(v in views and c in words for v, _, c in (loc.partition(".") for loc in q.where))]


def claim_problems() -> list[str]:
    from phantom.analysis.views import REGISTRY
    from phantom.analysis.views.claims import CLAIMS

    problems = []
    ids = [c.id for c in CLAIMS]
    if claims_md_ids() != ids:
        problems.append(f"docs/reference/claims.md lists {claims_md_ids()}, the claims view {ids}")
    declared = set(REGISTRY["claims"].reads)
    for c in CLAIMS:
        undeclared = set(claim_reads(c)) - declared
        if undeclared:
            problems.append(f"claim '{c.id}' reads {sorted(undeclared)}, not among the claims view's reads")
        if not claim_reads(c):
            problems.append(f"claim '{c.id}' reads no registered view")
    return problems


def gen_claims() -> str:
    """The claims view's claims (phantom.analysis.views.claims.CLAIMS): what the paper says, where,
    the views and quantities each is judged on; how each is judged: claims.md."""
    from phantom.analysis.views.claims import CLAIMS

    problems = claim_problems()
    if problems:
        raise ValueError("the claims and their docs disagree:\n  " + "\n  ".join(problems))
    out = ["| # | claim | the paper | judged on | quantities | combined |", "| --- | --- | --- | --- | --- | --- |"]
    for c in CLAIMS:
        views = ", ".join(_view_link(v) for v in claim_reads(c))
        qs = ", ".join(f"[{_text(q.symbol)}](#q-{q.key})" for q in claim_quantities(c))
        rule = "some group shows it" if c.combine == "any" else "no group contradicts it"
        paper = re.sub(r"(?<!\w)§", "paper §", c.paper)  # on this page a bare § is the page's own
        out.append(f"| {c.ord} | **`{c.id}`**: {_text(c.claim)} | {_text(paper)} | {views} | {qs or '—'} | {rule} |")
    return "\n".join(out)


GENERATORS = {
    "sweep-files": gen_sweep_files,
    "cli": gen_cli,
    "sweep-keys": gen_sweep_keys,
    "views": gen_views,
    "helper-views": gen_helper_views,
    "report": gen_report,
    "step-columns": gen_step_columns,
    "trial-columns": gen_trial_columns,
    # docs/reference/science.md
    **{f"quantities-{name}": functools.partial(gen_quantities, number) for name, number in SCIENCE_SECTIONS.items()},
    "quantity-columns": gen_column_index,
    "science-claims": gen_claims,
}


def on_page_markdown(markdown: str, page, config, files) -> str:  # noqa: ARG001  (MkDocs hook)
    def replace(match: re.Match) -> str:
        name = match.group(1)
        if name not in GENERATORS:
            raise ValueError(f"{page.file.src_path}: unknown generated block '{name}' "
                             f"(known: {', '.join(GENERATORS)})")
        return GENERATORS[name]()

    return MARKER.sub(replace, markdown)
