"""Processes and devices: torchrun environment, process group (gloo on CPU, nccl on GPU), DDP / FSDP wrapping, batch
norm over the global batch, and small collectives for logging and checkpoints.

Launch with ``torchrun --nproc_per_node N -m clapkit.cli train --config F``; a plain ``clapkit train`` is one
process. The gradient convention: every cross-rank autograd op (the embedding gather of the loss, the statistics of
:class:`GlobalBatchNorm`) differentiates the SUM of the ranks' losses and DDP/FSDP average the gradients, so N ranks
on N slices of a batch compute the same update as one process on the whole batch.
"""

from __future__ import annotations

import contextlib
import datetime
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from clapkit.errors import ConfigError


@dataclass(frozen=True)
class DistributedContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    backend: str | None = None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def init_distributed(device: str = "auto", backend: str = "auto", timeout_minutes: int = 30) -> DistributedContext:
    """Read torchrun's ``RANK``/``WORLD_SIZE``/``LOCAL_RANK``; start the process group when there are several."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device == "auto":
        chosen = torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    else:
        chosen = torch.device(device)
        if chosen.type == "cuda" and chosen.index is None:
            chosen = torch.device(f"cuda:{local_rank}")
    if chosen.type == "cuda":
        torch.cuda.set_device(chosen)
    if world_size == 1:
        return DistributedContext(device=chosen)
    if backend == "auto":
        backend = "nccl" if chosen.type == "cuda" else "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend, timeout=datetime.timedelta(minutes=timeout_minutes))
    return DistributedContext(rank, world_size, local_rank, chosen, backend)


def shutdown_distributed() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def all_gather_objects(value: Any) -> list[Any]:
    """Every rank's ``value`` (picklable, small), in rank order; ``[value]`` on one process."""
    if not (dist.is_available() and dist.is_initialized()):
        return [value]
    gathered: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, value)
    return gathered


def mean_over_ranks(value: float, device: torch.device) -> float:
    if not (dist.is_available() and dist.is_initialized()):
        return float(value)
    tensor = torch.tensor([float(value)], device=device, dtype=torch.float64)
    dist.all_reduce(tensor)
    return float(tensor.item()) / dist.get_world_size()


class _AllReduceSum(torch.autograd.Function):
    """Sum over ranks; the backward sums the gradients too (each rank's input feeds every rank's output)."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        total = tensor.clone()
        dist.all_reduce(total)
        return total

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        total = grad.contiguous().clone()
        dist.all_reduce(total)
        return total


class GlobalBatchNorm(_BatchNorm):
    """Batch norm whose training statistics are those of the global batch over all ranks (any device, any backend:
    unlike ``torch.nn.SyncBatchNorm`` it also runs on CPU with gloo). One process, or eval mode: plain batch norm."""

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2-D input (B, C, ...), got {input.dim()}-D")

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        synced = self.training and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1
        if not synced:
            return super().forward(input)
        self._check_input_dim(input)
        dims = [0, *range(2, input.dim())]
        shape = [1, -1] + [1] * (input.dim() - 2)
        x = input.float()
        count = torch.tensor([x.numel() // x.shape[1]], device=x.device, dtype=torch.float32)
        dist.all_reduce(count)
        mean = _AllReduceSum.apply(x.sum(dims)) / count
        centered = x - mean.view(shape)
        variance = _AllReduceSum.apply(centered.square().sum(dims)) / count
        out = centered * torch.rsqrt(variance + self.eps).view(shape)
        if self.affine:
            out = out * self.weight.view(shape) + self.bias.view(shape)
        if self.track_running_stats:
            self._update_running_stats(mean.detach(), variance.detach(), float(count.item()))
        return out.to(input.dtype)

    @torch.no_grad()
    def _update_running_stats(self, mean: torch.Tensor, variance: torch.Tensor, count: float) -> None:
        self.num_batches_tracked.add_(1)
        momentum = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
        unbiased = variance * (count / max(count - 1.0, 1.0))
        self.running_mean.lerp_(mean.to(self.running_mean.dtype), momentum)
        self.running_var.lerp_(unbiased.to(self.running_var.dtype), momentum)


def convert_batchnorm(module: nn.Module) -> nn.Module:
    """Replace every batch-norm layer by a :class:`GlobalBatchNorm` with the same parameters and buffers (same
    state-dict keys)."""
    if isinstance(module, _BatchNorm) and not isinstance(module, GlobalBatchNorm):
        replacement = GlobalBatchNorm(module.num_features, module.eps, module.momentum, module.affine,
                                      module.track_running_stats)
        replacement.load_state_dict(module.state_dict())
        replacement.train(module.training)
        if module.affine:
            replacement.weight.requires_grad_(module.weight.requires_grad)
            replacement.bias.requires_grad_(module.bias.requires_grad)
        return replacement
    for name, child in module.named_children():
        module.add_module(name, convert_batchnorm(child))
    return module


def wrap_model(module: nn.Module, context: DistributedContext, strategy: str) -> nn.Module:
    """DDP or FSDP (fully_shard on every block of a ``ModuleList``, then the root) for several processes; the module
    itself on one. DDP looks for unused parameters: towers hold layers CLAP does not use (HTSAT's classifier head,
    the text pooler under mean pooling, the text logit scale)."""
    if not context.distributed:
        return module
    if strategy == "ddp":
        device_ids = [context.device.index] if context.device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(module, device_ids=device_ids, find_unused_parameters=True)
    if strategy == "fsdp":
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import fully_shard

        mesh = init_device_mesh(context.device.type, (context.world_size,))
        blocks = [(name.count("."), child) for name, child in _list_blocks(module)]
        for _, block in sorted(blocks, key=lambda pair: -pair[0]):
            fully_shard(block, mesh=mesh)
        # FSDP cannot shard 0-d parameters (the logit scales) or empty ones: they stay replicated, their gradients
        # averaged by average_replicated_gradients
        scalars = [p for p in module.parameters() if p.ndim == 0 or p.numel() == 0]
        fully_shard(module, mesh=mesh, ignored_params=set(scalars))
        module._replicated_parameters = scalars
        return module
    raise ConfigError(f"distributed must be 'ddp' or 'fsdp', got {strategy!r}")


def _list_blocks(module: nn.Module) -> Iterator[tuple[str, nn.Module]]:
    for name, child in module.named_modules():
        if isinstance(child, nn.ModuleList):
            for index, block in enumerate(child):
                if any(p.requires_grad for p in block.parameters()):
                    yield f"{name}.{index}", block


def average_replicated_gradients(model: nn.Module) -> None:
    """All-reduce (mean) the gradients of parameters FSDP leaves replicated; nothing for DDP or one process."""
    parameters = [p for p in getattr(model, "_replicated_parameters", []) if p.requires_grad]
    if not parameters or not (dist.is_available() and dist.is_initialized()):
        return
    for parameter in parameters:
        if parameter.grad is None:
            parameter.grad = torch.zeros_like(parameter)
        dist.all_reduce(parameter.grad)
        parameter.grad.div_(dist.get_world_size())


def unwrap_model(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


@contextlib.contextmanager
def gradient_sync(model: nn.Module, enabled: bool) -> Iterator[None]:
    """Skip the gradient all-reduce on accumulation micro-steps (DDP no_sync, FSDP set_requires_gradient_sync)."""
    if enabled:
        yield
    elif isinstance(model, nn.parallel.DistributedDataParallel):
        with model.no_sync():
            yield
    elif hasattr(model, "set_requires_gradient_sync"):
        model.set_requires_gradient_sync(False)
        try:
            yield
        finally:
            model.set_requires_gradient_sync(True)
    else:
        yield


def full_tensor(value: torch.Tensor) -> torch.Tensor:
    """A plain tensor from a (possibly sharded) DTensor."""
    return value.full_tensor() if hasattr(value, "full_tensor") else value



def clip_gradients(parameters: list[torch.Tensor], max_norm: float | None) -> torch.Tensor:
    """Total gradient norm over all ranks' shards (clipped to ``max_norm`` when given). Sharded (DTensor) and
    replicated gradients are measured separately, then combined: FSDP mixes both."""
    grads = [p.grad for p in parameters if p.grad is not None]
    sharded = [g for g in grads if hasattr(g, "full_tensor")]
    plain = [g for g in grads if not hasattr(g, "full_tensor")]
    squares = torch.zeros((), dtype=torch.float32, device=grads[0].device if grads else "cpu")
    if sharded:
        squares = squares + full_tensor(torch.nn.utils.get_total_norm(sharded)).float().square()
    if plain:
        squares = squares + torch.nn.utils.get_total_norm(plain).float().square()
    total = squares.sqrt()
    if max_norm:
        scale = min(1.0, max_norm / (float(total) + 1e-6))
        if scale < 1.0:
            for grad in grads:
                grad.mul_(scale)
    return total
