"""Fast CPU inference: a copy of a loaded model whose audio path runs in bf16, int8 or an inference runtime.

    model = clapkit.load("default")
    fast = clapkit.fast.accelerate(model)            # backend "auto": the one measured best for this model here
    fast.embed_audio(paths)                          # same API; text stays fp32 (label embeddings are exact)

Backends (``accelerate(model, backend)``; measured in ``benchmarks/fast_path.py``, docs/performance.md):

- ``"bf16"``: the audio tower runs under ``torch.autocast`` in bfloat16 (matmuls and convolutions in bf16 with fp32
  accumulation, norms and softmax in fp32; the default model's input convolution and every projection head in fp32).
  Fast where the CPU has native bf16 (AVX-512 BF16, AMX); elsewhere emulated and slower than fp32. Cosine to fp32
  >= 0.9998 on the default model's held-out clips, >= 0.9999 on HTSAT-tiny.
- ``"int8"``: every ``nn.Linear`` of the chosen towers with at least ``min_features`` inputs becomes PyTorch's
  dynamically quantised linear (int8 weights per output channel, activations quantised per call over the call's
  whole input, so a clip's result depends very slightly on its batch mates). Convolutions are unchanged, so it only
  helps transformer towers (HTSAT); the first HTSAT stage (96 features) stays fp32 by default.
- ``"openvino"``: the audio path traced and compiled by OpenVINO, in bf16 where ``native_bf16()``, else fp32.
- ``"onnxruntime"``: the audio path exported to ONNX and run by ONNX Runtime in fp32.
- ``"onnxruntime-int8"``: the same graph with static int8 convolutions and matrix products (QDQ), activation ranges
  calibrated on ``calibration`` audio (default: the example clips shipped with clapkit).
- ``"auto"``: ``"bf16"`` on a CPU with native bf16 (``native_bf16()``; an instruction-set cap such as
  ``ATEN_CPU_CAPABILITY=avx2`` or ``ONEDNN_MAX_CPU_ISA=AVX2`` counts as none), else ``"int8"``: on an AVX2 CPU
  without VNNI it measured faster than every runtime backend for HTSAT (docs/performance.md, "Emulated AVX2 run"),
  needs no optional package and builds in about a second.
The runtimes are optional (``pip install 'clapkit[fast]'``); a missing one gives an error naming the extra. Inference
only: an accelerated model cannot be trained or saved as a checkpoint (its ``save`` raises ``ConfigError``).
"""

from __future__ import annotations

import copy
import warnings
from pathlib import Path

import torch
from torch import nn

from clapkit.errors import ConfigError
from clapkit.inference import AudioInput, ClapPipeline
from clapkit.models.fused import native_bf16  # the one check of native bf16 (honours an ISA cap)

RUNTIMES = ("openvino", "onnxruntime", "onnxruntime-int8")
BACKENDS = ("auto", "bf16", "int8", *RUNTIMES)
MODES = BACKENDS  # the former name
TOWERS = ("audio", "text")
EXAMPLES = Path(__file__).parent / "assets" / "examples"


def int8_engine() -> str:
    """The quantised engine used for int8 (``x86`` or ``fbgemm``); raises ``ConfigError`` if there is none."""
    engines = torch.backends.quantized.supported_engines
    for engine in ("x86", "fbgemm"):
        if engine in engines:
            return engine
    raise ConfigError(f"int8 acceleration needs PyTorch's x86/fbgemm quantised engine; this build has {engines}")


def choose_backend(model: ClapPipeline) -> str:
    """What ``"auto"`` picks for ``model`` on this machine (see the module docstring and docs/performance.md)."""
    return "bf16" if native_bf16() else "int8"


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


class Bf16(nn.Module):
    """Runs ``inner`` under CPU autocast to bfloat16 and returns float32. The weights of ``inner``'s ``nn.Linear``
    layers are stored in bf16 (no cast per call; where the CPU has native bf16, ``clapkit.models.fused.linear`` runs
    them through oneDNN with packed bf16 weights and the GELU / residual add fused, and HTSAT's window attention runs
    as two bf16 batched products, ``clapkit.models.swin.bmm_attention``); convolutions and norms keep fp32
    parameters (batch norms folded into convolutions in bf16 lose too much: cosine 0.990 on the default model)."""

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = inner
        for layer in inner.modules():
            if type(layer) is nn.Linear:
                layer.weight.data = layer.weight.data.to(torch.bfloat16)
                if layer.bias is not None:
                    layer.bias.data = layer.bias.data.to(torch.bfloat16)

    def forward(self, *args, **kwargs):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = self.inner(*args, **kwargs)
        return out.float()


def accelerate(model: ClapPipeline, backend: str = "auto", towers: tuple[str, ...] | list[str] = ("audio",),
               min_features: int = 192, calibration: AudioInput | None = None, mode: str | None = None
               ) -> ClapPipeline:
    """A copy of ``model`` for fast CPU inference (``model`` itself is not changed).

    ``backend``: one of ``BACKENDS`` (module docstring). ``towers``: which towers (with their projection heads) to
    accelerate, any of ``"audio"``, ``"text"`` (``bf16`` and ``int8`` only); the default keeps text fp32 so label
    and caption embeddings stay exact. ``min_features``: ``int8`` leaves linears with fewer inputs in fp32.
    ``calibration``: audio (paths, or arrays at the model's rate) for ``onnxruntime-int8``'s activation ranges.
    ``mode``: the former name of ``backend``.
    """
    backend = mode if mode is not None else backend
    if backend not in BACKENDS:
        raise ConfigError(f"unknown acceleration backend {backend!r}; known: {', '.join(BACKENDS)}")
    towers = tuple(towers)
    unknown = [t for t in towers if t not in TOWERS]
    if unknown or not towers:
        raise ConfigError(f"towers must be a non-empty subset of {TOWERS}, got {towers!r}")
    if model.device.type != "cpu":
        raise ConfigError(f"fast ({backend}) acceleration runs on the CPU; this model is on {model.device}")
    chosen = choose_backend(model) if backend == "auto" else backend
    if chosen in RUNTIMES:
        from clapkit.fast_runtimes import require

        require(chosen)  # before any copying: a missing runtime fails at once
        if towers != ("audio",):
            raise ConfigError(f"the {chosen} backend accelerates the audio tower only; pass towers=('audio',) or "
                              "use 'bf16' / 'int8' for text")
        if model.config.audio.enable_fusion:
            raise ConfigError(f"{model.config.name}: a fusion model's is_longer steers its audio tower, which a "
                              f"traced {chosen} graph cannot follow; use backend 'bf16' or 'int8'")
    module = copy.deepcopy(model.module).eval()
    for parameter in module.parameters():
        parameter.requires_grad_(False)
    if chosen in RUNTIMES:
        _runtime_audio(model, module, chosen, calibration)
    for tower in towers if chosen == "int8" else ():
        for name in (f"{tower}_tower", f"{tower}_projection"):
            quantize_linears(getattr(module, name), min_features)
    for tower in towers if chosen == "bf16" else ():  # the projection heads (~0.1 % of the work) stay fp32
        setattr(module, f"{tower}_tower", Bf16(getattr(module, f"{tower}_tower")))
    fast = ClapPipeline(module, model.config, model.tokenizer, model.device)
    fast.acceleration = chosen
    fast.save = _refuse_save
    return fast


def _runtime_audio(model: ClapPipeline, module: nn.Module, backend: str, calibration: AudioInput | None) -> None:
    """Put the runtime's audio path into ``module`` (its audio tower; the head is inside the runtime's graph)."""
    import numpy as np

    from clapkit.audio.fusion import prepare_batch
    from clapkit.fast_runtimes import AudioPath, build

    frontend = model.config.frontend
    rng = np.random.default_rng(0)
    t = np.arange(frontend.clip_samples) / frontend.sample_rate
    tones = [(0.05 * rng.standard_normal(t.size) + 0.3 * np.sin(2 * np.pi * f * t)).astype(np.float32)
             for f in (220.0, 880.0, 1760.0)]
    example = prepare_batch(tones, frontend, fusion=False, train=False).features
    features = None
    if backend == "onnxruntime-int8":
        audio = sorted(EXAMPLES.glob("*.flac")) if calibration is None else calibration
        waveforms, _ = model.load_waveforms(audio, model.sample_rate)
        features = prepare_batch(waveforms, frontend, fusion=False, train=False).features
    path = AudioPath(module.audio_tower, module.audio_projection)
    module.audio_tower = build(backend, path, example, calibration=features)
    module.audio_projection = nn.Identity()


def _refuse_save(directory) -> None:
    raise ConfigError(f"an accelerated model cannot be saved to {directory}: its audio path is quantised or held by "
                      "a runtime; save the fp32 model it came from and call clapkit.fast.accelerate after loading")
