"""Fast CPU inference: int8 dynamic quantisation of a loaded model's linear layers.

    model = clapkit.load("630k-audioset-best.pt")
    fast = clapkit.fast.accelerate(model)            # audio tower + audio head in int8, text untouched
    fast.embed_audio(paths)                          # same API, ~1.4x the fp32 audio throughput on 2 AVX2 cores

What ``accelerate`` does: every ``nn.Linear`` of the chosen towers (and their projection heads) with at least
``min_features`` inputs becomes PyTorch's dynamically quantised linear (int8 weights per output channel, activations
quantised per call with a range computed from the call's input; fbgemm/x86 kernels). Linears with few inputs (the
first HTSAT stage, 96 features) stay fp32: there the int8 kernel is slower than fp32 on AVX2. Attention, layer norms,
GELU, the front end and convolutions are unchanged.

Accuracy (measured in ``benchmarks/compare.py`` and ``tests/fast``): cosine similarity to the fp32 embeddings above
0.999 for LAION HTSAT-tiny. The result is deterministic, but because an activation's int8 range is taken over the
whole input of a call, a clip's int8 embedding depends very slightly on the other clips of its batch (cosine between
batch sizes above 0.999), unlike the fp32 path, which is exactly batch-independent. Zero-shot decisions whose fp32
margin (best minus second class cosine) is below ~2e-3 can flip (see docs/performance.md). Inference only: the
accelerated model cannot be trained or saved as a checkpoint (its ``save`` raises ``ConfigError``).
"""

from __future__ import annotations

import copy
import warnings

import torch
from torch import nn

from clapkit.errors import ConfigError
from clapkit.inference import ClapPipeline

MODES = ("int8",)
TOWERS = ("audio", "text")


def int8_engine() -> str:
    """The quantised engine used for int8 (``x86`` or ``fbgemm``); raises ``ConfigError`` if there is none."""
    engines = torch.backends.quantized.supported_engines
    for engine in ("x86", "fbgemm"):
        if engine in engines:
            return engine
    raise ConfigError(f"int8 acceleration needs PyTorch's x86/fbgemm quantised engine; this build has {engines}")


def quantizable(module: nn.Module, min_features: int) -> set[str]:
    """Names of the ``nn.Linear`` submodules of ``module`` with at least ``min_features`` inputs."""
    return {name for name, sub in module.named_modules()
            if type(sub) is nn.Linear and sub.in_features >= min_features}


def quantize_linears(module: nn.Module, min_features: int = 192) -> nn.Module:
    """Replace (in place) the eligible linears of ``module`` by int8 dynamic ones; returns ``module``."""
    from torch.ao.quantization import default_dynamic_qconfig, default_per_channel_qconfig, quantize_dynamic
    from torch.ao.quantization.qconfig import QConfig

    names = quantizable(module, min_features)
    if not names:
        return module
    qconfig = QConfig(activation=default_dynamic_qconfig.activation, weight=default_per_channel_qconfig.weight)
    torch.backends.quantized.engine = int8_engine()
    with warnings.catch_warnings():  # torch.ao.quantization is deprecated upstream in favour of torchao
        warnings.simplefilter("ignore")
        quantize_dynamic(module, {name: qconfig for name in names}, dtype=torch.qint8, inplace=True)
    return module


def accelerate(model: ClapPipeline, mode: str = "int8", towers: tuple[str, ...] | list[str] = ("audio",),
               min_features: int = 192) -> ClapPipeline:
    """A copy of ``model`` for fast CPU inference (``model`` itself is not changed).

    ``mode``: ``"int8"`` (dynamic int8 linears). ``towers``: which towers (with their projection heads) to quantise,
    any of ``"audio"``, ``"text"``; the default keeps text fp32 so label/caption embeddings stay exact.
    ``min_features``: linears with fewer inputs stay fp32.
    """
    if mode not in MODES:
        raise ConfigError(f"unknown acceleration mode {mode!r}; known: {', '.join(MODES)}")
    towers = tuple(towers)
    unknown = [t for t in towers if t not in TOWERS]
    if unknown or not towers:
        raise ConfigError(f"towers must be a non-empty subset of {TOWERS}, got {towers!r}")
    if model.device.type != "cpu":
        raise ConfigError(f"int8 acceleration runs on the CPU; this model is on {model.device}")
    module = copy.deepcopy(model.module).eval()
    for parameter in module.parameters():
        parameter.requires_grad_(False)
    for tower in towers:
        quantize_linears(getattr(module, f"{tower}_tower"), min_features)
        quantize_linears(getattr(module, f"{tower}_projection"), min_features)
    fast = ClapPipeline(module, model.config, model.tokenizer, model.device)
    fast.acceleration = mode
    fast.save = _refuse_save
    return fast


def _refuse_save(directory) -> None:
    raise ConfigError(f"an accelerated (int8) model cannot be saved to {directory}: its weights are quantised; save "
                      "the fp32 model it came from and call clapkit.fast.accelerate after loading")
