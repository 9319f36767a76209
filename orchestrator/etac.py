"""Adaptive search for the critical learning rate η_c (SPEC §5), ``search.mode: eta-c``.

Per bracket (model, sentence, protocol, seed): run the ends ``lr_min`` and ``lr_max``, then
bisect in log space between the largest rate that does not flip (Φ never > 0 within the budget)
and the smallest that does, until ``hi / lo <= tolerance``. η_c = sqrt(lo * hi), as in SPEC §5.
A grid of that resolution needs ``log(lr_max/lr_min) / log(tolerance)`` rates; bisection needs
``2 + ceil(log2(that))`` (1e-6..1e-3 to a factor 1.1: 9 trials instead of 73).

All brackets advance together: each round dispatches one trial per open bracket through the
grid runner (same trainable, same storage, same ids), so rounds run in parallel on a cluster.

State: one Optuna study per bracket (``optuna.journal`` in the sweep folder; param
``log10_lr``, value 1 = flipped, 0 = not) records every evaluated rate, and the next rate is
proposed from the study. The data is the ground truth: before each round the studies are
synced from the trial records, so a resume works even when the journal is lost.
Assumes flipping is monotone in η; a diverged trial counts as above η_c.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from phantom import layout
from phantom.config import TrialConfig
from phantom.storage import Store
from orchestrator.config import SweepConfig
from orchestrator.grid import Grid, expand

JOURNAL_FILE = "optuna.journal"
RESULT_FILE = "eta_c.parquet"
RESULT_SCHEMA = pa.schema([
    ("model", pa.string()), ("sentence_id", pa.string()), ("protocol", pa.string()), ("seed", pa.int64()),
    ("lr_lo", pa.float64()), ("lr_hi", pa.float64()), ("eta_c", pa.float64()), ("trials", pa.int32()),
    ("status", pa.string()),  # found | below-range | above-range | pre-resolved | error | open
])


@dataclass
class Bracket:
    template: TrialConfig  # the bracket's trial at a placeholder rate
    seen: dict[float, bool] = field(default_factory=dict)  # lr -> flipped
    pre_resolved: bool = False
    error: str | None = None

    @property
    def key(self) -> str:
        t = self.template
        return f"{t.model}|{t.sentence_id}|{t.protocol}|seed={t.seed}"

    def trial(self, lr: float) -> TrialConfig:
        return self.template.replace(lr=float(lr))

    def bounds(self) -> tuple[float | None, float | None]:
        lo = max((lr for lr, f in self.seen.items() if not f), default=None)
        hi = min((lr for lr, f in self.seen.items() if f), default=None)
        return lo, hi

    def status(self, lr_min: float, lr_max: float, tol: float) -> str:
        if self.error:
            return "error"
        if self.pre_resolved:
            return "pre-resolved"
        if lr_min not in self.seen or lr_max not in self.seen:
            return "open"
        lo, hi = self.bounds()
        if lo is None:
            return "below-range"
        if hi is None:
            return "above-range"
        return "found" if hi / lo <= tol * (1 + 1e-9) or hi < lo else "open"

    def proposals(self, lr_min: float, lr_max: float, tol: float) -> list[float]:
        if self.status(lr_min, lr_max, tol) != "open":
            return []
        ends = [lr for lr in (lr_min, lr_max) if lr not in self.seen]
        if ends:
            return ends
        lo, hi = self.bounds()
        return [_round(math.sqrt(lo * hi))]


def _round(lr: float) -> float:
    return float(f"{lr:.6g}")  # stable, readable rates (and trial ids) across resumes


def plan_brackets(sweep: SweepConfig, sentences_file: Path) -> tuple[list[Bracket], Grid]:
    grid = expand(sweep, sentences_file, lrs=(sweep.search.lr_min,))
    return [Bracket(t) for t in grid.trials], grid


def _observe(store: Store, trial: TrialConfig) -> tuple[str, bool, bool] | None:
    """(status, flipped, pre-resolved) of a complete trial, or None when it is not complete."""
    import pyarrow.compute as pc

    tid = trial.trial_id
    if not store.exists(*layout.trial_file(tid)):
        return None
    status = store.read_table(*layout.trial_file(tid)).column("status")[0].as_py()
    steps = store.read_table(*layout.steps_file(tid), ) if store.exists(*layout.steps_file(tid)) else None
    if steps is None or steps.num_rows == 0:
        return status, status == "diverged", False
    first = steps.filter(pc.equal(steps["context_id"], 0))
    phi = first.column("phi").to_pylist()
    step = first.column("step").to_pylist()
    phi0 = phi[step.index(0)] if 0 in step else None
    flipped = any(p is not None and p > 0 for p in phi) or status == "diverged"
    return status, flipped, phi0 is not None and phi0 > 0


def _studies(store: Store):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if store.is_local:
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        store.fs.create_dir(store.root, recursive=True)
        return JournalStorage(JournalFileBackend(store.path(JOURNAL_FILE)))
    return optuna.storages.InMemoryStorage()  # object stores: rebuilt from the data each time


def _sync(storage, b: Bracket) -> None:
    """Record in the bracket's Optuna study every rate the data holds that it lacks."""
    import optuna
    from optuna.distributions import FloatDistribution

    study = optuna.create_study(study_name=b.key, storage=storage, load_if_exists=True, direction="minimize")
    known = {round(t.params["log10_lr"], 9) for t in study.get_trials(deepcopy=False)}
    dist = FloatDistribution(-12.0, 2.0)
    for lr, flipped in sorted(b.seen.items()):
        if round(math.log10(lr), 9) not in known:
            study.add_trial(optuna.trial.create_trial(
                params={"log10_lr": math.log10(lr)}, distributions={"log10_lr": dist}, value=float(flipped),
                user_attrs={"trial_id": b.trial(lr).trial_id, "lr": lr},
            ))


def _refresh(store: Store, b: Bracket, s) -> None:
    """Read every completed trial of this bracket along its deterministic bisection path."""
    for _ in range(s.max_rounds + 2):
        props = b.proposals(s.lr_min, s.lr_max, s.tolerance)
        got = False
        for lr in props:
            obs = _observe(store, b.trial(lr))
            if obs is None:
                continue
            status, flipped, pre = obs
            got = True
            if status == "error":
                b.error = f"trial {b.trial(lr).trial_id} at lr={lr:g} failed"
            b.seen[lr] = flipped
            b.pre_resolved = b.pre_resolved or pre
        if not got:
            return


def run_eta_c(sweep: SweepConfig, sentences_file: Path, store: Store, *, address=None,
              rerun_errored=False, stream=None):
    from orchestrator.runner import Outcome, _ray_up, dispatch, summary, write_plan

    stream = stream or sys.stderr
    s = sweep.search
    brackets, grid = plan_brackets(sweep, sentences_file)
    for sk in grid.skipped:
        print(f"skipping {sk.model} / {sk.sentence_id}: {sk.reason}", file=stream)
    journal = _studies(store)
    dispatched: set[str] = set()
    ran = 0
    started = False
    try:
        for round_no in range(1, s.max_rounds + 1):
            todo = []
            for b in brackets:
                _refresh(store, b, s)
                _sync(journal, b)
                todo += [b.trial(lr) for lr in b.proposals(s.lr_min, s.lr_max, s.tolerance)]
            dispatched |= {t.trial_id for b in brackets for t in map(b.trial, b.seen)}
            dispatched |= {t.trial_id for t in todo}
            write_plan(store, sweep, sentences_file, Grid((), grid.skipped, grid.unchecked), dispatched)
            if not todo:
                break
            print(f"eta-c round {round_no}: {len(todo)} trials", file=stream, flush=True)
            started = started or _ray_up(address)
            ran += dispatch(store, sweep, todo, address=address, rerun_errored=rerun_errored, stream=stream).dispatched
            if not any(_observe(store, t) for t in todo):
                break  # nothing completed this round (all lost): stop rather than loop
    finally:
        if started:
            import ray

            ray.shutdown()
    rows = []
    for b in brackets:
        lo, hi = b.bounds()
        st = b.status(s.lr_min, s.lr_max, s.tolerance)
        eta = math.sqrt(lo * hi) if st == "found" else None
        t = b.template
        rows.append(dict(model=t.model, sentence_id=t.sentence_id, protocol=t.protocol, seed=t.seed,
                         lr_lo=lo, lr_hi=hi, eta_c=eta, trials=len(b.seen), status=st))
    store.write_table(pa.Table.from_pylist(rows, schema=RESULT_SCHEMA), RESULT_FILE)
    print(format_eta_c(rows), file=stream)
    print(summary(store.uri), file=stream)
    return Outcome(store.uri, ran, len(dispatched) - ran, False)


def format_eta_c(rows: list[dict]) -> str:
    lines = [f"{'model':<22} {'sentence':<12} {'protocol':<8} {'eta_c':>10} {'lo':>10} {'hi':>10} {'trials':>6}  status"]
    for r in rows:
        f = lambda v: f"{v:10.3g}" if v is not None else f"{'-':>10}"  # noqa: E731
        lines.append(f"{r['model']:<22} {r['sentence_id']:<12} {r['protocol']:<8} {f(r['eta_c'])} "
                     f"{f(r['lr_lo'])} {f(r['lr_hi'])} {r['trials']:>6}  {r['status']}")
    return "\n".join(lines)
