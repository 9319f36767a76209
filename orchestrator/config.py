"""The sweep definition: one frozen dataclass per concept, built by ``phantom.config.from_dict``.

A sweep file names the grid's dimensions (models x sentences x protocols x learning rates x
seeds), the per-trial settings shared by every point (``training``, ``lora``, ``observables``,
exactly the sub-configs of a :class:`~phantom.config.TrialConfig`), and how to dispatch it
(``resources``, ``retries``, ``storage``, ``stopper``, ``search``). Reading the YAML (``include:``
and ``--set``) lives in :mod:`phantom.orchestrator.loader`; expanding the grid in :mod:`phantom.orchestrator.grid`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from phantom.config import (
    LoraConfig,
    ObservablesConfig,
    PackMode,
    StopperConfig,
    TrainingConfig,
    from_dict,
    to_dict,
)
from phantom.errors import ConfigError, suggest
from phantom.protocols import Protocol
from phantom.tracking import check_names as check_tracking
from phantom.vocabulary import Vocabulary

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class SearchMode(Vocabulary):
    """How a sweep chooses its trials (``search.mode``): a vocabulary, like
    :class:`~phantom.protocols.Protocol`, whose value is its name in sweep files. What each plans
    is :func:`phantom.orchestrator.search.plan_sweep`."""

    GRID = "grid"  # every point of the grid, once: models x sentences x protocols x rates x seeds
    ETA_C = "eta-c"  # per bracket (a point without its rate), η_c by bisection between lr_min and lr_max

    @classmethod
    def unknown(cls, value: str, names: list[str], where: str) -> str:
        return f"`mode` should be one of {', '.join(names)}, got {value!r}.{suggest(value, names)}"

    @property
    def takes_rates(self) -> bool:
        """The sweep's ``learning_rates`` are its rates (an η_c search chooses its own)."""
        return self is SearchMode.GRID

    @property
    def selects(self) -> bool:
        """``--only`` can select among its trials (an η_c search's trials are not known ahead)."""
        return self is SearchMode.GRID


CONTEXT_MODES = ("joint", "each")


@dataclass(frozen=True)
class SentencesConfig:
    """Which sentences: a sentences YAML (relative paths: to the sweep file), optional ids, and
    whether a sentence's contexts train together (``joint``: one trial, the loss is their mean
    CE) or each as its own trial (``each``: one trial per context, ``context_index`` set)."""

    file: str = field(default="sentences.yaml", metadata={"help": "sentences YAML file"})
    ids: tuple[str, ...] | None = field(default=None, metadata={"help": "subset of ids; null = all"})
    contexts: str = field(default="joint", metadata={"help": "joint | each (one trial per context)"})

    def __post_init__(self) -> None:
        if not self.file.strip():
            raise ConfigError("`file` should be a sentences YAML path, got ''")
        if self.contexts not in CONTEXT_MODES:
            raise ConfigError(
                f"`contexts` should be one of {', '.join(CONTEXT_MODES)}, got {self.contexts!r}."
                f"{suggest(self.contexts, CONTEXT_MODES)}"
            )
        if self.ids is not None and not self.ids:
            raise ConfigError("`ids` should be null (all) or a non-empty list")
        if self.ids is not None and len(set(self.ids)) != len(self.ids):
            raise ConfigError(f"`ids` has duplicates: {list(self.ids)}")


@dataclass(frozen=True)
class ResourcesConfig:
    """What one Ray Tune trial reserves on a node. A Tune trial runs a *pack*: up to ``pack``
    worker trials that differ only in learning rate or seed, trained as one vectorised loop
    (``pack: 1`` turns packing off; ``auto`` takes the measured default of the device and
    protocol, :data:`phantom.orchestrator.packing.PACK_DEFAULTS`). Fractions of a GPU share it."""

    cpus_per_trial: float = field(default=1.0, metadata={"help": "CPUs reserved per Tune trial (pack)"})
    gpus_per_trial: float = field(default=0.0, metadata={"help": "GPUs per Tune trial (0.25 = 4 per GPU)"})
    max_concurrent: int | None = field(default=None, metadata={"help": "cap on running Tune trials"})
    pack: int | str = field(default="auto", metadata={"help": "most trials per pack; 1 = off; auto"})
    pack_mode: PackMode = field(default=PackMode.AUTO, metadata={
        "help": "how a pack trains: auto (vectorised where it pays), packed, loop (members side by side)"})

    def __post_init__(self) -> None:
        if not (math.isfinite(self.cpus_per_trial) and self.cpus_per_trial > 0):
            raise ConfigError(f"`cpus_per_trial` should be a positive number, got {self.cpus_per_trial}")
        if not (math.isfinite(self.gpus_per_trial) and self.gpus_per_trial >= 0):
            raise ConfigError(f"`gpus_per_trial` should be >= 0, got {self.gpus_per_trial}")
        if self.gpus_per_trial > 1 and self.gpus_per_trial != int(self.gpus_per_trial):
            raise ConfigError(f"`gpus_per_trial` above 1 should be whole, got {self.gpus_per_trial}")
        if self.max_concurrent is not None and self.max_concurrent < 1:
            raise ConfigError(f"`max_concurrent` should be at least 1, got {self.max_concurrent}")
        if isinstance(self.pack, str) and self.pack != "auto":
            raise ConfigError(f"`pack` should be a whole number >= 1 or 'auto', got {self.pack!r}")
        if isinstance(self.pack, int) and self.pack < 1:
            raise ConfigError(f"`pack` should be at least 1 (1 = no packing), got {self.pack}")
        object.__setattr__(self, "pack_mode", PackMode.parse(self.pack_mode))

    @property
    def device(self) -> str:
        """The device kind a trial runs on: ``cuda`` when it reserves a GPU, else ``cpu``."""
        return "cuda" if self.gpus_per_trial > 0 else "cpu"

    def request(self) -> dict[str, float]:
        """The Ray resource request of one Tune trial (one pack)."""
        out = {"CPU": float(self.cpus_per_trial)}
        if self.gpus_per_trial:
            out["GPU"] = float(self.gpus_per_trial)
        return out


@dataclass(frozen=True)
class TestingConfig:
    """Knobs for tests of the dispatch itself, off by default: a test that must act while a
    trial runs (kill its worker, its driver, its node) slows every step down."""

    step_delay_s: float = field(default=0.0, metadata={"help": "seconds a worker sleeps after each step (0: none)"})

    def __post_init__(self) -> None:
        if not (math.isfinite(self.step_delay_s) and self.step_delay_s >= 0):
            raise ConfigError(f"`step_delay_s` should be >= 0, got {self.step_delay_s}")


@dataclass(frozen=True)
class SearchConfig:
    """``grid`` runs every point; ``eta-c`` bisects each (model, sentence, protocol, seed) for
    the critical learning rate η_c (science §5.3) between ``lr_min`` and ``lr_max``."""

    mode: SearchMode = field(default=SearchMode.GRID, metadata={"help": "grid | eta-c"})
    lr_min: float = field(default=1e-6, metadata={"help": "eta-c: lower end of the bracket"})
    lr_max: float = field(default=1e-3, metadata={"help": "eta-c: upper end of the bracket"})
    tolerance: float = field(default=1.1, metadata={"help": "eta-c: stop when hi/lo <= this factor"})
    max_rounds: int = field(default=30, metadata={"help": "eta-c: most bisection rounds"})

    def __post_init__(self) -> None:
        object.__setattr__(self, "mode", SearchMode.parse(self.mode))
        for name in ("lr_min", "lr_max"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ConfigError(f"`{name}` should be a positive number, got {value}")
        if self.lr_min >= self.lr_max:
            raise ConfigError(f"`lr_min` ({self.lr_min:g}) should be below `lr_max` ({self.lr_max:g})")
        if not (math.isfinite(self.tolerance) and self.tolerance > 1):
            raise ConfigError(f"`tolerance` should be a factor above 1 (e.g. 1.1), got {self.tolerance}")
        if self.max_rounds < 1:
            raise ConfigError(f"`max_rounds` should be at least 1, got {self.max_rounds}")


@dataclass(frozen=True)
class ProtocolRates:
    """Learning rates per protocol (``learning_rates: {full: [...], lora: [...]}``): LoRA needs
    rates two orders of magnitude above full fine-tuning, so one list rarely fits both."""

    full: tuple[float, ...] | None = field(default=None, metadata={"help": "rates of `full`"})
    lora: tuple[float, ...] | None = field(default=None, metadata={"help": "rates of `lora`"})
    lora_frozen_head: tuple[float, ...] | None = field(default=None, metadata={"help": "YAML key lora-frozen-head"})
    prefix: tuple[float, ...] | None = field(default=None, metadata={"help": "rates of `prefix`"})

    @staticmethod
    def key(protocol: str) -> str:
        return protocol.replace("-", "_")

    def get(self, protocol: str) -> tuple[float, ...] | None:
        return getattr(self, self.key(protocol))

    def given(self) -> list[Protocol]:
        return [p for p in Protocol if self.get(p) is not None]


@dataclass(frozen=True)
class SweepConfig:
    """A whole sweep. ``learning_rates`` is ignored by ``search.mode: eta-c`` (it searches)."""

    name: str = field(metadata={"help": "the sweep's folder under the storage root (letters, digits, . _ -)"})
    models: tuple[str, ...] = field(metadata={"help": "registered names, local directories or hub ids"})
    sentences: SentencesConfig = field(default_factory=SentencesConfig)
    protocols: tuple[Protocol, ...] = field(default=(Protocol.FULL,), metadata={"help": "full | lora | lora-frozen-head | prefix"})
    learning_rates: tuple[float, ...] | ProtocolRates = field(
        default=(), metadata={"help": "rates of every protocol, or a mapping protocol -> rates"}
    )
    seeds: tuple[int, ...] = field(default=(0,), metadata={"help": "torch seeds (LoRA A init, prefix init)"})
    training: TrainingConfig = field(default_factory=TrainingConfig)
    observables: ObservablesConfig = field(default_factory=ObservablesConfig)
    lora: LoraConfig = field(default_factory=LoraConfig)
    resources: ResourcesConfig = field(default_factory=ResourcesConfig)
    retries: int = field(default=2, metadata={"help": "re-runs of a trial whose worker or node died"})
    storage: str | None = field(default=None, metadata={"help": "results root; data in STORAGE/NAME"})
    stopper: StopperConfig = field(default_factory=StopperConfig)
    search: SearchConfig = field(default_factory=SearchConfig)
    trust_remote_code: bool = field(default=False, metadata={"help": "let transformers run a hub model's own code"})
    tracking: tuple[str, ...] = field(default=(), metadata={"help": "experiment trackers: mlflow, tensorboard, wandb"})
    description: str | None = field(default=None, metadata={"help": "free text, kept with the sweep"})
    testing: TestingConfig = field(default_factory=TestingConfig)

    def __post_init__(self) -> None:
        if not NAME_RE.match(self.name):
            raise ConfigError(f"`name` should be a folder name (letters, digits, . _ -), got {self.name!r}")
        dims = ["models", "protocols", "seeds"]
        if self.search.mode.takes_rates and not isinstance(self.learning_rates, ProtocolRates):
            dims.insert(2, "learning_rates")
        for dim in dims:
            values = getattr(self, dim)
            if not values:
                raise ConfigError(f"`{dim}` is empty: a sweep needs at least one value")
            if len(set(values)) != len(values):
                raise ConfigError(f"`{dim}` has duplicates: {list(values)}")
        for model in self.models:
            if not model.strip():
                raise ConfigError("`models` has an empty name")
        object.__setattr__(self, "protocols", tuple(Protocol.parse(p, " in `protocols`") for p in self.protocols))
        if isinstance(self.learning_rates, ProtocolRates):
            self._check_protocol_rates(self.learning_rates)
        for protocol in self.protocols:
            for i, lr in enumerate(self.rates(protocol)):
                if not (math.isfinite(lr) and lr > 0):
                    where = f"learning_rates.{protocol}" if isinstance(self.learning_rates, ProtocolRates) else "learning_rates"
                    raise ConfigError(f"`{where}[{i}]` should be a positive number, got {lr}")
        if self.retries < 0:
            raise ConfigError(f"`retries` should be >= 0, got {self.retries}")
        check_tracking(self.tracking)

    def _check_protocol_rates(self, rates: ProtocolRates) -> None:
        extra = [p for p in rates.given() if p not in self.protocols]
        if extra:
            raise ConfigError(f"`learning_rates.{extra[0]}` is given but '{extra[0]}' is not in `protocols`")
        if not self.search.mode.takes_rates:
            return
        for protocol in self.protocols:
            values = rates.get(protocol)
            if not values:
                raise ConfigError(f"`learning_rates.{protocol}` is missing or empty: each protocol needs its rates")
            if len(set(values)) != len(values):
                raise ConfigError(f"`learning_rates.{protocol}` has duplicates: {list(values)}")

    def rates(self, protocol: str) -> tuple[float, ...]:
        """The learning rates of ``protocol`` in this sweep (every protocol's, or its own)."""
        if isinstance(self.learning_rates, ProtocolRates):
            return self.learning_rates.get(protocol) or ()
        return self.learning_rates

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SweepConfig:
        data = dict(data)
        rates = data.get("learning_rates")
        if isinstance(rates, dict):  # per protocol; YAML writes protocols with dashes
            data["learning_rates"] = {
                ProtocolRates.key(k) if isinstance(k, str) else k: [v] if isinstance(v, (int, float)) else v
                for k, v in rates.items()
            }
        if isinstance(data.get("sentences"), str):  # `sentences: file.yaml` shorthand
            data["sentences"] = {"file": data["sentences"]}
        for key in ("models", "protocols", "learning_rates", "seeds", "tracking"):
            if isinstance(data.get(key), (str, int, float)) and not isinstance(data.get(key), bool):
                data[key] = [data[key]]  # a scalar is a one-point dimension
        for key in ("name", "models"):
            if key not in data:
                raise ConfigError(f"missing key `{key}`")
        return from_dict(cls, data)

    def to_dict(self) -> dict[str, Any]:
        return to_dict(self)
