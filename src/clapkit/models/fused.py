"""Linear layers with fused epilogues (exact GELU, residual add) through oneDNN, for fp32 inference on CPU.

On CPUs where PyTorch dispatches AVX-512 kernels, oneDNN's fp32 matrix product (``torch.ops.mkldnn._linear_pointwise``)
runs the linears of HTSAT ~10-25 % faster than ``F.linear`` (MKL's ``addmm``), and it applies GELU or adds the
residual while the output tile is still in cache instead of in a second pass over memory; each weight is packed into
oneDNN's blocked layout once (``packed_weight``; 5-15 % more at the small row counts of batch 1). Measured in
docs/performance.md ("Run on 2026-12-01"). On the AVX2 machine of the earlier runs oneDNN was equal or slower, so the
automatic choice (``ONEDNN = None``) uses it only where the CPU capability is AVX-512; ``ONEDNN = True/False`` forces
it either way.

Used for plain ``nn.Linear`` modules only (a quantised or otherwise replaced linear, e.g. by ``clapkit.fast``, takes
the ordinary path), with fp32 CPU tensors and no autocast (under autocast the ordinary path runs in the autocast
dtype), and only when no gradient is recorded: the oneDNN op has no autograd formula, and a custom autograd
function with oneDNN forward and input-gradient products measured no faster than ``F.linear`` for the training step
(docs/performance.md). Results equal ``F.linear`` up to float32 rounding of a different summation order (~1e-6
relative).
"""

from __future__ import annotations

import functools
import weakref

import torch
import torch.nn.functional as F
from torch import Tensor, nn

ONEDNN: bool | None = None  # None: automatic (AVX-512 CPUs), True/False: always / never
EPILOGUES = True  # False: oneDNN linear, then GELU / the add as separate passes (benchmarks/htsat_speed.py ablation)
PACK = True  # reuse a oneDNN-packed copy of each weight (False: the plain weight, re-laid out by every call)
PACK_ROWS = 1024  # the row count oneDNN picks the packed layout for (any row count works; the speed barely differs)
_packed: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # nn.Linear -> ((storage, version), packed weight)


@functools.lru_cache(maxsize=1)
def _onednn_pays() -> bool:
    """oneDNN's fp32 linear is available and the CPU runs PyTorch's AVX-512 kernels (where it measured faster)."""
    if not (torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")):
        return False
    return torch.backends.cpu.get_cpu_capability().startswith("AVX512")


def onednn_enabled() -> bool:
    """Whether ``linear`` may use oneDNN (``ONEDNN``, else the automatic choice)."""
    if ONEDNN is not None:
        return ONEDNN and torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")
    return _onednn_pays()


def _capturing() -> bool:
    """A trace, ONNX export or torch.compile/export is recording the graph: it must see the portable ops."""
    return torch.jit.is_tracing() or torch.onnx.is_in_onnx_export() or torch.compiler.is_compiling()


def uses_onednn(layer: nn.Module, x: Tensor) -> bool:
    """True when ``linear(layer, x, ...)`` goes through oneDNN: enabled, no autograd, a plain ``nn.Linear``, fp32 CPU
    tensors, no CPU autocast, and no graph capture (``torch.jit.trace``, ONNX export, ``torch.compile``: OpenVINO,
    ONNX Runtime and inductor get ``F.linear``)."""
    return (type(layer) is nn.Linear and not torch.is_grad_enabled() and x.device.type == "cpu"
            and x.dtype == torch.float32 and layer.weight.dtype == torch.float32
            and not torch.is_autocast_enabled("cpu") and onednn_enabled() and not _capturing())


def tensor_key(tensor: Tensor) -> tuple | None:
    """What a cache derived from ``tensor`` must be keyed on to notice in-place changes and replacement: storage,
    version counter, shape; ``None`` for inference tensors, which keep no version counter (do not cache those)."""
    if tensor.is_inference():
        return None
    return tensor.data_ptr(), tensor._version, tuple(tensor.shape), tensor.device


def packed_weight(layer: nn.Linear) -> Tensor:
    """``layer.weight`` in oneDNN's blocked layout, packed once and reused until the weight changes (in place or
    replaced); the plain weight when ``PACK`` is off or the weight is an inference tensor (created under
    ``torch.inference_mode``: no version counter to notice changes by). The packed copy costs as much memory as the
    weight."""
    weight = layer.weight
    key = tensor_key(weight)
    if not PACK or key is None:
        return weight
    entry = _packed.get(layer)
    if entry is None or entry[0] != key:
        entry = (key, torch.ops.mkldnn._reorder_linear_weight(weight.detach(), PACK_ROWS))
        _packed[layer] = entry
    return entry[1]


def linear(layer: nn.Module, x: Tensor, gelu: bool = False, residual: Tensor | None = None) -> Tensor:
    """``layer(x)``, then the exact (erf) GELU if ``gelu``, or plus ``residual`` (same shape as the output).

    One oneDNN call when ``uses_onednn(layer, x)``; otherwise ``layer(x)`` and the epilogue in place on its output
    (GELU in place only without autograd: its backward needs its input)."""
    if gelu and residual is not None:
        raise ValueError("linear fuses either GELU or a residual add, not both")
    onednn = uses_onednn(layer, x)
    weight = packed_weight(layer) if onednn else None
    if onednn and EPILOGUES:
        if residual is not None:
            return torch.ops.mkldnn._linear_pointwise.binary(x, residual, weight, layer.bias, "add")
        return torch.ops.mkldnn._linear_pointwise(x, weight, layer.bias, "gelu" if gelu else "none", [],
                                                  "none" if gelu else "")
    out = torch.ops.mkldnn._linear_pointwise(x, weight, layer.bias, "none", [], "") if onednn else layer(x)
    if gelu:
        return F.gelu(out) if torch.is_grad_enabled() else torch.ops.aten.gelu_(out)
    return out if residual is None else out.add_(residual)
