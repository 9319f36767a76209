"""Trial packs: up to K trials that share (model, sentence, protocol, contexts, budget) and
differ in learning rate or seed, trained as one vectorised loop.

Every member keeps its own trainable tensors, AdamW state, learning rate, gradient norm and
clipping; only the arithmetic is batched. Rows are member-major: the pack's batch is the
trial's contexts tiled K times, so member k owns rows ``k*n .. k*n+n-1``.

- :class:`LoraPackEngine` (``lora``, ``lora-frozen-head``): K adapters over one frozen base.
  The base weights are shared, not copied (:func:`frozen_view`); each target projection adds
  ``scale * (x_k A_kᵀ) B_kᵀ`` by two ``bmm`` over the K stacked A (k, r, in) and B (k, out, r).
  A is drawn by :func:`~phantom.workers.protocols.lora_a_init` from (seed, base module name), B starts
  at 0 — the adapters peft builds for the same trial alone. The untied LM head that ``lora``
  trains gets one copy per member (k, V, d); a tied or frozen head is shared.
- :class:`FullPackEngine` (``full``): K stacked weight sets through ``torch.func``
  (``functional_call`` under ``vmap``) over the same frozen skeleton.
- :class:`LoopEngine`: K :class:`~phantom.workers.engines.SingleEngine` side by side — the pack's
  bookkeeping without vectorisation. ``prefix`` runs here (see :func:`pack_engine`), and it is
  the ``mode="loop"`` reference of the benchmark.

The optimizer of both vectorised engines is :class:`StackedAdamW`: torch's own fused AdamW
kernel called once per member on that member's slices, so a member's update is the very
arithmetic ``torch.optim.AdamW(fused=True)`` does for the trial alone.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import nn
from torch.optim.adam import adam as functional_adam

from phantom.config import PackMode, TrialConfig
from phantom.errors import ConfigError
from phantom.protocols import Protocol
from phantom.workers.engines import (
    Batch,
    Engine,
    Forward,
    HeadInput,
    LossScaler,
    SingleEngine,
    accelerator_for,
    all_finite,
    drop_spare,
    forward_pair,
    resolve_precision,
)
from phantom.workers.models import LoadedModel
from phantom.workers.protocols import count_params, lora_a_init, lora_targets


# The default pack size per device and protocol (``resources.pack: auto``) is the orchestrator's
# :data:`phantom.orchestrator.packing.PACK_DEFAULTS`, measured by bench/bench_packs.py.


def pack_engine(cfgs: Sequence[TrialConfig], base: LoadedModel, batch: Batch, g: int, *,
                mode: PackMode | str = PackMode.AUTO) -> Engine:
    """The engine for a pack of ``len(cfgs)`` members — the one place it is chosen (one config:
    :class:`SingleEngine`).

    ``packed`` vectorises LoRA and full FT; ``loop`` runs K single engines side by side;
    ``auto`` vectorises where it pays as measured (bench/bench_packs.py): LoRA everywhere, full
    FT on CUDA only — on a CPU a full-FT vmap pack of smollm2-135m runs at 0.4-0.5x the speed
    of its members one after another (members share no arithmetic, and vmap's strided gradient
    copies cost more than the kernel launches saved). ``prefix`` always loops: peft feeds the
    prefix as a key/value cache whose layout is per family and per transformers release; a
    packed prefix would have to rebuild that cache for each.
    """
    cfgs = list(cfgs)
    mode = PackMode.parse(mode)
    if len(cfgs) == 1:
        return SingleEngine(cfgs[0], base, batch, g)
    protocol = cfgs[0].protocol
    if mode is PackMode.LOOP or protocol is Protocol.PREFIX:
        return LoopEngine(cfgs, base, batch, g)
    if protocol.is_lora:
        return LoraPackEngine(cfgs, base, batch, g)
    if mode is PackMode.AUTO and not torch.cuda.is_available():
        return LoopEngine(cfgs, base, batch, g)
    return FullPackEngine(cfgs, base, batch, g)


# ----------------------------------------------------------------------------------------------
# shared pieces


def frozen_view(model: nn.Module) -> nn.Module:
    """A structural copy of ``model`` whose parameters are frozen aliases of the originals: no
    weight is copied, nothing of ``model`` changes (not even ``requires_grad``), and modules of
    the copy can be swapped for packed ones. Tied weights stay tied."""
    memo: dict[int, object] = {}
    for p in model.parameters():
        memo[id(p)] = nn.Parameter(p.detach(), requires_grad=False)
    for b in model.buffers():
        memo[id(b)] = b
    return copy.deepcopy(model, memo)


def _set_module(root: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, child, module)


def _in_out(layer: nn.Module) -> tuple[int, int]:
    """(in_features, out_features) of a Linear or a GPT-2 Conv1D (weight stored (in, out))."""
    if isinstance(layer, nn.Linear):
        return layer.in_features, layer.out_features
    if type(layer).__name__ == "Conv1D":
        return tuple(layer.weight.shape)  # type: ignore[return-value]
    raise ConfigError(f"LoRA packs need Linear or Conv1D target modules, got {type(layer).__name__}")


class StackedAdamW:
    """AdamW over stacked tensors (k, ...) whose slot ``j`` belongs to one member, each member
    with its own learning rate, clipping and gradient norm.

    The update is torch's functional AdamW (the fused kernel where the device has one, as
    ``phantom.workers.engines.adamw``) called once per member on its slices, so a member's numbers are
    those of ``torch.optim.AdamW`` for the trial alone. The gradient norm is the one
    ``clip_grad_norm_`` computes: the 2-norm of the per-tensor 2-norms.
    """

    def __init__(self, tensors: list[torch.Tensor], cfgs: Sequence[TrialConfig]) -> None:
        t = cfgs[0].training
        self.tensors = tensors
        self.lrs = [float(c.lr) for c in cfgs]
        self.betas, self.eps, self.weight_decay = (t.beta1, t.beta2), t.eps, t.weight_decay
        self.max_norm = t.max_grad_norm
        self.exp_avg = [torch.zeros_like(x) for x in tensors]
        self.exp_avg_sq = [torch.zeros_like(x) for x in tensors]
        self.steps = 0
        device = tensors[0].device
        self.fused = device.type in ("cpu", "cuda") and all(x.is_floating_point() for x in tensors)

    def step(self, slots: list[int], scales: list[float] | None = None) -> list[float]:
        """Clip the gradient of the members in ``slots``, update them, clear every gradient;
        returns their gradient norms. ``scales``: the loss scale of each slot's member (fp16,
        :class:`~phantom.workers.engines.LossScaler`), divided out first."""
        grads = [x.grad if x.grad is not None else torch.zeros_like(x) for x in self.tensors]
        k = self.tensors[0].shape[0]
        with torch.no_grad():
            for j, scale in zip(slots, scales or []):
                for gr in grads:
                    gr[j].div_(scale)  # a power of 2: exact
            per_tensor = torch.stack([torch.linalg.vector_norm(gr.reshape(k, -1), dim=1) for gr in grads])
            norms = torch.linalg.vector_norm(per_tensor, dim=0)  # (k,)
            if self.max_norm is not None:
                coef = (self.max_norm / (norms + 1e-6)).clamp(max=1.0)
                for gr in grads:
                    gr.mul_(coef.view(-1, *([1] * (gr.dim() - 1))))
            self.steps += 1
            for j in slots:
                steps = [torch.tensor(float(self.steps - 1), dtype=torch.float32, device=x.device) for x in self.tensors]
                functional_adam(
                    [x.detach()[j] for x in self.tensors], [gr[j] for gr in grads],
                    [m[j] for m in self.exp_avg], [v[j] for v in self.exp_avg_sq], [], steps,
                    fused=self.fused or None, foreach=None if self.fused else False,
                    decoupled_weight_decay=True, amsgrad=False, beta1=self.betas[0], beta2=self.betas[1],
                    lr=self.lrs[j], weight_decay=self.weight_decay, eps=self.eps, maximize=False,
                )
        for x in self.tensors:
            x.grad = None
        return [float(norms[j]) for j in slots]

    def keep(self, slots: list[int]) -> list[torch.Tensor]:
        """Keep only the members in ``slots`` (in that order); returns the new leaf tensors."""
        index = torch.tensor(slots, device=self.tensors[0].device)
        with torch.no_grad():
            self.tensors = [x.detach().index_select(0, index).requires_grad_(True) for x in self.tensors]
            self.exp_avg = [m.index_select(0, index) for m in self.exp_avg]
            self.exp_avg_sq = [v.index_select(0, index) for v in self.exp_avg_sq]
        self.lrs = [self.lrs[j] for j in slots]
        return self.tensors


class _VectorisedEngine:
    """Bookkeeping shared by the vectorised engines: members, slots, device, the loss."""

    def __init__(self, cfgs: Sequence[TrialConfig], base: LoadedModel, batch: Batch, g: int) -> None:
        drop_spare()  # a single engine's kept copy would only sit in memory beside the pack
        self.cfgs = list(cfgs)
        self.active = list(range(len(self.cfgs)))
        self.slots = list(self.active)  # member of each slot of the stacked tensors
        self.device = accelerator_for().device
        self.precision = resolve_precision(self.cfgs[0].training.precision, self.device,
                                           next(base.model.parameters()).dtype)
        self.scaler = LossScaler(len(self.cfgs)) if self.precision.train == "fp16" else None
        self.batch = batch.to(self.device)
        self.g = g
        self.E = base.input_embeddings()  # frozen under LoRA; full FT overrides embedding()

    def _loss(self, z: torch.Tensor) -> torch.Tensor:
        """(k, n, V) logits → (k,) mean CE on g over each member's contexts."""
        k, n, V = z.shape
        targets = torch.full((k * n,), self.g, dtype=torch.long, device=z.device)
        return torch.nn.functional.cross_entropy(z.reshape(k * n, V), targets, reduction="none").view(k, n).mean(1)

    def step(self, losses: torch.Tensor) -> list[float]:
        slots = [self.slots.index(m) for m in self.active]
        scales = None
        if self.scaler is None:
            losses.sum().backward()
        else:
            def finite() -> list[bool]:
                return [all_finite([x.grad[j] for x in self.optimizer.tensors if x.grad is not None]) for j in slots]

            def clear() -> None:
                for x in self.optimizer.tensors:
                    x.grad = None

            scales = self.scaler.backward(losses, self.active, finite, clear)
        norms = self.optimizer.step(slots, scales)
        if self.slots != self.active:  # members left: shrink the stacks to the rest
            self._rebind(self.optimizer.keep(slots))
            self.slots = list(self.active)
        return norms

    def drop(self, member: int) -> None:
        # the stacks shrink at the next step: the graph of this step's forward still holds them
        self.active.remove(member)

    def params_count(self, member: int) -> tuple[int, int]:
        return self.counts


# ----------------------------------------------------------------------------------------------
# LoRA: K adapters over one frozen base


class _PackedLora(nn.Module):
    """A frozen projection plus K low-rank updates: y_k = W x_k + scale · B_k A_k x_k."""

    def __init__(self, base_layer: nn.Module, scale: float) -> None:
        super().__init__()
        self.base_layer = base_layer
        self.scale = scale
        self.A: torch.Tensor | None = None  # (k, r, in), bound by the engine
        self.B: torch.Tensor | None = None  # (k, out, r)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.base_layer(x)
        k = self.A.shape[0]
        xs = x.reshape(k, -1, x.shape[-1]).to(self.A.dtype)  # (k, n*T, in): member-major rows
        delta = torch.bmm(torch.bmm(xs, self.A.transpose(1, 2)), self.B.transpose(1, 2)) * self.scale
        return y + delta.reshape(y.shape).to(y.dtype)


class _PackedHead(nn.Module):
    """An untied LM head trained per member: logits_k = W_k h_k."""

    def __init__(self) -> None:
        super().__init__()
        self.W: torch.Tensor | None = None  # (k, V, d), bound by the engine

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        k = self.W.shape[0]
        hs = h.reshape(k, -1, h.shape[-1]).to(self.W.dtype)  # (k, n*T, d)
        logits = torch.bmm(hs, self.W.transpose(1, 2))  # (k, n*T, V)
        return logits.reshape(*h.shape[:-1], -1)


class LoraPackEngine(_VectorisedEngine):
    """K LoRA adapters over one frozen base; one forward over K·n rows."""

    def __init__(self, cfgs: Sequence[TrialConfig], base: LoadedModel, batch: Batch, g: int) -> None:
        super().__init__(cfgs, base, batch, g)
        cfg, k = self.cfgs[0], len(self.cfgs)
        model = frozen_view(base.model)
        targets = lora_targets(model.config.model_type, cfg.lora)
        names = [n for n, _ in model.named_modules() if any(n == t or n.endswith("." + t) for t in targets)]
        if not names:
            raise ConfigError(f"no module of '{cfg.model}' matches the LoRA targets {targets}")
        r, scale = cfg.lora.r, cfg.lora.alpha / cfg.lora.r
        self.layers: list[_PackedLora] = []
        tensors: list[torch.Tensor] = []
        for name in names:
            layer = _PackedLora(model.get_submodule(name), scale)
            fan_in, fan_out = _in_out(layer.base_layer)
            dtype = layer.base_layer.weight.dtype  # float32; float64 for a float64 model (tests)
            A = torch.stack([lora_a_init(c.seed, name, (r, fan_in)) for c in self.cfgs]).to(dtype)
            tensors += [A, torch.zeros(k, fan_out, r, dtype=dtype)]
            _set_module(model, name, layer)
            self.layers.append(layer)
        lora_numel = sum(x[0].numel() for x in tensors)
        # a head that trains (``lora``, untied) is one head per member (the members cannot share it)
        head = model.get_output_embeddings()
        self.own_head = cfg.protocol.head_trained(base.tied) and head is not None
        if self.own_head:
            if getattr(head, "bias", None) is not None:
                raise ConfigError("a LoRA pack trains an untied head without bias only")
            W = head.weight.detach()
            tensors.append(W.unsqueeze(0).repeat(k, *([1] * W.dim())))
            head = _PackedHead()
            model.set_output_embeddings(head)
        trainable = lora_numel + (tensors[-1][0].numel() if self.own_head else 0)
        self.counts = (trainable, count_params(base.model)[1] + lora_numel)
        self.model = model.to(self.device).eval()
        self.head = HeadInput(head)
        tensors = [x.to(self.device).requires_grad_(True) for x in tensors]
        self.optimizer = StackedAdamW(tensors, self.cfgs)
        self._rebind(tensors)
        self.E = self.model.get_input_embeddings().weight

    def _rebind(self, tensors: list[torch.Tensor]) -> None:
        for i, layer in enumerate(self.layers):
            layer.A, layer.B = tensors[2 * i], tensors[2 * i + 1]
        if self.own_head:
            self.model.get_output_embeddings().W = tensors[-1]

    def forward(self, train: bool) -> Forward:
        b, k = self.batch, len(self.slots)
        ids, mask, last = b.ids.repeat(k, 1), b.mask.repeat(k, 1), b.last.repeat(k)

        def run():
            logits = self.model(input_ids=ids, attention_mask=mask, logits_to_keep=last[:, None]).logits
            return logits[:, 0], self.head.value[:, 0]

        trained, z, h = forward_pair(self.precision, train, run)
        z, h = z.view(k, b.n, -1), h.view(k, b.n, -1)  # (k, n_ctx, V), (k, n_ctx, d)
        keep = [self.slots.index(m) for m in self.active]
        return Forward(z[keep], h[keep], self._loss(trained.view(k, b.n, -1))[keep])

    def embedding(self, member: int) -> torch.Tensor:
        return self.E

    def close(self) -> None:
        self.head.remove()


# ----------------------------------------------------------------------------------------------
# full fine-tuning: K stacked weight sets through torch.func


class FullPackEngine(_VectorisedEngine):
    """K full copies of the weights, stacked (k, ...), one ``vmap`` of ``functional_call``.

    The skeleton that ``functional_call`` runs is a :func:`frozen_view` of the base (free on a
    CPU, where it aliases the base; one frozen copy on a GPU, so that code reading a module's
    device finds the right one). It computes attention the eager way: SDPA has no batching rule (``vmap``
    falls back to one call per member, forward and backward), while eager attention is two
    batched matmuls and a softmax (the two differ by ~1e-7 in the logits).

    ``attention`` (class attribute) is the implementation the skeleton is switched to; None
    keeps the model's own. The tests' float64 check sets None: eager attention of llama and
    gpt_neox rounds the softmax to float32 even in a float64 model (1e-7), while SDPA under
    vmap is slow but exact.
    """

    attention: str | None = "eager"

    def __init__(self, cfgs: Sequence[TrialConfig], base: LoadedModel, batch: Batch, g: int) -> None:
        super().__init__(cfgs, base, batch, g)
        k = len(self.cfgs)
        model = frozen_view(base.model)
        if self.attention and hasattr(model, "set_attn_implementation"):
            model.set_attn_implementation(self.attention)
        self.names = [n for n, _ in model.named_parameters()]  # tied weights listed once
        embed = model.get_input_embeddings().weight
        self.embed_name = next(n for n, p in model.named_parameters() if p is embed)
        tensors = [p.detach().to(self.device).unsqueeze(0).repeat(k, *([1] * p.dim())).requires_grad_(True)
                   for _, p in model.named_parameters()]
        self.model = model.to(self.device).eval()
        total = count_params(base.model)[1]
        self.counts = (total, total)
        self.head = HeadInput(self.model.get_output_embeddings())
        self.optimizer = StackedAdamW(tensors, self.cfgs)
        self._rebind(tensors)

    def _rebind(self, tensors: list[torch.Tensor]) -> None:
        self.params = dict(zip(self.names, tensors))

    def _one(self, params: dict, ids, mask, last):
        """One member: its weights → logits (n, V) and head input (n, d) at the last positions."""
        logits = torch.func.functional_call(
            self.model, params, (), dict(input_ids=ids, attention_mask=mask, logits_to_keep=last[:, None])
        ).logits
        return logits[:, 0], self.head.value[:, 0]

    def forward(self, train: bool) -> Forward:
        b = self.batch

        def run():
            return torch.func.vmap(self._one, in_dims=(0, None, None, None))(self.params, b.ids, b.mask, b.last)

        trained, z, h = forward_pair(self.precision, train, run)  # (k, n_ctx, V), (k, n_ctx, d)
        keep = [self.slots.index(m) for m in self.active]
        return Forward(z[keep], h[keep], self._loss(trained)[keep])

    def embedding(self, member: int) -> torch.Tensor:
        return self.params[self.embed_name].detach()[self.slots.index(member)]

    def close(self) -> None:
        self.head.remove()


# ----------------------------------------------------------------------------------------------
# the unvectorised pack


class LoopEngine:
    """K :class:`SingleEngine` side by side: one forward and one step each, in turn."""

    def __init__(self, cfgs: Sequence[TrialConfig], base: LoadedModel, batch: Batch, g: int) -> None:
        self.engines: dict[int, SingleEngine] = {}
        for k, cfg in enumerate(cfgs):
            self.engines[k] = SingleEngine(cfg, base, batch, g)
        self.counts = {k: e.params_count(0) for k, e in self.engines.items()}
        self.active = list(range(len(cfgs)))
        self.device = self.engines[0].device
        self.precision = self.engines[0].precision

    def forward(self, train: bool) -> Forward:
        self.parts = {k: self.engines[k].forward(train) for k in self.active}
        return Forward(*(torch.cat([getattr(f, name) for f in self.parts.values()]) for name in ("z", "h", "loss")))

    def step(self, losses: torch.Tensor) -> list[float]:
        # each engine backpropagates its own loss (``losses`` holds the same values, stacked)
        return [self.engines[k].step(self.parts[k].loss)[0] for k in self.active]

    def embedding(self, member: int) -> torch.Tensor:
        return self.engines[member].E

    def params_count(self, member: int) -> tuple[int, int]:
        return self.counts[member]

    def drop(self, member: int) -> None:
        self.active.remove(member)
        self.engines.pop(member).close()  # its memory goes now, not at the end of the pack

    def close(self) -> None:
        for e in self.engines.values():
            e.close()
        self.engines.clear()
