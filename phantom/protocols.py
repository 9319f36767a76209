"""The fine-tuning protocols (science §6.2) as one vocabulary: what each trains and what it freezes.

A :class:`Protocol` *is* the string the sweep files, the trial configs, the trial ids, the
Parquet columns and the SQL use (``'full'``, ``'lora'``, ...): a ``str`` enum, so equality,
hashing, JSON and every existing trial id are unchanged. Code that needs a protocol's meaning
asks it here instead of testing its name:

- ``full``: not an adapter; the embedding and the head train;
- ``lora``: a LoRA adapter; the embedding frozen; an untied head trains;
- ``lora-frozen-head``: a LoRA adapter; the embedding and the head frozen;
- ``prefix``: an adapter (virtual tokens), not LoRA; every base weight frozen.

"Head trained" follows the paper ("standard LoRA freezes the input embedding but not the LM
head"): an untied head stays trainable under ``lora``; a tied head *is* the embedding, so it
trains exactly when the embedding does. ``lora-frozen-head`` is the paper's missing ablation
(Appendix A): the same LoRA with an untied head frozen explicitly (:data:`HEAD_ABLATION`).
How each protocol is applied to a model is :mod:`phantom.workers.protocols`.
"""

from __future__ import annotations

from phantom.errors import suggest
from phantom.vocabulary import Vocabulary


class Protocol(Vocabulary):
    """A fine-tuning protocol. Its value is its name in configs, records and SQL."""

    FULL = "full"  # every parameter trains
    LORA = "lora"  # LoRA on the attention projections; embedding frozen, an untied head trains
    LORA_FROZEN_HEAD = "lora-frozen-head"  # the same LoRA with the LM head frozen explicitly
    PREFIX = "prefix"  # prefix tuning: virtual tokens train, every base weight is frozen

    @classmethod
    def unknown(cls, value: str, names: list[str], where: str) -> str:
        return f"Unknown protocol '{value}'{where}.{suggest(value, names)} Available: {', '.join(names)}"

    @property
    def adapter(self) -> bool:
        """Trains parameters added beside the base model (peft), not the base model itself."""
        return self is not Protocol.FULL

    @property
    def is_lora(self) -> bool:
        """Its adapter is LoRA (``lora``, ``lora-frozen-head``)."""
        return self in (Protocol.LORA, Protocol.LORA_FROZEN_HEAD)

    @property
    def embedding_frozen(self) -> bool:
        """The input embedding E does not train (its ΔG_max is 0 by construction)."""
        return self is not Protocol.FULL

    def head_trained(self, tied: bool) -> bool:
        """Whether the LM head trains on a model whose head is ``tied`` to the embedding."""
        if tied:  # the head is E
            return not self.embedding_frozen
        return self in (Protocol.FULL, Protocol.LORA)


# every protocol's name, in the order the CLI and the docs list them
PROTOCOLS: tuple[str, ...] = tuple(p.value for p in Protocol)

# the paper's Appendix A pair: the same LoRA with an untied LM head trainable, then frozen
# (identical training on a tied model)
HEAD_ABLATION: tuple[Protocol, Protocol] = (Protocol.LORA, Protocol.LORA_FROZEN_HEAD)
