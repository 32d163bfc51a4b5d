"""Which encoder weights train, at what learning rate, and how their activations are kept.

Every encoder says what it is made of (`Encoder.parts`: a stem, a stack of L blocks, sometimes a final norm; the
table of families is `dfer.encoders.base.Parts`). A family with no weights (`mel`, `egemaps`:
`dfer.encoders.base.Weightless`) is refused.

- `all`: every encoder weight that makes tokens trains. `last:N`: the last N blocks and the final norm train, the
  rest is frozen. `lora:R`: rank-R LoRA adapters (peft) on the encoder's `lora_targets()`, everything else frozen;
  before saving, the adapters are merged into plain linears so the saved folder is an ordinary encoder.
- Layer-wise learning-rate decay: block i (1..L) trains at lr * decay^(L - i), the stem at lr * decay^L, the final
  norm at lr; weight decay only on matrices (not on biases, norms or position vectors).
- Frozen modules stay in eval mode while the model trains (`frozen_roots`): a frozen block's BatchNorm must not
  drift its running statistics and its dropout must not add noise the trainable blocks then learn around.
- Gradient checkpointing: transformers models (SigLIP, hf:) have Hugging Face's switch; NeMo's ConformerEncoder
  and the ge2e LSTMs have none, so each layer's
  forward is wrapped in `torch.utils.checkpoint` (non-reentrant), with the BatchNorm momentum set to 0 during the
  recomputation so the running statistics are updated once per step, not twice.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.utils.checkpoint import checkpoint

from dfer.encoders.base import Encoder
from dfer.extras import require


def make_trainable(encoder: Encoder, mode: str, number: int = 0, lora_alpha: float | None = None) -> None:
    """Set requires_grad for `mode` "all", "last" (number = N blocks) or "lora" (number = rank R)."""
    p = encoder.parts()
    if mode == "all":
        encoder.requires_grad_(True)
        for module in p.beside:  # reads the tokens, makes none: no gradient reaches it
            module.requires_grad_(False)
        return
    encoder.requires_grad_(False)
    if mode == "last":
        for module in p.blocks[-number:] + p.final:
            module.requires_grad_(True)
    elif mode == "lora":
        targets = encoder.lora_targets()
        require("LoRA fine-tuning (--unfreeze lora:R)", "hf", "peft")
        from peft import LoraConfig, inject_adapter_in_model

        config = LoraConfig(r=number, lora_alpha=lora_alpha or 2 * number, lora_dropout=0.0, bias="none",
                            target_modules=targets)
        inject_adapter_in_model(config, p.root)  # swaps the targets for peft LoraLinear, adapters trainable
        for name, param in encoder.named_parameters():
            param.requires_grad_("lora_" in name)
    else:
        raise ValueError(f"unknown unfreeze mode {mode!r}")


def frozen_roots(module: nn.Module, prefix: str = "") -> list[str]:
    """Names of the largest submodules whose parameters are all frozen (kept in eval mode while training)."""
    params = list(module.parameters())
    if params and not any(p.requires_grad for p in params):
        return [prefix]
    return [name for child_name, child in module.named_children()
            for name in frozen_roots(child, f"{prefix}.{child_name}" if prefix else child_name)]


def enable_checkpointing(encoder: Encoder) -> None:
    """Recompute each block's activations in backward instead of keeping them (only while gradients are on)."""
    p = encoder.parts()
    if hasattr(p.root, "gradient_checkpointing_enable"):  # transformers: SigLIP2, hf:
        p.root.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        return
    for layer in p.blocks:
        layer.forward = functools.partial(_checkpointed, layer, layer.forward)  # instance attribute: no new keys


def _checkpointed(layer: nn.Module, forward, *args, **kwargs):
    if not (torch.is_grad_enabled() and layer.training):
        return forward(*args, **kwargs)
    norms = [m for m in layer.modules() if isinstance(m, _BatchNorm) and m.training]
    return checkpoint(forward, *args, use_reentrant=False,
                      context_fn=lambda: (nullcontext(), _frozen_momentum(norms)), **kwargs)


@contextmanager
def _frozen_momentum(norms: list[_BatchNorm]) -> Iterator[None]:
    """During recomputation: batch statistics are used as in the first pass, the running ones are left alone."""
    saved = [m.momentum for m in norms]
    for m in norms:
        m.momentum = 0.0
    try:
        yield
    finally:
        for m, momentum in zip(norms, saved):
            m.momentum = momentum


def layer_groups(encoder: Encoder, lr: float, decay: float, weight_decay: float, name: str) -> list[dict]:
    """AdamW parameter groups of an encoder's trainable weights with layer-wise learning-rate decay."""
    p = encoder.parts()
    L = len(p.blocks)
    depth = {}  # id(param) -> 0 (stem) .. L (last block, final norm)
    for i, modules in [(0, p.stem), *[(i + 1, [block]) for i, block in enumerate(p.blocks)], (L, p.final)]:
        for module in modules:
            for param in module.parameters():
                depth[id(param)] = i
    groups: dict[tuple[int, bool], dict] = {}
    for param_name, param in encoder.named_parameters():
        if not param.requires_grad:
            continue
        level = depth.get(id(param), 0)
        decays = param.ndim >= 2 and "position" not in param_name and "pos_bias" not in param_name
        group = groups.setdefault((level, decays), {
            "name": f"{name}.{'stem' if level == 0 else f'block{level}'}{'' if decays else '.no_decay'}",
            "params": [], "lr": lr * decay ** (L - level), "weight_decay": weight_decay if decays else 0.0,
        })
        group["params"].append(param)
    return [groups[key] for key in sorted(groups)]


@contextmanager
def lora_merged(encoder: nn.Module) -> Iterator[None]:
    """Inside, every LoRA linear is replaced by a plain nn.Linear holding base + adapter weights (new tensors:
    nothing is merged in place, so training resumes with its exact weights afterwards). No-op without LoRA."""
    if sys.modules.get("peft") is None:  # no adapter can exist before peft is imported (or without it)
        yield
        return
    from peft.tuners.lora import LoraLayer

    swapped = []
    for name, module in list(encoder.named_modules()):
        if isinstance(module, LoraLayer):
            base = module.get_base_layer()
            plain = nn.Linear(base.in_features, base.out_features, bias=base.bias is not None, device="meta")
            with torch.no_grad():
                delta = sum(module.get_delta_weight(adapter) for adapter in module.active_adapters)
                plain.weight = nn.Parameter(base.weight.detach() + delta.to(base.weight.dtype), requires_grad=False)
            plain.bias = base.bias
            parent_name, _, child = name.rpartition(".")
            parent = encoder.get_submodule(parent_name)
            setattr(parent, child, plain)
            swapped.append((parent, child, module))
    try:
        yield
    finally:
        for parent, child, module in swapped:
            setattr(parent, child, module)


def count_trainable(module: nn.Module | None) -> int:
    return 0 if module is None else sum(p.numel() for p in module.parameters() if p.requires_grad)
