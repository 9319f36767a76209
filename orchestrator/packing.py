"""Trial packs and dispatch units.

A *pack* is what one worker trains at a time (:func:`phantom.workers.trial.run_pack`): up to K trials
that share :func:`phantom.workers.trial.pack_key` (model, sentence, contexts, protocol, budget,
settings) and differ in learning rate or seed, trained as one vectorised loop. Each member
keeps its own id, rows and record; a stopped or diverged member leaves the pack and the rest go
on. A *unit* is one Ray Tune trial: one pack, or when a sweep has many packs a batch of
consecutive packs run one after another by the same worker (:func:`make_units`), so Tune
tracks a bounded number of trials however many are planned.

Both are formed from the trials that are *pending* at dispatch time, so a resumed or retried
sweep re-forms them from what is left (and the trainable skips members that completed
meanwhile). Grouping is deterministic: the grid's order within each pack key, cut into chunks
of at most K; when those packs are fewer than the workers, the largest are split so that
every worker gets one (:func:`split_counts`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import json
import math
from dataclasses import dataclass

from phantom import layout
from phantom.config import TrialConfig
from phantom.orchestrator.config import SweepConfig
from phantom.protocols import Protocol

# The default most-trials-per-pack, per device and protocol (``resources.pack: auto``): the one
# table, from bench/bench_packs.py (docs/design/packs.md, docs/results/benchmarks.md). CPU, measured on smollm2-135m: a LoRA
# member step costs 1/2.5 of a trial alone at K = 5 and 1/3.7 at K = 8; full-FT packs run at
# 0.4-0.5x (vmap) or ~1x (loop), so full FT stays unpacked. CUDA, not measured (no GPU was lent):
# LoRA packs are launch-bound and a member costs 7 MB beside the shared base, so 8 is
# conservative; full FT stays unpacked until a GPU run of the benchmark shows the vmap pack pays
# (bench/bench_gpu.py prints packed against unpacked steps/s on the card).
# Prefix tuning always runs as a loop pack (phantom.workers.packs.pack_engine), so it gains nothing.
PACK_DEFAULTS: dict[str, dict[Protocol, int]] = {
    "cpu": {Protocol.LORA: 8, Protocol.LORA_FROZEN_HEAD: 8, Protocol.PREFIX: 1, Protocol.FULL: 1},
    "cuda": {Protocol.LORA: 8, Protocol.LORA_FROZEN_HEAD: 8, Protocol.PREFIX: 1, Protocol.FULL: 1},
}
def packed_engines_available() -> bool:
    """Whether packs of several trials can run here: the packed engines
    (``phantom.workers.packs``) are importable."""
    try:
        return importlib.util.find_spec("phantom.workers.packs") is not None
    except ImportError:
        return False


def untied_head(model: str | None) -> bool:
    """Whether ``model`` is an embedded model whose LM head is untied (known without loading
    it; hub models are not looked up)."""
    if model is None:
        return False
    from phantom.models import EMBEDDED  # torch-free

    return model in EMBEDDED and not EMBEDDED[model].tied


def pack_limit(sweep: SweepConfig, protocol: Protocol | str, model: str | None = None) -> int:
    """K for this sweep and protocol: ``resources.pack`` when a number, else the table's
    default for the device (1 when no packed engine is installed, announced by ``describe``).

    ``lora`` on an untied head trains the head (:meth:`Protocol.head_trained
    <phantom.protocols.Protocol.head_trained>`), so a pack carries one head per member: on
    qwen2.5-coder-0.5b (151 936 x 896) a pack of 2 ran 1.06x and of 3 0.86x the trials alone,
    at 8.4 and 11.1 GB against 7.1 GB (docs/results/cross-architecture.md), so ``auto``
    leaves ``lora`` unpacked on an untied embedded model (``lora-frozen-head`` packs: 3.8x)."""
    pack = sweep.resources.pack
    if isinstance(pack, int):
        return pack
    if not packed_engines_available():
        return 1
    protocol = Protocol.parse(protocol)
    if untied_head(model) and protocol.head_trained(tied=False):
        return 1
    return PACK_DEFAULTS[sweep.resources.device].get(protocol, 1)


def check_packing(sweep: SweepConfig) -> None:
    from phantom.errors import ConfigError

    if isinstance(sweep.resources.pack, int) and sweep.resources.pack > 1 and not packed_engines_available():
        raise ConfigError(
            f"`resources.pack: {sweep.resources.pack}` needs the packed engines (phantom.workers.packs), which are "
            "not installed here; use `pack: 1` or `pack: auto`"
        )


@dataclass(frozen=True)
class Pack:
    members: tuple[TrialConfig, ...]
    member_ids: tuple[str, ...] | None = None  # the members' trial ids, when already computed

    @property
    def ids(self) -> list[str]:
        return list(self.member_ids) if self.member_ids is not None else [m.trial_id for m in self.members]

    @property
    def pack_id(self) -> str:
        """The Tune trial's name: the trial id for a pack of one, else a hash of the ids."""
        ids = self.ids
        if len(ids) == 1:
            return ids[0]
        return "pack-" + hashlib.sha256(",".join(ids).encode()).hexdigest()[:16]


# the fields that are not part of the pack key: phantom.workers.trial.pack_key hashes every field of the
# config but these (it sets lr and seed to constants, bracket_id drops lr and stopper)
_FREE_FIELDS = frozenset({"lr", "seed", "stopper"})


_ALL_FIELDS = tuple(f.name for f in dataclasses.fields(TrialConfig))
_GROUP_FIELDS = tuple(f.name for f in dataclasses.fields(TrialConfig) if f.name not in _FREE_FIELDS)


def pack_group(cfg: TrialConfig) -> tuple:
    """The grouping of :func:`phantom.workers.trial.pack_key` (the definition, which ``run_pack``
    checks) without its hash: the values of every other field, compared as values. A few us a
    trial where ``pack_key`` costs ~100 us, which counts at 100,000 trials."""
    return tuple(getattr(cfg, name) for name in _GROUP_FIELDS)


def split_counts(sizes: list[int], limits: list[int], workers: int | None) -> list[int]:
    """How many packs each pack-key group is cut into.

    At least ``ceil(size / K)`` (no pack above its K). When that makes fewer packs than
    ``workers``, extra packs go one at a time to the group whose packs are then largest
    (the first such group on a tie), never more packs than members, until every worker has
    one: five trials of one key on two workers make packs of 3 and 2, not one pack of 5 on
    one worker while the other idles. With more packs than workers, nothing is split (a pack of
    K costs less per member than two smaller ones)."""
    counts = [max(1, math.ceil(n / k)) for n, k in zip(sizes, limits)]
    if not workers or not counts:
        return counts
    while sum(counts) < workers:
        widest = max(range(len(sizes)), key=lambda g: (math.ceil(sizes[g] / counts[g]) if counts[g] < sizes[g] else 0, -g))
        if counts[widest] >= sizes[widest]:
            break  # every pack has one member: nothing left to split
        counts[widest] += 1
    return counts


def _cut(items: list, parts: int) -> list[list]:
    """``items`` in order, in ``parts`` consecutive chunks of sizes differing by at most one,
    the larger first."""
    base, extra = divmod(len(items), parts)
    out, i = [], 0
    for p in range(parts):
        size = base + (p < extra)
        out.append(items[i : i + size])
        i += size
    return out


def make_packs(trials: list[TrialConfig], sweep: SweepConfig, workers: int | None = None,
               ids: list[str] | None = None) -> list[Pack]:
    """Group ``trials`` (in order) by pack key into packs of at most K, first-seen key first;
    when that gives fewer packs than ``workers`` (the Tune trials the cluster runs at once),
    the groups are cut into more packs (:func:`split_counts`). A group that was split, or any
    group when all packs run at once, is cut into near-equal packs (the larger first).
    ``ids``: the trials' ids, when the caller has them (computing one costs ~90 us)."""
    ids = list(ids) if ids is not None else [t.trial_id for t in trials]
    groups: dict[tuple, list[int]] = {}
    for i, t in enumerate(trials):
        groups.setdefault(pack_group(t), []).append(i)
    members = list(groups.values())
    limits = [pack_limit(sweep, trials[g[0]].protocol, trials[g[0]].model) for g in members]
    base = [max(1, math.ceil(len(g) / k)) for g, k in zip(members, limits)]
    counts = split_counts([len(g) for g in members], limits, workers)
    at_once = bool(workers) and sum(counts) <= workers  # every pack runs at the same time
    packs = []
    for group, k, count, plain in zip(members, limits, counts, base):
        # K at a time (the last pack takes the rest), unless the group was split or all packs
        # run at once: then near-equal, since the largest pack sets when the last one ends
        chunks = _cut(group, count) if at_once or count != plain else [group[i : i + k] for i in range(0, len(group), k)]
        for chunk in chunks:
            packs.append(Pack(tuple(trials[i] for i in chunk), tuple(ids[i] for i in chunk)))
    return packs


# ----------------------------------------------------------------------------------------------
# dispatch units: batches of packs, one Tune trial each

UNITS_PER_WORKER = 8  # at least this many units per worker, so the last units leave little idle
MAX_UNITS = 500  # beyond this many packs (and 8 a worker), packs are batched into this many units


def unit_count(packs: int, workers: int) -> int:
    """How many Tune trials ``packs`` packs are handed to Tune as: one each up to
    ``max(MAX_UNITS, UNITS_PER_WORKER x workers)``, then that many batches. Tune's own cost
    (its trial objects, the experiment state it rewrites, results, the progress view) grows
    with its trials; a batch costs one trial however many trials it holds, and a killed batch
    loses only the pack it was running (every member's record is written as it finishes)."""
    return min(packs, max(MAX_UNITS, UNITS_PER_WORKER * max(1, workers)))


@dataclass(frozen=True)
class Unit:
    packs: tuple[Pack, ...]

    @property
    def unit_id(self) -> str:
        """The Tune trial's name: the pack's own for a unit of one pack, else a hash of the ids."""
        if len(self.packs) == 1:
            return self.packs[0].pack_id
        ids = ",".join(i for p in self.packs for i in p.ids)
        return "unit-" + hashlib.sha256(ids.encode()).hexdigest()[:16]

    @property
    def members(self) -> int:
        return sum(len(p.members) for p in self.packs)


def make_units(packs: list[Pack], workers: int) -> list[Unit]:
    """Consecutive packs (grid order: one model after another, so a worker keeps its model
    loaded) in :func:`unit_count` batches of near-equal numbers of packs."""
    if not packs:
        return []
    return [Unit(tuple(chunk)) for chunk in _cut(packs, unit_count(len(packs), workers))]


def dispatch_units(trials: list[TrialConfig], sweep: SweepConfig, workers: int,
                   ids: list[str] | None = None) -> list[Unit]:
    """Packs (split to fill ``workers``), then units: what one dispatch hands to Tune."""
    return make_units(make_packs(trials, sweep, workers, ids), workers)


def encode_unit(unit: Unit) -> dict:
    """The unit as the trainable reads it: its first member's config in full, every member as
    its id and the fields where it differs from that one (a learning rate, a seed, a sentence:
    tens of bytes where a config is ~1.5 KB)."""
    from phantom.config import to_dict

    first = unit.packs[0].members[0]
    names = _ALL_FIELDS
    out = []
    for pack in unit.packs:
        rows = []
        for cfg, tid in zip(pack.members, pack.ids):
            diff = {n: to_dict(getattr(cfg, n)) for n in names
                    if getattr(cfg, n) is not getattr(first, n) and getattr(cfg, n) != getattr(first, n)}
            rows.append({"id": tid, "set": diff})
        out.append(rows)
    return {"unit": unit.unit_id, "base": to_dict(first), "packs": out}


def decode_unit(data: dict) -> list[list[TrialConfig]]:
    """The packs of an encoded unit, each member's id checked against its decoded config."""
    base = data["base"]
    packs = []
    for rows in data["packs"]:
        pack = []
        for row in rows:
            cfg = TrialConfig.from_dict({**base, **row["set"]})
            if cfg.trial_id != row["id"]:
                raise RuntimeError(f"unit {data['unit']}: member {row['id']} decodes to trial {cfg.trial_id}")
            pack.append(cfg)
        packs.append(pack)
    return packs


def unit_text(unit: Unit) -> str:
    return json.dumps(encode_unit(unit), separators=(",", ":"))


def describe(sweep: SweepConfig) -> str:
    """One line: how trials are packed (for validate and run)."""
    if sweep.resources.pack == 1:
        return "packing off (resources.pack: 1)"
    if isinstance(sweep.resources.pack, int):
        return f"up to {sweep.resources.pack} trials per pack"
    if not packed_engines_available():
        return "packing off: no packed engines installed (resources.pack: auto)"
    table = PACK_DEFAULTS[sweep.resources.device]
    per = ", ".join(f"{p} {table.get(p, 1)}" for p in sweep.protocols)
    untied = [m for m in sweep.models if untied_head(m)]
    for p in sweep.protocols:
        if untied and table.get(p, 1) > 1 and p.head_trained(tied=False):
            per += f" ({p} 1 on the untied {', '.join(untied)}: each member would train its own head)"
    return f"up to K trials per pack, K per protocol on {sweep.resources.device} (auto): {per}"
# ----------------------------------------------------------------------------------------------
# the units' files: written by the driver before Tune starts, read by the trainable

UNITS_SUFFIX = ".units"  # ray/<run>.units/<unit id>.json beside Tune's ray/<run>/


def units_folder(run: str) -> str:
    """The folder (under the sweep's ``ray/``) that holds the units of the Tune run ``run``."""
    return f"{run}{UNITS_SUFFIX}"


def write_units(store, folder: str, units: list[Unit]) -> None:
    """One small JSON per unit (a few threads: on an object store each is a PUT). Tune's
    experiment state then holds only each unit's id, not its members' configs."""
    from concurrent.futures import ThreadPoolExecutor

    def write(unit: Unit) -> None:
        store.write_text(unit_text(unit), layout.RAY_DIR, folder, f"{unit.unit_id}.json")

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(write, units))


def read_unit(store, units: str, unit: str) -> list[list[TrialConfig]]:
    """The packs of the unit ``unit`` of the run whose units are in ``units`` (a folder under
    the sweep's ``ray/``)."""
    return decode_unit(json.loads(store.read_text(layout.RAY_DIR, units, f"{unit}.json")))


def delete_units(store, folder: str) -> None:
    try:
        store.fs.delete_dir(store.path(layout.RAY_DIR, folder))
    except (FileNotFoundError, OSError):
        pass
