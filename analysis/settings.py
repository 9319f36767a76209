"""The analysis choices SPEC leaves open, in one frozen dataclass (documented in README.md).

Every number here reaches the SQL as a literal, so a view built with a setting is
self-contained: the DuckDB file that ``phantom analyze`` writes answers the same way in any
DuckDB client.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from phantom.config import PROTOCOLS
from phantom.errors import ConfigError, unknown

# η_ref per protocol (SPEC §5 "the protocol's standard rate"); prefix tuning has no standard
# rate in the paper, so its H is NULL until one is given with --lr-ref prefix=X.
DEFAULT_LR_REF = {"full": 2e-5, "lora": 1e-4, "lora-frozen-head": 1e-4}


@dataclass(frozen=True)
class AnalysisSettings:
    """SPEC §4–5 knobs: character thresholds, Φ-saturation, reference rates."""

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
