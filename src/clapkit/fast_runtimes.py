"""The audio path (tower + projection head) of a loaded model run by an inference runtime: OpenVINO or ONNX Runtime.

Used by :func:`clapkit.fast.accelerate` (``backend="openvino"``, ``"onnxruntime"``, ``"onnxruntime-int8"``). The
model's ``features -> audio_features`` function is traced with TorchScript on one example batch (after a first call,
so the towers' shape caches are filled) and handed to the runtime with a free batch axis; the time and mel axes stay
those of the example (HTSAT's trace bakes them in). A call with other time/mel sizes runs the fp32 PyTorch modules
instead, so the result is always right. A tower whose trace also bakes in the batch size (HTSAT's Swin blocks loop
over chunks of windows: the loop is unrolled for the traced batch) is found at build time, by comparing a batch of
another size with fp32, and is then traced for one clip and run clip by clip. Fusion models (whose ``is_longer``
steers the computation) are refused.

``onnxruntime-int8``: static int8 (QDQ, per-channel int8 weights, uint8 activations whose ranges are calibrated on
``calibration`` features) of the convolutions and matrix products; ONNX Runtime runs them with VNNI where present.
Both runtimes are optional: ``pip install 'clapkit[fast]'``.
"""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from clapkit.errors import ConfigError

EXTRA = "pip install 'clapkit[fast]'"
PACKAGES = {"openvino": "openvino", "onnxruntime": "onnxruntime", "onnxruntime-int8": "onnxruntime"}


def _decline_openvino_telemetry() -> None:
    """``import openvino`` imports its model converter, whose telemetry sends usage events over the network unless a
    consent file says no; a library must make no network calls as a side effect, so clapkit declines for this process
    (as ``opt_in_out --opt_out`` would, without writing the user's consent file)."""
    try:
        from openvino_telemetry.utils.opt_in_checker import ConsentCheckResult, OptInChecker
    except ImportError:
        return
    OptInChecker.check = lambda self, *args, **kwargs: ConsentCheckResult.DECLINED


def require(backend: str):
    """Import the runtime package of ``backend``; a clear ``ConfigError`` naming the pip extra when it is missing."""
    package = PACKAGES[backend]
    if package == "openvino":
        _decline_openvino_telemetry()
    try:
        module = __import__(package)
        if backend.startswith("onnxruntime"):
            import onnx  # noqa: F401  (torch.onnx.export writes through it)
    except ImportError as exc:
        raise ConfigError(f"the {backend!r} fast backend needs the {exc.name} package, which is not installed: "
                          f"{EXTRA} (or pip install {exc.name})") from None
    return module


class AudioPath(nn.Module):
    """``features (B, C, T, M) -> audio_features (B, D)``: the tower and head of a ``ClapNetwork``, fp32."""

    def __init__(self, tower: nn.Module, projection: nn.Module):
        super().__init__()
        self.tower, self.projection = tower, projection

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.projection(self.tower(features, None))


class RuntimeAudio(nn.Module):
    """Stands in for ``audio_tower`` (the head is inside the runtime's graph; the network's head becomes identity).
    ``forward(features, is_longer=None)``: the runtime for the traced time/mel sizes, the fp32 modules otherwise."""

    def __init__(self, path: AudioPath, run, shape: tuple[int, ...], backend: str, per_clip: bool):
        super().__init__()
        self.fallback, self.run, self.shape, self.backend, self.per_clip = path, run, tuple(shape), backend, per_clip

    def forward(self, features: torch.Tensor, is_longer: torch.Tensor | None = None) -> torch.Tensor:
        if tuple(features.shape[1:]) != self.shape or features.device.type != "cpu":
            return self.fallback(features)
        array = np.ascontiguousarray(features.detach().float().numpy())
        parts = [array[i:i + 1] for i in range(len(array))] if self.per_clip else [array]
        return torch.from_numpy(np.concatenate([np.array(self.run(p), dtype=np.float32) for p in parts]))


def build(backend: str, path: AudioPath, example: torch.Tensor, calibration: torch.Tensor | None = None,
          threads: int | None = None) -> RuntimeAudio:
    """A :class:`RuntimeAudio` for ``path`` run by ``backend``; ``example`` (B >= 3, C, T, M) fixes the time/mel
    sizes and checks that the graph holds for other batch sizes (else it is rebuilt for one clip at a time)."""
    require(backend)
    threads = threads or torch.get_num_threads()
    path = path.eval()
    audio = RuntimeAudio(path, _compile(backend, path, example[:2], threads, calibration), example.shape[1:], backend,
                         per_clip=False)
    with torch.no_grad():
        expected = path(example)
        try:
            close = float(torch.nn.functional.cosine_similarity(expected, audio(example)).min()) >= 0.9
        except Exception:  # noqa: BLE001  (a runtime's shape error: the graph holds the traced batch size)
            close = False
    if not close:
        audio = RuntimeAudio(path, _compile(backend, path, example[:1], threads, calibration), example.shape[1:],
                             backend, per_clip=True)
    return audio


def _compile(backend: str, path: AudioPath, example: torch.Tensor, threads: int, calibration: torch.Tensor | None):
    with torch.no_grad():
        path(example)  # fill the towers' caches, so the trace holds no first-call branch
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            traced = torch.jit.trace(path, example, check_trace=False)
    if backend == "openvino":
        return _openvino(traced, example, threads)
    return _onnxruntime(traced, path, example, threads, calibration if backend == "onnxruntime-int8" else None)


def _openvino(traced, example: torch.Tensor, threads: int):
    import openvino as ov

    shape = ov.PartialShape([-1, *example.shape[1:]])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        graph = ov.convert_model(traced, example_input=example, input=[shape])
    compiled = ov.Core().compile_model(graph, "CPU", {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": threads,
                                                      "INFERENCE_PRECISION_HINT": openvino_precision()})
    request = compiled.create_infer_request()
    return lambda array: request.infer({0: array})[0]


def openvino_precision() -> str:
    """OpenVINO's CPU inference precision: ``bf16`` where clapkit finds native bf16 (``models.fused.native_bf16``),
    else ``f32``. That is the plugin's own default on real hardware; naming it makes an ISA cap
    (``ONEDNN_MAX_CPU_ISA=AVX2``) apply to OpenVINO too, whose kernels follow the cap but whose default precision
    does not (it chose bf16 and then had no bf16 kernel for the capped ISA)."""
    from clapkit.models.fused import native_bf16

    return "bf16" if native_bf16() else "f32"


def _onnxruntime(traced, path: AudioPath, example: torch.Tensor, threads: int, calibration: torch.Tensor | None):
    import onnxruntime as ort

    with tempfile.TemporaryDirectory(prefix="clapkit-onnx-") as tmp:
        model = Path(tmp) / "audio.onnx"
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(path, (example,), str(model), dynamo=False, input_names=["features"],
                              output_names=["embedding"], dynamic_axes={"features": {0: "batch"},
                                                                        "embedding": {0: "batch"}}, opset_version=17)
        if calibration is not None:
            model = _quantize_static(model, Path(tmp), calibration, len(example))
        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
        options.log_severity_level = 3
        session = ort.InferenceSession(model.read_bytes(), options, providers=["CPUExecutionProvider"])
    return lambda array: session.run(None, {"features": array})[0]


def _quantize_static(model: Path, tmp: Path, calibration: torch.Tensor, batch: int) -> Path:
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    step = batch
    whole = calibration if len(calibration) % step == 0 else torch.cat([calibration, calibration[:step]])
    batches = [{"features": np.ascontiguousarray(whole[i:i + step].float().numpy())}
               for i in range(0, len(whole) - step + 1, step)]

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.batches = iter(batches)

        def get_next(self):
            return next(self.batches, None)

    import onnx

    prepared, quantised = tmp / "prepared.onnx", tmp / "int8.onnx"
    ops = ["Conv", "MatMul", "Gemm"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quant_pre_process(str(model), str(prepared), skip_symbolic_shape=True)
        # the first layer stays fp32: quantising the log-mel input itself to 8 bits costs the most (default model:
        # cosine to fp32 0.990 -> 0.996) and that layer is cheap (one input channel)
        first = next(n.name for n in onnx.load(str(prepared)).graph.node if n.op_type in ops)
        quantize_static(str(prepared), str(quantised), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, op_types_to_quantize=ops,
                        nodes_to_exclude=[first])
    return quantised
