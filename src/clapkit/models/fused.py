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
dtype), or with **bf16 weights** (``clapkit.fast``'s ``bf16`` backend stores its linears so) and bf16 inputs, or fp32
inputs under bf16 autocast, which are cast as autocast would: then the product, GELU and residual add run in one
oneDNN bf16 call (fp32 accumulation, the epilogue on the fp32 tile, bf16 output, as the autocast path's ``addmm``
returns) on a packed bf16 weight, where the CPU computes bf16 natively (``BF16 = None``: automatic; True/False forces
it); and only when no gradient is recorded: the oneDNN op has no autograd formula, and a custom autograd
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
BF16: bool | None = None  # bf16 linears through oneDNN; None: automatic (native bf16), True/False: always / never
EPILOGUES = True  # False: oneDNN linear, then GELU / the add as separate passes (benchmarks/htsat_speed.py ablation)
PACK = True  # reuse a oneDNN-packed copy of each weight (False: the plain weight, re-laid out by every call)
PACK_ROWS = 1024  # the row count oneDNN picks the packed layout for (any row count works; the speed barely differs)
_packed: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # nn.Linear -> ((storage, version), packed weight)


@functools.lru_cache(maxsize=1)
def _has_onednn_linear() -> bool:
    """This torch build has oneDNN and its fused linear op."""
    return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")


@functools.lru_cache(maxsize=1)
def _onednn_pays() -> bool:
    """oneDNN's fp32 linear is available and the CPU runs PyTorch's AVX-512 kernels (where it measured faster)."""
    return _has_onednn_linear() and torch.backends.cpu.get_cpu_capability().startswith("AVX512")


def onednn_enabled() -> bool:
    """Whether ``linear`` may use oneDNN (``ONEDNN``, else the automatic choice)."""
    if ONEDNN is not None:
        return ONEDNN and _has_onednn_linear()
    return _onednn_pays()


@functools.lru_cache(maxsize=1)
def native_bf16() -> bool:
    """oneDNN's linear is available and the CPU computes bf16 natively (AVX-512 BF16 or AMX), as far as this process
    may use it: oneDNN's own check follows ``ONEDNN_MAX_CPU_ISA``, and PyTorch's kernel cap (``ATEN_CPU_CAPABILITY``,
    ``torch.backends.cpu.get_cpu_capability()``) below AVX-512 also means no bf16 (its bf16 norms, softmax and casts
    would run as emulated AVX2 code), so a process capped to AVX2 behaves as on an AVX2 CPU."""
    if not _has_onednn_linear() or not torch.backends.cpu.get_cpu_capability().startswith("AVX512"):
        return False
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def bf16_enabled() -> bool:
    """Whether ``linear`` may run bf16 linears through oneDNN (``BF16``, else the automatic choice)."""
    if BF16 is not None:
        return BF16 and _has_onednn_linear()
    return native_bf16()


def capturing() -> bool:
    """A trace, ONNX export or torch.compile/export is recording the graph: it must see the portable ops."""
    return torch.jit.is_tracing() or torch.onnx.is_in_onnx_export() or torch.compiler.is_compiling()


def _bf16_input(layer: nn.Linear, x: Tensor) -> bool:
    """A bf16 linear's input that ``F.linear`` would take: bf16, or fp32 that CPU autocast casts to bf16."""
    if layer.weight.dtype != torch.bfloat16 or (layer.bias is not None and layer.bias.dtype != torch.bfloat16):
        return False
    if x.dtype == torch.bfloat16:
        return True
    return (x.dtype == torch.float32 and torch.is_autocast_enabled("cpu")
            and torch.get_autocast_dtype("cpu") == torch.bfloat16)


def uses_onednn(layer: nn.Module, x: Tensor) -> bool:
    """True when ``linear(layer, x, ...)`` goes through oneDNN: a plain ``nn.Linear``, CPU tensors, no autograd, no
    graph capture (``torch.jit.trace``, ONNX export, ``torch.compile``: OpenVINO, ONNX Runtime and inductor get
    ``F.linear``), and either fp32 weights and input without CPU autocast (``onednn_enabled()``) or bf16 weights
    with a bf16 input or an fp32 one under bf16 autocast (``bf16_enabled()``)."""
    if type(layer) is not nn.Linear or torch.is_grad_enabled() or x.device.type != "cpu" or capturing():
        return False
    if layer.weight.dtype == torch.float32:
        return x.dtype == torch.float32 and not torch.is_autocast_enabled("cpu") and onednn_enabled()
    return _bf16_input(layer, x) and bf16_enabled()


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
    if onednn and layer.weight.dtype == torch.bfloat16:  # the inputs autocast would cast
        x = x.to(torch.bfloat16)
        residual = None if residual is None else residual.to(torch.bfloat16)
    if onednn and EPILOGUES:
        if residual is not None:
            return torch.ops.mkldnn._linear_pointwise.binary(x, residual, weight, layer.bias, "add")
        return torch.ops.mkldnn._linear_pointwise(x, weight, layer.bias, "gelu" if gelu else "none", [],
                                                  "none" if gelu else "")
    out = torch.ops.mkldnn._linear_pointwise(x, weight, layer.bias, "none", [], "") if onednn else layer(x)
    if gelu:
        return F.gelu(out) if torch.is_grad_enabled() else torch.ops.aten.gelu_(out)
    return out if residual is None else out.add_(residual)
