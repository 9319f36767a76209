"""Fine-tuning protocols (science §6.2), through peft (what each trains and freezes, as properties:
:class:`phantom.protocols.Protocol`).

- ``full``: every parameter trains.
- ``lora``: LoRA (rank 8, alpha 16, dropout 0 by default) on the attention query/value
  projections of the family; the input embedding is frozen. As in the paper ("standard LoRA
  freezes the input embedding but not the LM head"), an *untied* LM head stays trainable; a
  tied head is the embedding and stays frozen.
- ``lora-frozen-head``: the same LoRA with the LM head frozen explicitly — the paper's missing
  ablation for untied heads (identical to ``lora`` on tied models).
- ``prefix``: prefix tuning (``prefix_tokens`` virtual tokens); all base weights frozen.
"""

from __future__ import annotations

import hashlib
import math

import torch

from phantom.config import LoraConfig
from phantom.errors import ConfigError
from phantom.protocols import Protocol

# attention query/value projections per model_type
LORA_TARGETS = {
    "gpt2": ("c_attn",),
    "gpt_neo": ("q_proj", "v_proj"),
    "gpt_neox": ("query_key_value",),
    "llama": ("q_proj", "v_proj"),
    "mistral": ("q_proj", "v_proj"),
    "qwen2": ("q_proj", "v_proj"),
    "qwen3": ("q_proj", "v_proj"),
    "gemma": ("q_proj", "v_proj"),
    "gemma2": ("q_proj", "v_proj"),
    "gemma3_text": ("q_proj", "v_proj"),
    "gemma3": ("q_proj", "v_proj"),
    "phi3": ("qkv_proj",),
    "olmo": ("q_proj", "v_proj"),
    "olmo2": ("q_proj", "v_proj"),
}


def lora_targets(model_type: str, cfg: LoraConfig) -> list[str]:
    if cfg.target_modules:
        return list(cfg.target_modules)
    if model_type not in LORA_TARGETS:
        raise ConfigError(
            f"no default LoRA target modules for model type '{model_type}': set `lora.target_modules`"
        )
    return list(LORA_TARGETS[model_type])


def lora_a_init(seed: int, name: str, shape: tuple[int, int]) -> torch.Tensor:
    """The initial LoRA A (r, fan_in) of module ``name``: U(−1/√fan_in, 1/√fan_in), which is
    peft's default (kaiming-uniform, a = √5), drawn from a generator seeded by (seed, module
    name). B starts at 0. Drawing per module, not from the global RNG in creation order, makes a
    trial's adapters the same whether it trains alone or in a pack (phantom.workers.packs)."""
    key = int.from_bytes(hashlib.sha256(f"{seed}:{name}".encode()).digest()[:8], "little")
    gen = torch.Generator().manual_seed(key & (2**63 - 1))
    bound = 1.0 / math.sqrt(shape[1])
    return (torch.rand(shape, generator=gen, dtype=torch.float64) * 2.0 - 1.0).mul_(bound).float()


def base_module_name(peft_name: str) -> str:
    """``base_model.model.<name>`` (a peft-wrapped module) → ``<name>`` (the same module in the
    base model)."""
    prefix = "base_model.model."
    return peft_name[len(prefix):] if peft_name.startswith(prefix) else peft_name


def _seed_lora(wrapped: torch.nn.Module, seed: int) -> None:
    with torch.no_grad():
        for name, module in wrapped.named_modules():
            lora_a = getattr(module, "lora_A", None)
            if isinstance(lora_a, torch.nn.ModuleDict) and "default" in lora_a:
                weight = lora_a["default"].weight
                weight.copy_(lora_a_init(seed, base_module_name(name), tuple(weight.shape)))


def apply_protocol(
    model: torch.nn.Module, protocol: Protocol | str, cfg: LoraConfig, tied: bool, seed: int = 0
) -> torch.nn.Module:
    """Wrap/freeze ``model`` for ``protocol``; returns the model to train."""
    protocol = Protocol.parse(protocol)
    if not protocol.adapter:
        for p in model.parameters():
            p.requires_grad_(True)
        return model
    import peft

    model_type = model.config.model_type
    if protocol.is_lora:
        pcfg = peft.LoraConfig(
            r=cfg.r,
            lora_alpha=cfg.alpha,
            lora_dropout=cfg.dropout,
            target_modules=lora_targets(model_type, cfg),
            fan_in_fan_out=model_type == "gpt2",  # GPT-2's Conv1D stores (in, out)
            bias="none",
            task_type="CAUSAL_LM",
        )
        wrapped = peft.get_peft_model(model, pcfg)
        _seed_lora(wrapped, seed)
        head = wrapped.get_output_embeddings()
        if head is not None:  # an untied head trained under `lora` is a second trainable channel
            head.weight.requires_grad_(protocol.head_trained(tied))
        wrapped.get_input_embeddings().weight.requires_grad_(False)
        return wrapped
    if protocol is Protocol.PREFIX:
        pcfg = peft.PrefixTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=cfg.prefix_tokens)
        return peft.get_peft_model(model, pcfg)
    raise ConfigError(f"unknown protocol '{protocol}'")  # validated earlier; defensive


def count_params(model: torch.nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts, each shared tensor counted once."""
    seen: dict[int, tuple[int, bool]] = {}
    for p in model.parameters():
        seen[id(p)] = (p.numel(), p.requires_grad)
    return sum(n for n, t in seen.values() if t), sum(n for n, _ in seen.values())
