"""Frozen configuration dataclasses, one per concept, built from dicts/YAML.

Every ``from_dict`` rejects unknown keys (with a suggestion for a typo) and wrong types with a
ConfigError that names the key. A :class:`TrialConfig` is fully resolved (the sentence text is
inside it), so its canonical JSON hashes into a stable ``trial_id``: the same trial requested
twice, by a resume or a second dispatch, always gets the same id and the same output files.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
import math
import types
import typing
from dataclasses import dataclass, field, fields
from typing import Any, TypeVar

from phantom.errors import ConfigError, suggest, unknown
from phantom.protocols import Protocol
from phantom.vocabulary import Vocabulary

T = TypeVar("T")


# ----------------------------------------------------------------------------------------------
# generic dict -> dataclass with validation


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp).replace("typing.", ""))


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check ``value`` against the annotation ``tp``; allow int->float and list->tuple only."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key)
            except ConfigError as exc:
                # a mapping was meant for the dataclass member: its error is the one to show
                errors.insert(0 if isinstance(value, dict) and dataclasses.is_dataclass(arg) else len(errors), exc)
        raise errors[0] if errors else ConfigError(f"`{key}` must not be null")
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"`{key}` should be a list, got {value!r}")
        inner = args[0] if args else Any
        return tuple(_coerce(v, inner, f"{key}[{i}]") for i, v in enumerate(value))
    if tp is Any:
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"`{key}` should be a number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"`{key}` should be an integer, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"`{key}` should be true or false, got {value!r}")
        return value
    if isinstance(tp, type) and issubclass(tp, enum.Enum):  # a vocabulary: its own parse names the choices
        if not isinstance(value, (str, tp)):
            raise ConfigError(f"`{key}` should be a string, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"`{key}` should be a string, got {value!r}")
        return value
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"`{key}` should be a mapping, got {value!r}")
        return from_dict(tp, value, prefix=f"{key}.")
    raise ConfigError(f"`{key}` has an unsupported type {_type_name(tp)}")  # pragma: no cover


def from_dict(cls: type[T], data: dict[str, Any] | None, prefix: str = "") -> T:
    """Build dataclass ``cls`` from ``data``, rejecting unknown keys and wrong types."""
    data = dict(data or {})
    hints = typing.get_type_hints(cls)
    names = [f.name for f in fields(cls) if f.init]
    for key in data:
        if key not in names:
            raise ConfigError(f"Unknown key `{prefix}{key}`.{suggest(key, names)} Known: {', '.join(names)}")
    kwargs = {k: _coerce(v, hints[k], f"{prefix}{k}") for k, v in data.items()}
    try:
        return cls(**kwargs)
    except ConfigError as exc:
        if prefix and not str(exc).startswith(f"`{prefix}"):
            raise ConfigError(str(exc).replace("`", f"`{prefix}", 1)) from None
        raise


def to_dict(obj: Any) -> Any:
    """Plain JSON-able structure of a (nested) config dataclass (a vocabulary word: its value)."""
    if isinstance(obj, enum.Enum):
        return obj.value
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    return obj


def _positive(name: str, value: float) -> None:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        raise ConfigError(f"`{name}` should be a positive number, got {value!r}")


# ----------------------------------------------------------------------------------------------
# the concepts


class PackMode(Vocabulary):
    """How a pack of several trials trains (``resources.pack_mode``; one trial always trains
    alone). Its value is its name in sweep files."""

    AUTO = "auto"  # vectorised where it was measured to pay: LoRA everywhere, full FT on CUDA
    PACKED = "packed"  # vectorised: LoRA and full FT
    LOOP = "loop"  # each member's own single engine, side by side: the reference of the packed engines

    @classmethod
    def unknown(cls, value: str, names: list[str], where: str) -> str:
        return unknown("pack mode", value, names)


@dataclass(frozen=True)
class TrainingConfig:
    """The optimisation of one trial: AdamW at a constant rate for a budget of steps."""

    steps: int = field(default=50, metadata={"help": "optimizer steps (the budget)"})
    optimizer: str = field(default="adamw", metadata={"help": "only 'adamw'"})
    beta1: float = field(default=0.9, metadata={"help": "AdamW β₁"})
    beta2: float = field(default=0.999, metadata={"help": "AdamW β₂"})
    eps: float = field(default=1e-8, metadata={"help": "AdamW ε"})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW decoupled weight decay"})
    max_grad_norm: float | None = field(default=None, metadata={"help": "clip; null = none"})
    precision: str = field(
        default="auto", metadata={"help": "auto (fp32 on CPU, bf16 on GPU), fp32, bf16, fp16"}
    )

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ConfigError(f"`steps` should be at least 1, got {self.steps}")
        if self.optimizer != "adamw":
            raise ConfigError(f"`optimizer` should be 'adamw', got {self.optimizer!r}")
        for name in ("beta1", "beta2"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ConfigError(f"`{name}` should be in [0, 1), got {getattr(self, name)}")
        _positive("eps", self.eps)
        if self.weight_decay < 0:
            raise ConfigError(f"`weight_decay` should be >= 0, got {self.weight_decay}")
        if self.max_grad_norm is not None:
            _positive("max_grad_norm", self.max_grad_norm)
        if self.precision not in ("auto", "fp32", "bf16", "fp16"):
            raise ConfigError(
                f"`precision` should be one of auto, fp32, bf16, fp16, got {self.precision!r}"
            )


@dataclass(frozen=True)
class LoraConfig:
    """Parameter-efficient protocols: LoRA (and its frozen-head variant) and prefix tuning."""

    r: int = field(default=8, metadata={"help": "LoRA rank"})
    alpha: float = field(default=16.0, metadata={"help": "LoRA alpha (scale = alpha / r)"})
    dropout: float = field(default=0.0, metadata={"help": "LoRA dropout"})
    target_modules: tuple[str, ...] | None = field(
        default=None, metadata={"help": "null = per family (c_attn, query_key_value, q_proj+v_proj)"}
    )
    prefix_tokens: int = field(default=10, metadata={"help": "virtual tokens for 'prefix'"})

    def __post_init__(self) -> None:
        if self.r < 1:
            raise ConfigError(f"`r` should be at least 1, got {self.r}")
        _positive("alpha", self.alpha)
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"`dropout` should be in [0, 1), got {self.dropout}")
        if self.target_modules is not None and not self.target_modules:
            raise ConfigError("`target_modules` should be null or a non-empty list")
        if self.prefix_tokens < 1:
            raise ConfigError(f"`prefix_tokens` should be at least 1, got {self.prefix_tokens}")


@dataclass(frozen=True)
class ObservablesConfig:
    """science §3.1: the nucleus pool that every Born-gap observable is evaluated on."""

    pool_mass: float = field(default=0.9, metadata={"help": "q: nucleus mass of the pool"})
    pool_cap: int = field(default=1024, metadata={"help": "K_max: most tokens in the pool"})

    def __post_init__(self) -> None:
        if not 0.0 < self.pool_mass <= 1.0:
            raise ConfigError(f"`pool_mass` should be in (0, 1], got {self.pool_mass}")
        if self.pool_cap < 2:
            raise ConfigError(f"`pool_cap` should be at least 2 (g and c), got {self.pool_cap}")


@dataclass(frozen=True)
class StopperConfig:
    """Early stops applied by the worker (definitions: :mod:`phantom.outcomes`). Both are off
    by default: the paper spends the whole budget. Part of the trial config, so a stopped trial
    and a full-budget trial of the same point have different ids and never stand in for each
    other (the η_c bracket, :attr:`TrialConfig.bracket_id`, leaves the stopper out: a stop
    never changes whether and when a trial flips)."""

    phi_saturation: bool = field(default=False, metadata={"help": "stop a trial once Φ plateaus after the flip"})
    window: int = field(default=3, metadata={"help": "w: Φ evaluations in the plateau"})
    tol: float = field(default=0.01, metadata={"help": "max − min of Φ over w below this"})
    at_flip: bool = field(default=False, metadata={"help": "stop at the flip (all an η_c trial must answer)"})

    def __post_init__(self) -> None:
        if self.window < 2:
            raise ConfigError(f"`window` should be at least 2, got {self.window}")
        if not (math.isfinite(self.tol) and self.tol > 0):
            raise ConfigError(f"`tol` should be a positive number, got {self.tol}")


@dataclass(frozen=True)
class TrialConfig:
    """One fully resolved trial: (model, sentence, protocol, lr, seed) and its settings."""

    model: str
    sentence_id: str
    target: str
    competitor: str
    contexts: tuple[str, ...]
    protocol: Protocol = Protocol.FULL
    lr: float = 2e-5
    seed: int = 0
    training: TrainingConfig = field(default_factory=TrainingConfig)
    lora: LoraConfig = field(default_factory=LoraConfig)
    observables: ObservablesConfig = field(default_factory=ObservablesConfig)
    stopper: StopperConfig = field(default_factory=StopperConfig)
    trust_remote_code: bool = False
    context_index: int | None = field(
        default=None, metadata={"help": "which context of the sentence this trial trains on alone; null: all together"}
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "protocol", Protocol.parse(self.protocol))  # a name given: its Protocol
        if isinstance(self.lr, bool) or not isinstance(self.lr, (int, float)) or not (
            math.isfinite(self.lr) and self.lr > 0
        ):
            raise ConfigError(f"`lr` should be a positive number, got {self.lr!r}")
        if not self.contexts:
            raise ConfigError(f"sentence '{self.sentence_id}' has no context")
        if self.target == self.competitor:
            raise ConfigError(f"sentence '{self.sentence_id}': target and competitor are equal")
        if self.context_index is not None and (self.context_index < 0 or len(self.contexts) != 1):
            raise ConfigError(
                f"`context_index` names one context trained alone (>= 0, one context), got "
                f"{self.context_index} with {len(self.contexts)} contexts"
            )

    @property
    def trial_id(self) -> str:
        """Stable 16-hex id: sha256 of the canonical JSON of the whole resolved config."""
        return hashlib.sha256(self.canonical_json().encode()).hexdigest()[:16]

    @property
    def bracket_id(self) -> str:
        """The η_c bracket: the same hash with the rate and the stopper left out, so every
        rate of one (model, sentence, protocol, seed, settings) point shares it."""
        data = to_dict(self)
        data.pop("lr")
        data.pop("stopper")
        text = json.dumps(data, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def canonical_json(self) -> str:
        return json.dumps(to_dict(self), sort_keys=True, separators=(",", ":"))

    def replace(self, **changes: Any) -> TrialConfig:
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrialConfig:
        return from_dict(cls, data)
