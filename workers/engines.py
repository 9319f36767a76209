"""Training engines: what turns one (or a pack of) trial config(s) into forward passes and
optimizer steps. The trial loop (:mod:`workers.trial`) is the same for every engine.

An engine trains ``K`` *members* (trials sharing model, sentence, protocol, contexts and
budget; they differ in learning rate or seed) and answers, per step:

- ``forward(train)``: logits ``z`` (k, n_ctx, V) at each context's last position, the hidden
  state ``h`` (k, n_ctx, d) the LM head reads there, and the CE loss per member (k,), for the
  k members still active (in the order of ``active``);
- ``step(losses)``: one optimizer step for the active members, returning each one's
  gradient norm;
- ``embedding(member)``: the input-embedding matrix that member's observables read;
- ``drop(member)``: the member leaves the pack (stopped, diverged); the rest go on.

:class:`SingleEngine` trains one trial the plain way (a copy of the model, peft for the
adapters, accelerate, AdamW). Packed engines live in :mod:`workers.packs`.
"""

from __future__ import annotations

import copy
import ctypes
import functools
import math
import os
import platform
from dataclasses import dataclass

import torch

from phantom.config import TrialConfig
from workers.models import LoadedModel
from workers.protocols import apply_protocol, count_params


@dataclass
class Batch:
    """The contexts of a trial, right-padded: ``ids``/``mask`` (n_ctx, T) and ``last`` (n_ctx,),
    the index of each context's last token (where the next-token logits are read)."""

    ids: torch.Tensor
    mask: torch.Tensor
    last: torch.Tensor

    @property
    def n(self) -> int:
        return int(self.ids.shape[0])

    def to(self, device) -> Batch:
        return Batch(self.ids.to(device), self.mask.to(device), self.last.to(device))


def encode(tokenizer, contexts: tuple[str, ...]) -> Batch:
    seqs = [tokenizer(text)["input_ids"] for text in contexts]
    width = max(len(s) for s in seqs)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    ids = torch.full((len(seqs), width), pad, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = torch.tensor(s)
        mask[i, : len(s)] = 1
    return Batch(ids, mask, torch.tensor([len(s) - 1 for s in seqs]))


@dataclass
class Forward:
    z: torch.Tensor  # (k, n_ctx, V) float32 logits at the last context positions
    h: torch.Tensor  # (k, n_ctx, d) the LM head's input there
    loss: torch.Tensor  # (k,) mean CE on g over the member's contexts


def accelerator_for(precision: str):
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    cuda = torch.cuda.is_available()
    if precision == "auto":
        mp = ("bf16" if torch.cuda.is_bf16_supported() else "fp16") if cuda else "no"
    else:
        mp = {"fp32": "no", "bf16": "bf16", "fp16": "fp16"}[precision]
    AcceleratorState._reset_state(reset_partial_state=True)  # settings may differ per trial
    return Accelerator(cpu=not cuda, mixed_precision=mp)


def adamw(groups, cfg: TrialConfig) -> torch.optim.Optimizer:
    """AdamW with the trial's settings; ``groups`` are parameters or param groups (own lr)."""
    t = cfg.training
    kwargs = dict(lr=cfg.lr, betas=(t.beta1, t.beta2), eps=t.eps, weight_decay=t.weight_decay)
    try:  # fused AdamW is ~5x faster on CPU (0.11 s vs 0.55 s a step on smollm2-135m)
        return torch.optim.AdamW(groups, fused=True, **kwargs)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.AdamW(groups, **kwargs)


# ----------------------------------------------------------------------------------------------
# process memory: a worker runs trial after trial in one process


@functools.cache
def _glibc():
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:
        return None


@functools.cache
def tune_allocator() -> bool:
    """Serve every allocation of 128 KiB or more by its own ``mmap`` (glibc; once a process).

    glibc's default raises the mmap threshold, up to 32 MiB, each time a mapped block is freed.
    After the first trial frees its copy, the next trial's weights, gradients and Adam state come
    from the heap instead, where freed blocks stay resident and fragment: a process running
    full-FT smollm2-135m trials in a row peaked at 3.45 GB in the first and 4.44 GB from the
    second on (bench/bench_packs.py). A fixed threshold (setting it turns the adjustment off)
    hands every tensor back to the OS when it is freed: 3.41 GB, flat. ``PHANTOM_ALLOCATOR=
    default`` leaves glibc alone (the benchmark's "before")."""
    libc = _glibc()
    if libc is None or os.environ.get("PHANTOM_ALLOCATOR") == "default":
        return False
    m_mmap_threshold = -3
    return bool(libc.mallopt(m_mmap_threshold, 128 * 1024))


def release_memory() -> None:
    """After a pack: hand the heap's free pages back to the OS. (No ``gc.collect()``: engines
    are freed by reference counting, and a collection costs ~0.6 s in a process holding torch
    and transformers — more than a tiny trial.)"""
    libc = _glibc()
    if libc is not None and os.environ.get("PHANTOM_ALLOCATOR") != "default":
        libc.malloc_trim(0)


class HeadInput:
    """Captures the tensor the LM head reads (a forward pre-hook), i.e. ``h`` after the final
    norm for every family."""

    def __init__(self, head: torch.nn.Module) -> None:
        self.value: torch.Tensor | None = None
        self._hook = head.register_forward_pre_hook(self._grab)

    def _grab(self, _module, args) -> None:
        self.value = args[0]

    def remove(self) -> None:
        self._hook.remove()


class SingleEngine:
    """One trial: a deep copy of the base model trains (the base stays untouched for the next
    trial of this worker), under peft for the adapters and accelerate for device/precision."""

    def __init__(self, cfg: TrialConfig, base: LoadedModel, batch: Batch, g: int) -> None:
        self.cfg = cfg
        self.active = [0]
        torch.manual_seed(cfg.seed)
        model = apply_protocol(copy.deepcopy(base.model), cfg.protocol, cfg.lora, base.tied, seed=cfg.seed)
        model.eval()  # no dropout: the study follows the deterministic dynamics of one example
        self.trainable, self.total = count_params(model)
        self.accelerator = accelerator_for(cfg.training.precision)
        self.params = [p for p in model.parameters() if p.requires_grad]
        optimizer = adamw(self.params, cfg)
        self.model, self.optimizer = self.accelerator.prepare(model, optimizer)
        self.device = self.accelerator.device
        self.batch = batch.to(self.device)
        self.targets = torch.full((batch.n,), g, dtype=torch.long, device=self.device)
        unwrapped = self.accelerator.unwrap_model(self.model)
        self.E = unwrapped.get_input_embeddings().weight
        self.head = HeadInput(unwrapped.get_output_embeddings())

    def forward(self, train: bool) -> Forward:
        b = self.batch
        with torch.set_grad_enabled(train), self.accelerator.autocast():
            # logits only at each context's last position: the study reads nothing else
            logits = self.model(input_ids=b.ids, attention_mask=b.mask, logits_to_keep=b.last[:, None]).logits
        z = logits[:, 0].float()  # (n_ctx, V)
        h = self.head.value[:, 0]  # (n_ctx, d)
        loss = torch.nn.functional.cross_entropy(z, self.targets)
        return Forward(z[None], h[None], loss[None])

    def step(self, losses: torch.Tensor) -> list[float]:
        self.accelerator.backward(losses.sum())
        max_norm = self.cfg.training.max_grad_norm or math.inf
        grad_norm = self.accelerator.clip_grad_norm_(self.params, max_norm)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return [float(grad_norm)]

    def embedding(self, member: int) -> torch.Tensor:
        return self.E

    def params_count(self, member: int) -> tuple[int, int]:
        return self.trainable, self.total

    def drop(self, member: int) -> None:
        self.active.remove(member)

    def close(self) -> None:
        self.head.remove()
