"""Trial packs: the unit of dispatch. One Ray Tune trial runs one pack through
:func:`workers.trial.run_pack`: up to K trials that share :func:`workers.trial.pack_key`
(model, sentence, contexts, protocol, budget, settings) and differ in learning rate or seed,
trained as one vectorised loop. Each member keeps its own id, rows and record; a stopped or
diverged member leaves the pack and the rest go on.

Packs are formed from the trials that are *pending* at dispatch time, so a resumed or retried
sweep re-forms its packs from what is left (and the trainable skips members that completed
meanwhile). Grouping is deterministic: the grid's order within each pack key, cut into chunks
of at most K.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from dataclasses import dataclass

from phantom.config import TrialConfig
from orchestrator.config import SweepConfig

# The default most-trials-per-pack, per device and protocol (``resources.pack: auto``): the one
# table, from bench/bench_packs.py (README, "Trial packs"). CPU, measured on smollm2-135m: a LoRA
# member step costs 1/2.5 of a trial alone at K = 5 and 1/3.7 at K = 8; full-FT packs run at
# 0.4-0.5x (vmap) or ~1x (loop), so full FT stays unpacked. CUDA, not measured (no GPU was lent):
# LoRA packs are launch-bound and a member costs 7 MB beside the shared base, so 8 is
# conservative; full FT stays unpacked until a GPU run of the benchmark shows the vmap pack pays.
# Prefix tuning always runs as a loop pack (workers.packs.pack_engine), so it gains nothing.
PACK_DEFAULTS: dict[str, dict[str, int]] = {
    "cpu": {"lora": 8, "lora-frozen-head": 8, "prefix": 1, "full": 1},
    "cuda": {"lora": 8, "lora-frozen-head": 8, "prefix": 1, "full": 1},
}
# testing knob: "module:function" of an engine factory the trainable hands to run_pack for
# packs of several trials (orchestrator.testing:loop_engine runs them one model each)
PACK_ENGINE_ENV = "PHANTOM_PACK_ENGINE"


def packed_engines_available() -> bool:
    """Whether packs of several trials can run here: the packed engines (``workers.packs``)
    are installed, or a test engine is set through PHANTOM_PACK_ENGINE."""
    if os.environ.get(PACK_ENGINE_ENV):
        return True
    try:
        return importlib.util.find_spec("workers.packs") is not None
    except ImportError:
        return False


def untied_head(model: str | None) -> bool:
    """Whether ``model`` is an embedded model whose LM head is untied (known without loading
    it; hub models are not looked up)."""
    if model is None:
        return False
    from workers.models import EMBEDDED  # torch-free at import

    return model in EMBEDDED and not EMBEDDED[model].tied


def pack_limit(sweep: SweepConfig, protocol: str, model: str | None = None) -> int:
    """K for this sweep and protocol: ``resources.pack`` when a number, else the table's
    default for the device (1 when no packed engine is installed, announced by ``describe``).

    ``lora`` on an untied head trains the head, so a pack carries one head per member: on
    qwen2.5-coder-0.5b (151 936 x 896) a pack of 2 ran 1.06x and of 3 0.86x the trials alone,
    at 8.4 and 11.1 GB against 7.1 GB (README, "The cross-architecture sweep"), so ``auto``
    leaves ``lora`` unpacked on an untied embedded model (``lora-frozen-head`` packs: 3.8x)."""
    pack = sweep.resources.pack
    if isinstance(pack, int):
        return pack
    if not packed_engines_available():
        return 1
    if protocol == "lora" and untied_head(model):
        return 1
    return PACK_DEFAULTS[sweep.resources.device].get(protocol, 1)


def check_packing(sweep: SweepConfig) -> None:
    from phantom.errors import ConfigError

    if isinstance(sweep.resources.pack, int) and sweep.resources.pack > 1 and not packed_engines_available():
        raise ConfigError(
            f"`resources.pack: {sweep.resources.pack}` needs the packed engines (workers.packs), which are "
            "not installed here; use `pack: 1` or `pack: auto`"
        )


@dataclass(frozen=True)
class Pack:
    members: tuple[TrialConfig, ...]

    @property
    def pack_id(self) -> str:
        """The Tune trial's name: the trial id for a pack of one, else a hash of the ids."""
        if len(self.members) == 1:
            return self.members[0].trial_id
        ids = ",".join(m.trial_id for m in self.members)
        return "pack-" + hashlib.sha256(ids.encode()).hexdigest()[:16]

    @property
    def ids(self) -> list[str]:
        return [m.trial_id for m in self.members]


def make_packs(trials: list[TrialConfig], sweep: SweepConfig) -> list[Pack]:
    """Group ``trials`` (in order) by pack key into packs of at most K, first-seen key first."""
    from workers.trial import pack_key

    groups: dict[str, list[TrialConfig]] = {}
    for t in trials:
        groups.setdefault(pack_key(t), []).append(t)
    packs = []
    for members in groups.values():
        k = pack_limit(sweep, members[0].protocol, members[0].model)
        packs += [Pack(tuple(members[i : i + k])) for i in range(0, len(members), k)]
    return packs


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
    untied = [m for m in sweep.models if untied_head(m)] if "lora" in sweep.protocols else []
    if untied:
        per += f" (lora 1 on the untied {', '.join(untied)}: each member would train its own head)"
    return f"up to K trials per pack, K per protocol on {sweep.resources.device} (auto): {per}"
