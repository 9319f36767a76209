"""Training engines: what turns one (or a pack of) trial config(s) into forward passes and
optimizer steps. The trial loop (:mod:`phantom.workers.trial`) is the same for every engine.

An engine trains ``K`` *members* (trials sharing model, sentence, protocol, contexts and
budget; they differ in learning rate or seed): the contract is :class:`Engine`.
:class:`SingleEngine` trains one trial the plain way (a copy of the model, peft for the
adapters, accelerate, AdamW). Packed engines live in :mod:`phantom.workers.packs`, and so does
the one choice of an engine for a pack (:func:`phantom.workers.packs.pack_engine`).
"""

from __future__ import annotations

import contextlib
import copy
import ctypes
import functools
import math
import platform
import typing
from collections.abc import Callable
from dataclasses import dataclass

import torch

from phantom.config import TrialConfig
from phantom.workers.models import LoadedModel
from phantom.workers.protocols import apply_protocol, count_params


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
    """One step's forward of the active members. ``z`` and ``h`` are what the observables read:
    always computed in full precision (:class:`Precision`); ``loss`` is what the step trains on,
    from the training forward (under autocast in bf16/fp16), with its graph when training."""

    z: torch.Tensor  # (k, n_ctx, V) float32 (float64 for a float64 model) logits at the last positions
    h: torch.Tensor  # (k, n_ctx, d) the LM head's input there
    loss: torch.Tensor  # (k,) mean CE on g over the member's contexts


class Engine(typing.Protocol):
    """What the trial loop (:func:`phantom.workers.trial.run_pack`) asks of an engine, every
    step, for the ``k`` members still ``active`` (in that order)."""

    active: list[int]  # the members still training, by their index in the pack
    device: torch.device
    precision: Precision  # what the steps train in and the observables are read in

    def forward(self, train: bool) -> Forward:
        """The logits, the LM head's input and the loss of each active member (with the graph
        for :meth:`step` when ``train``)."""

    def step(self, losses: torch.Tensor) -> list[float]:
        """One optimizer step of the active members on ``losses`` (k,); each one's gradient norm."""

    def embedding(self, member: int) -> torch.Tensor:
        """The input-embedding matrix that member's observables read."""

    def params_count(self, member: int) -> tuple[int, int]:
        """(trainable, total) parameters of that member's model."""

    def drop(self, member: int) -> None:
        """The member leaves (stopped, diverged); the rest go on."""

    def close(self) -> None:
        """Release what the engine holds (hooks; a full-FT copy kept for the worker's next trial)."""


def logits_dtype(logits: torch.Tensor) -> torch.Tensor:
    """Logits as the observables and the loss read them: float32 (half-precision logits under
    autocast are widened), or float64 when the model itself is float64 — a float64 run is how
    the tests check packed engines to 1e-10, a bound that holds on any machine."""
    return logits if logits.dtype == torch.float64 else logits.float()


# ----------------------------------------------------------------------------------------------
# precision: what a trial trains in, and what its observables are read in (docs/design/precision.md)

AUTOCAST = {"bf16": torch.bfloat16, "fp16": torch.float16}
FULL = {torch.float32: "fp32", torch.float64: "fp64"}


@dataclass(frozen=True)
class Precision:
    """The arithmetic of a trial: ``train`` is the precision of the forward and backward that
    compute each step's gradient (fp32; bf16 or fp16 autocast; fp64 for a float64 model, which
    autocast leaves alone); ``observe`` the precision of the forward that the loss column and
    every observable are read from — the parameters' own (fp32, fp64), whatever ``train`` is.

    Under autocast that costs a second forward a step (no graph): the training forward's bf16
    logits are rounded to 8 bits (at |z| ≈ 10 a step of 0.06), which moved Φ₀ of smollm2-135m
    by 0.005 — the base model, before any update (measured: docs/results/precision.md)."""

    train: str  # fp32 | bf16 | fp16 | fp64
    observe: str  # fp32 | fp64
    device_type: str = "cpu"

    @property
    def autocast(self) -> torch.dtype | None:
        """The dtype the training forward autocasts to; None: no autocast."""
        return AUTOCAST.get(self.train)

    def training(self):
        """The context the training forward runs in: autocast in bf16 and fp16, nothing else."""
        if self.autocast is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.autocast)


def resolve_precision(precision: str, device: torch.device, dtype: torch.dtype) -> Precision:
    """``training.precision`` on ``device`` for parameters of ``dtype``: ``auto`` is bf16 on a
    GPU that has it, else fp16 on a GPU, else fp32; a float64 model trains and observes in fp64
    (autocast does not touch float64, so a bf16 label would be untrue)."""
    full = FULL.get(dtype, str(dtype).removeprefix("torch."))
    if precision == "auto":
        cuda = device.type == "cuda"
        precision = ("bf16" if torch.cuda.is_bf16_supported() else "fp16") if cuda else "fp32"
    if precision == "fp32" or dtype == torch.float64:
        return Precision(full, full, device.type)
    if precision not in AUTOCAST:
        raise ValueError(f"unknown precision {precision!r}")
    return Precision(precision, full, device.type)


def accelerator_for():
    """accelerate for the device only (CUDA when there is one). The precision is the engines'
    own (:class:`Precision`): accelerate's fp16 is a silent no-op on a CPU, and its loss scaler
    would serve the single engine only and skip steps (:class:`LossScaler`)."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=True)  # a fresh state per engine
    return Accelerator(cpu=not torch.cuda.is_available(), mixed_precision="no")


def forward_pair(precision: Precision, train: bool, run: Callable[[], tuple[torch.Tensor, torch.Tensor]]):
    """The forwards of one step. ``run()`` is the engine's model forward → (logits, h) at the
    last positions. Returns (logits the loss is computed from, with the graph when ``train``;
    logits and h the observables read). In full precision one forward is both; under autocast
    the training forward runs in it and the observables get a forward of their own in full
    precision, without a graph (the last row, ``train`` off, needs only that one)."""
    mixed = precision.autocast is not None
    trained = None
    if train or not mixed:
        # in full precision this forward is the observation too: TF32 off for it as well
        full = contextlib.nullcontext() if mixed else full_fp32_matmuls()
        with torch.set_grad_enabled(train), precision.training(), full:
            logits, h = run()
        trained = logits_dtype(logits)
        if not mixed:
            return trained, trained, h
    with torch.no_grad(), full_fp32_matmuls():
        logits, h = run()
    observed = logits_dtype(logits)
    return (observed if trained is None else trained), observed, h


@contextlib.contextmanager
def full_fp32_matmuls():
    """fp32 matmuls in full precision inside the block: TF32 off (PyTorch's default, which a
    script's ``torch.set_float32_matmul_precision("high")`` would change, rounding the inputs
    of every fp32 matmul of the observation to 10 bits on an Ampere or later GPU)."""
    before = torch.get_float32_matmul_precision()
    if before == "highest":
        yield
        return
    torch.set_float32_matmul_precision("highest")
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(before)


class LossScaler:
    """fp16's loss scale, one per member, without a skipped step.

    An fp16 backward flushes small gradients to zero: on smollm2-135m 17% of the gradient
    entries of a step that are non-zero in fp32 (AdamW moves each of them by ~lr whatever its
    size). Each member's loss is multiplied by its scale (a power of 2, from 2^16) before the
    backward and its gradient divided by it after. When a member's scaled gradient overflows,
    its scale is halved and the backward repeated on the retained graph: torch's GradScaler
    would skip that optimizer step instead, and the next row would count an update that did
    not happen. The scale never grows back (trials are short; a scale that once overflowed
    stays safe). A member that overflows at scale 1 keeps its non-finite gradient: its next
    forward is non-finite and it is recorded as diverged."""

    INIT = 2.0**16

    def __init__(self, members: int) -> None:
        self.scales = [self.INIT] * members

    def backward(self, losses: torch.Tensor, members: list[int], finite: Callable[[], list[bool]],
                 clear: Callable[[], None]) -> list[float]:
        """Backward of Σ scale_k · loss_k over the active ``members`` (``losses`` in that order);
        ``finite()`` says per member whether its gradient is finite, ``clear()`` drops every
        gradient. Returns the scale each member's gradient is to be divided by."""
        while True:
            scales = [self.scales[m] for m in members]
            weights = torch.tensor(scales, dtype=losses.dtype, device=losses.device)
            (losses * weights).sum().backward(retain_graph=True)
            over = [m for m, ok in zip(members, finite()) if not ok and self.scales[m] > 1.0]
            if not over:
                return scales
            for m in over:
                self.scales[m] /= 2.0
            clear()


def all_finite(tensors) -> bool:
    return bool(torch.stack([torch.isfinite(t).all() for t in tensors]).all()) if tensors else True


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


def release_memory() -> None:
    """After a pack: hand the heap's free pages back to the OS (glibc keeps them otherwise).
    No ``gc.collect()``: engines are freed by reference counting, and a collection costs ~0.6 s
    in a process holding torch and transformers — more than a tiny trial."""
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)


# A worker's full-FT copy and its AdamW state, kept from one trial for the next: (base, model,
# optimizer). Only an engine that is not running holds them; a second engine alive at the same
# time (a loop pack) deep-copies its own.
_SPARE: list[tuple[torch.nn.Module, torch.nn.Module, torch.optim.Optimizer]] = []


def take_spare(base: torch.nn.Module, cfg: TrialConfig):
    """(model, optimizer) for a full-FT trial of ``base`` reset to the start — the base weights
    copied back in, the AdamW state zeroed (step 0: what a new AdamW starts from), the trial's
    rate and settings — or None when there is no spare for this base.

    Reuse keeps a worker's memory flat: a worker that allocates a new copy, gradients and Adam
    state per trial fragments glibc's heap (the next trial's tensors do not fit the holes of the
    last): full-FT smollm2 trials in a row peaked at 3.50 GB, then 4.24 GB from the second on
    (1.58x weights + gradients + Adam + base). Reusing them allocates nothing big after the
    first trial: 3.46 GB, flat (1.29x, the interpreter's 0.28 GB included). Handing every
    tensor straight back to the OS (a fixed glibc mmap threshold, or jemalloc) also held it
    flat, but the page faults of re-mapping the gradients cost 30–50% of every step."""
    if cfg.protocol.adapter or not _SPARE or _SPARE[0][0] is not base:
        _SPARE.clear()  # a LoRA trial or another model: the spare would only sit in memory
        return None
    _, model, optimizer = _SPARE.pop()
    with torch.no_grad():
        for p, q in zip(model.parameters(), base.parameters()):
            p.copy_(q)
            p.grad = None
        for b, c in zip(model.buffers(), base.buffers()):
            b.copy_(c)
        for state in optimizer.state.values():
            for value in state.values():
                value.zero_()
    t = cfg.training
    optimizer.param_groups[0].update(lr=cfg.lr, betas=(t.beta1, t.beta2), eps=t.eps, weight_decay=t.weight_decay)
    return model, optimizer


def keep_spare(base: torch.nn.Module, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> None:
    _SPARE[:] = [(base, model, optimizer)]


def drop_spare() -> None:
    _SPARE.clear()


def _dtype(model: torch.nn.Module) -> torch.dtype:
    return next(model.parameters()).dtype


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
    trial of this worker), under peft for the adapters and accelerate for device/precision. A
    full-FT copy and its AdamW state are kept for the worker's next full-FT trial of the same
    base, which resets them (:func:`take_spare`) instead of allocating its own."""

    def __init__(self, cfg: TrialConfig, base: LoadedModel, batch: Batch, g: int) -> None:
        self.cfg = cfg
        self.base_model = base.model
        self.active = [0]
        torch.manual_seed(cfg.seed)
        spare = take_spare(base.model, cfg)
        if spare is None:
            model = apply_protocol(copy.deepcopy(base.model), cfg.protocol, cfg.lora, base.tied, seed=cfg.seed)
            optimizer = adamw([p for p in model.parameters() if p.requires_grad], cfg)
        else:
            model, optimizer = spare
        model.eval()  # no dropout: the study follows the deterministic dynamics of one example
        self.trainable, self.total = count_params(model)
        self.accelerator = accelerator_for()
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.model, self.optimizer = self.accelerator.prepare(model, optimizer)
        self.device = self.accelerator.device
        self.precision = resolve_precision(cfg.training.precision, self.device, _dtype(base.model))
        self.scaler = LossScaler(1) if self.precision.train == "fp16" else None
        self.batch = batch.to(self.device)
        self.targets = torch.full((batch.n,), g, dtype=torch.long, device=self.device)
        unwrapped = self.accelerator.unwrap_model(self.model)
        self.E = unwrapped.get_input_embeddings().weight
        self.head = HeadInput(unwrapped.get_output_embeddings())

    def _run(self) -> tuple[torch.Tensor, torch.Tensor]:
        b = self.batch
        # logits only at each context's last position: the study reads nothing else
        logits = self.model(input_ids=b.ids, attention_mask=b.mask, logits_to_keep=b.last[:, None]).logits
        return logits[:, 0], self.head.value[:, 0]  # (n_ctx, V), (n_ctx, d)

    def forward(self, train: bool) -> Forward:
        trained, z, h = forward_pair(self.precision, train, self._run)
        loss = torch.nn.functional.cross_entropy(trained, self.targets)
        return Forward(z[None], h[None], loss[None])

    def step(self, losses: torch.Tensor) -> list[float]:
        if self.scaler is None:
            self.accelerator.backward(losses.sum())
        else:
            def grads() -> list[torch.Tensor]:
                return [p.grad for p in self.params if p.grad is not None]

            [scale] = self.scaler.backward(losses, [0], lambda: [all_finite(grads())],
                                           lambda: self.optimizer.zero_grad(set_to_none=True))
            for grad in grads():
                grad.div_(scale)  # a power of 2: exact
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
        if not self.cfg.protocol.adapter and self.base_model is not None:
            self.optimizer.zero_grad(set_to_none=True)
            keep_spare(self.base_model, self.accelerator.unwrap_model(self.model), self.optimizer.optimizer)
            self.base_model = None
