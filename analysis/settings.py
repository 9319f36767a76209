"""The analysis choices the science leaves open, in one frozen dataclass (documented in docs/design/spec-choices.md).

Every number here reaches the SQL as a literal, so a view built with a setting is
self-contained: the DuckDB file that ``phantom analyze`` writes answers the same way in any
DuckDB client.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from phantom.protocols import PROTOCOLS, Protocol
from phantom.errors import ConfigError, unknown

# η_ref per protocol (science §5.1 "the protocol's standard rate"); prefix tuning has no standard
# rate in the paper, so its H is NULL until one is given with --lr-ref prefix=X.
DEFAULT_LR_REF = {Protocol.FULL.value: 2e-5, Protocol.LORA.value: 1e-4, Protocol.LORA_FROZEN_HEAD.value: 1e-4}


@dataclass(frozen=True)
class AnalysisSettings:
    """science §4–5 knobs: character thresholds, Φ-saturation, reference rates, which trials
    enter, and the uncertainty (bootstrap over sentences, confidence level)."""

    catapult: float = field(default=15.0, metadata={"help": "R ≥ this: catapult"})
    catapult_like: float = field(default=8.0, metadata={"help": "R ≥ this: catapult-like"})
    intermediate: float = field(default=6.0, metadata={"help": "R ≥ this: intermediate"})
    borderline: float = field(default=5.0, metadata={"help": "R ≥ this: borderline, else drift"})
    saturation_window: int = field(default=3, metadata={"help": "w: Φ evaluations in the plateau"})
    saturation_tol: float = field(default=0.01, metadata={"help": "max − min of Φ over w below this"})
    lr_ref: tuple[tuple[str, float], ...] = field(
        default=tuple(sorted(DEFAULT_LR_REF.items())),
        metadata={"help": "η_ref per protocol, for H and the reference-rate tables"},
    )
    all_trials: bool = field(default=False, metadata={"help": "also analyse records outside the plans"})
    bootstrap: int = field(default=1000, metadata={"help": "bootstrap resamples over sentences (0: none)"})
    bootstrap_seed: int = field(default=0, metadata={"help": "seed of the bootstrap draw"})
    confidence: float = field(default=0.95, metadata={"help": "level of every interval"})
    mix_precisions: bool = field(default=False, metadata={
        "help": "fit trials of several precisions together (refused by default: docs/design/precision.md)"})

    def __post_init__(self) -> None:
        cuts = [self.borderline, self.intermediate, self.catapult_like, self.catapult]
        if any(not (isinstance(x, (int, float)) and math.isfinite(x) and x > 0) for x in cuts):
            raise ConfigError(f"character thresholds should be positive numbers, got {cuts}")
        if cuts != sorted(cuts):
            raise ConfigError(
                "character thresholds should satisfy borderline ≤ intermediate ≤ catapult_like"
                f" ≤ catapult, got {cuts}"
            )
        if self.saturation_window < 2:
            raise ConfigError(f"`saturation_window` should be at least 2, got {self.saturation_window}")
        if not self.saturation_tol > 0:
            raise ConfigError(f"`saturation_tol` should be positive, got {self.saturation_tol}")
        if not (isinstance(self.bootstrap, int) and 0 <= self.bootstrap <= 100_000):
            raise ConfigError(f"`bootstrap` should be a number of resamples in 0..100000, got {self.bootstrap}")
        if not (isinstance(self.bootstrap_seed, int) and self.bootstrap_seed >= 0):
            raise ConfigError(f"`bootstrap_seed` should be a non-negative integer, got {self.bootstrap_seed}")
        if not (0 < self.confidence < 1):
            raise ConfigError(f"`confidence` should lie strictly between 0 and 1, got {self.confidence}")
        for proto, rate in self.lr_ref:
            if not (math.isfinite(rate) and rate > 0):
                raise ConfigError(f"`lr_ref` for '{proto}' should be a positive number, got {rate}")

    @property
    def lr_ref_map(self) -> dict[str, float]:
        return dict(self.lr_ref)

    def with_lr_ref(self, overrides: dict[str, float]) -> AnalysisSettings:
        merged = {**self.lr_ref_map, **overrides}
        return replace(self, lr_ref=tuple(sorted(merged.items())))


def parse_lr_ref(items: list[str] | None) -> dict[str, float]:
    """``["lora=2e-4", "full=1e-5"]`` → ``{"lora": 2e-4, "full": 1e-5}`` (command-line form)."""
    out: dict[str, float] = {}
    for item in items or []:
        proto, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"--lr-ref should look like PROTOCOL=RATE, got '{item}'")
        if proto not in PROTOCOLS:
            raise ConfigError(unknown("protocol", proto, PROTOCOLS))
        try:
            rate = float(value)
        except ValueError:
            raise ConfigError(f"--lr-ref {proto}: '{value}' is not a number") from None
        if not (math.isfinite(rate) and rate > 0):
            raise ConfigError(f"--lr-ref {proto}: the rate should be positive, got {value}")
        out[proto] = rate
    return out
