"""One fine-tuning trial — or a pack of trials trained together — read top to bottom.

Row ``t`` describes the model after ``t`` optimizer steps (row 0: the base model). The forward
pass that computes step t+1's gradient *is* the evaluation of state t, so observing costs no
extra forward except the last — in full precision; a trial that trains under bf16 or fp16
autocast reads its observables from a full-precision forward of their own (engines.Precision,
docs/design/precision.md). Dropout is off (the model stays in eval mode): the study
measures the deterministic dynamics of one example, and the observables must come from the
same logits the gradient sees.

Each trial writes ``steps/<id>.parquet`` then ``trials/<id>.parquet`` (phantom.layout) the
moment it leaves the loop — finished, stopped, diverged or failed — so a later crash of its
pack loses nothing of it.
"""

from __future__ import annotations

import dataclasses
import math
import socket
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone

import torch

from phantom import layout
from phantom.config import PackMode, TrialConfig
from phantom.errors import ConfigError, SentenceError
from phantom.outcomes import FlipStop, PhiSaturation, StopReason, TrialStatus, trial_phi
from phantom.schema import StepRow, TrialRecord, row_of, steps_table
from phantom.storage import Store
from phantom.workers import observables as obs
from phantom.workers import packs
from phantom.workers.engines import Engine, Forward, encode, release_memory
from phantom.workers.models import LoadedModel, load_model_cached
from phantom.workers.sentences import token_id

# callback(cfg, step, rows of that step) -> a stop reason (e.g. "phi-saturation") or None
StepCallback = Callable[[TrialConfig, int, list[dict]], "str | None"]


@dataclass(frozen=True)
class TrialResult:
    trial_id: str
    status: TrialStatus
    steps_done: int
    stop_reason: str | None
    error: str | None
    rows: int
    wall_s: float
    steps_path: str
    trial_path: str
    final: dict  # the last step row of the first context


def resolve_ids(cfg: TrialConfig, tokenizer) -> tuple[int, int]:
    """Token ids of target and competitor; SentenceError if either is not one token."""
    try:
        return token_id(tokenizer, cfg.target), token_id(tokenizer, cfg.competitor)
    except SentenceError as exc:
        raise SentenceError(f"sentence '{cfg.sentence_id}' on model '{cfg.model}': {exc}") from None


def identity(cfg: TrialConfig) -> dict:
    """What names a trial in its record (and, the columns among them, in its step rows): the
    one place a trial's identity is copied from its config."""
    return dict(
        trial_id=cfg.trial_id, bracket_id=cfg.bracket_id, model=cfg.model, protocol=str(cfg.protocol),
        sentence_id=cfg.sentence_id, target=cfg.target, competitor=cfg.competitor,
        context=cfg.contexts[0], n_contexts=len(cfg.contexts), context_index=cfg.context_index,
        lr=float(cfg.lr), seed=int(cfg.seed), steps=cfg.training.steps, config=cfg.canonical_json(),
    )


def pack_key(cfg: TrialConfig) -> str:
    """Trials with the same key can train in one pack: everything but the rate and the seed
    (and the stopper, applied per member) is shared."""
    return cfg.replace(lr=1.0, seed=0).bracket_id


# ----------------------------------------------------------------------------------------------
# one member of the loop: its rows, its stop rules, its record


@dataclass
class StepCost:
    """The optimizer step that produced a row: its gradient norm and wall ms (None at step 0)."""

    grad_norm: float | None = None
    step_ms: float | None = None


@dataclass
class Member:
    """One trial of the loop: its rows, its stop rules, its record."""

    cfg: TrialConfig
    record: TrialRecord
    t0: float
    rows: list[StepRow] = field(default_factory=list)
    references: dict[int, obs.GeometryReference] = field(default_factory=dict)  # each context's step 0
    frozen: obs.VocabMemo | None = None  # what a frozen E gives every step (None: E trains)
    rules: list = field(default_factory=list)
    cost: StepCost = field(default_factory=StepCost)  # of the step that produced the next rows
    result: TrialResult | None = None

    @classmethod
    def start(cls, cfg: TrialConfig, base: LoadedModel, g: int, c: int, pack_size: int) -> Member:
        record = TrialRecord(
            **identity(cfg), steps_done=0,
            gmax=_cosine(base.input_embeddings(), g, c), gmax_head=_cosine(base.head_weights(), g, c),
            tied=base.tied, pack_size=pack_size, started_at=datetime.now(timezone.utc),
            host=socket.gethostname(), node_id=_ray_node_id(), device="cpu", versions=_versions(),
        )
        rules = []
        if cfg.stopper.at_flip:
            rules.append((FlipStop(), StopReason.FLIP))
        if cfg.stopper.phi_saturation:
            rules.append((PhiSaturation(cfg.stopper.window, cfg.stopper.tol), StopReason.PHI_SATURATION))
        frozen = obs.VocabMemo() if cfg.protocol.embedding_frozen else None
        return cls(cfg, record, time.perf_counter(), rules=rules, frozen=frozen)

    def add_rows(self, step: int, observed: list[obs.Observed], obs_ms: float) -> list[dict]:
        """This step's rows, one per context; returns them as the step callback sees them."""
        cfg = self.cfg
        for i, o in enumerate(observed):
            self.rows.append(StepRow(
                trial_id=cfg.trial_id, step=step, context_id=i, model=cfg.model, protocol=str(cfg.protocol),
                sentence_id=cfg.sentence_id, lr=float(cfg.lr), seed=int(cfg.seed), loss=o.loss,
                grad_norm=self.cost.grad_norm, step_ms=self.cost.step_ms, obs_ms=obs_ms,
                train_precision=self.record.train_precision, obs_precision=self.record.obs_precision,
                **dataclasses.asdict(o.values)))
        self.record.steps_done = step
        return [{"loss": o.loss, **dataclasses.asdict(o.values)} for o in observed]

    def stop_reason(self, step: int, observed: list[obs.Observed]) -> str | None:
        """The first configured rule that stops at this step (each rule sees Φ of the trial,
        the mean over contexts; every rule is fed every step)."""
        phi = trial_phi([o.values.phi for o in observed])
        hits = [reason for rule, reason in self.rules if rule.update(step, phi)]
        return str(hits[0]) if hits else None

    def finish(self, store: Store, status: TrialStatus, error: str | None = None,
               stop_reason: str | None = None) -> TrialResult:
        """Write the steps, then the record (the trial is complete when the record exists)."""
        rec = self.record
        rec.status, rec.error, rec.stop_reason = status.value, error, stop_reason
        rec.finished_at = datetime.now(timezone.utc)
        rec.wall_s = time.perf_counter() - self.t0
        tid = rec.trial_id
        steps_path = store.write_table(steps_table(self.rows), *layout.steps_file(tid))
        trial_path = store.write_table(rec.table(), *layout.trial_file(tid))
        final = row_of(self.rows[-1]) if self.rows else {}
        self.result = TrialResult(tid, status, rec.steps_done, stop_reason, error, len(self.rows), rec.wall_s,
                                  steps_path, trial_path, final)
        return self.result


# ----------------------------------------------------------------------------------------------
# the loop


def run_trial(
    cfg: TrialConfig,
    out: Store | str,
    *,
    base: LoadedModel | None = None,
    callback: StepCallback | None = None,
    raise_errors: bool = True,
) -> TrialResult:
    """Run one trial and write ``steps/<id>.parquet`` then ``trials/<id>.parquet`` under ``out``.

    ``base`` is a loaded base model that is not modified (a copy trains); without one the model
    is loaded (and kept for the next trial of this process). Input errors (unknown model,
    multi-token target) raise before anything is written. A failure during training is written
    down as status ``error`` with the rows so far, then re-raised unless ``raise_errors`` is off.
    """
    return run_pack([cfg], out, base=base, callback=callback, raise_errors=raise_errors)[0]


def run_pack(
    cfgs: Sequence[TrialConfig],
    out: Store | str,
    *,
    base: LoadedModel | None = None,
    callback: StepCallback | None = None,
    raise_errors: bool = True,
    mode: PackMode = PackMode.AUTO,
) -> list[TrialResult]:
    """Run trials that share a pack key (:func:`pack_key`) together; one result per config, in
    order, on the engine :func:`phantom.workers.packs.pack_engine` chooses (one config: a
    :class:`~phantom.workers.engines.SingleEngine`; several: the pack engine of their protocol
    and ``mode``). Each member keeps its own id, rows, record, status, divergence and early
    stop; one that leaves the pack is written at once.
    """
    cfgs = list(cfgs)
    if not cfgs:
        return []
    if len({pack_key(c) for c in cfgs}) != 1 or len({c.trial_id for c in cfgs}) != len(cfgs):
        raise ConfigError("a pack holds distinct trials that differ only in learning rate, seed or stopper")
    store = out if isinstance(out, Store) else Store.open(out)
    first = cfgs[0]
    base = base or load_model_cached(first.model, trust_remote_code=first.trust_remote_code)
    g, c = resolve_ids(first, base.tokenizer)
    if max(g, c) >= base.input_embeddings().shape[0]:
        raise SentenceError(f"token id of '{first.target}'/'{first.competitor}' is outside the embedding")

    members = [Member.start(cfg, base, g, c, len(cfgs)) for cfg in cfgs]
    engine: Engine | None = None
    fwd = None
    try:
        # ---- the engine: model copy or pack, protocol, optimizer, device ----
        batch = encode(base.tokenizer, first.contexts)
        engine = packs.pack_engine(cfgs, base, batch, g, mode=mode)
        for k, m in enumerate(members):
            m.record.trainable_params, m.record.total_params = engine.params_count(k)
            m.record.device = _device_name(engine.device)
            m.record.train_precision, m.record.obs_precision = engine.precision.train, engine.precision.observe
        budget = first.training.steps

        for t in range(budget + 1):
            train = t < budget
            # ---- forward: evaluate state t (and the loss of step t+1) ----
            t0 = time.perf_counter()
            fwd = engine.forward(train)
            t_fwd = time.perf_counter() - t0
            # ---- observe each member; decide who goes on ----
            running = list(engine.active)
            for j, k in enumerate(running):
                m = members[k]
                if not _finite(fwd, j):
                    m.record.steps_done = t
                    m.finish(store, TrialStatus.DIVERGED, f"non-finite loss or logits after step {t}")
                    engine.drop(k)
                    continue
                t1 = time.perf_counter()
                observed = _observe(m, fwd, j, engine.embedding(k), g, c)
                rows = m.add_rows(t, observed, (time.perf_counter() - t1) * 1e3 / len(observed))
                reason = m.stop_reason(t, observed)
                asked = callback(m.cfg, t, rows) if callback is not None else None
                if not train or reason or asked:
                    m.finish(store, TrialStatus.OK, stop_reason=asked or reason)
                    engine.drop(k)
            if not engine.active:
                break
            # ---- one optimizer step for the members still in the pack ----
            keep = [j for j, k in enumerate(running) if k in engine.active]
            t2 = time.perf_counter()
            norms = engine.step(fwd.loss[keep])
            step_ms = (t_fwd + time.perf_counter() - t2) * 1e3
            for k, norm in zip(engine.active, norms):
                members[k].cost = StepCost(norm, step_ms)
    except Exception as exc:  # recorded for every member still running, then re-raised
        message = f"{type(exc).__name__}: {exc}".splitlines()[0]
        for m in members:
            if m.result is None:
                m.finish(store, TrialStatus.ERROR, message)
        if raise_errors:
            raise
    finally:
        if engine is not None:
            engine.close()
        engine = fwd = None  # the copy, its gradients and Adam state go before the next pack
        release_memory()
    return [m.result for m in members]


def record_failure(cfg: TrialConfig, out: Store | str, exc: BaseException) -> TrialResult:
    """Write an ``error`` record (no rows) for a trial that failed before its loop could start
    (the model did not load, ...): every failure leaves its message on disk."""
    store = out if isinstance(out, Store) else Store.open(out)
    record = TrialRecord(**identity(cfg), started_at=datetime.now(timezone.utc), host=socket.gethostname(),
                         node_id=_ray_node_id())
    member = Member(cfg, record, time.perf_counter())
    return member.finish(store, TrialStatus.ERROR, f"{type(exc).__name__}: {exc}".splitlines()[0])


# ----------------------------------------------------------------------------------------------
# helpers


def _finite(fwd: Forward, j: int) -> bool:
    return bool(torch.isfinite(fwd.loss[j]) and torch.isfinite(fwd.z[j]).all())


def _observe(m: Member, fwd: Forward, j: int, E: torch.Tensor, g: int, c: int) -> list[obs.Observed]:
    """science §3 observables of each context of member ``m`` (pure functions, phantom.workers.observables)."""
    o = m.cfg.observables
    out = []
    for i in range(fwd.z.shape[1]):
        seen = obs.observe(fwd.z[j, i], fwd.h[j, i], E, g, c, pool_mass=o.pool_mass,
                           pool_cap=o.pool_cap, reference=m.references.get(i), frozen=m.frozen)
        if i not in m.references:
            m.references[i] = obs.GeometryReference.capture(E.detach(), seen.pool, g)
        out.append(seen)
    return out


def _cosine(weights: torch.Tensor, g: int, c: int) -> float:
    psi = obs.unit_rows(weights.detach()[[g, c]])
    return float(psi[0] @ psi[1])


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return str(device)


def _ray_node_id() -> str | None:
    """The Ray node running this trial, when it runs under Ray (never imports Ray itself)."""
    ray = sys.modules.get("ray")
    if ray is None or not ray.is_initialized():
        return None
    try:
        return ray.get_runtime_context().get_node_id()
    except Exception:  # noqa: BLE001 - best effort metadata
        return None


def _versions() -> str:
    import json

    from phantom.versions import versions  # package versions, the lock's hash and any drift from it

    return json.dumps(versions(), sort_keys=True)
