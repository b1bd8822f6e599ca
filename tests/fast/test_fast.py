"""clapkit.fast: every backend stays close to fp32, keeps shapes, is batch-independent, leaves the original alone, and
refuses what it cannot do (a missing runtime names the pip extra)."""

from __future__ import annotations

import builtins

import numpy as np
import pytest
import torch
from torch import nn

from clapkit import fast as fast_module
from clapkit.errors import ConfigError
from clapkit.fast import accelerate, quantizable
from clapkit.inference import ClapPipeline
from clapkit.models.clap import ClapNetwork
from clapkit.tokenizers import load_tokenizer
from tests.small_models import small_config

CAPTIONS = ["a dog barks", "rain falls on a metal roof in the night", "a man speaks"]
# the backends meant for each family (int8 static on a transformer is off: softmax/GELU ranges, docs/performance.md)
HTSAT_BACKENDS = ["bf16", "int8", "openvino", "onnxruntime"]
CNN_BACKENDS = ["bf16", "openvino", "onnxruntime", "onnxruntime-int8"]


@pytest.fixture(scope="module")
def model() -> ClapPipeline:
    config = small_config(htsat_embed_dim=32, embed_dim=256, depths=(2, 2, 2, 2), num_heads=(2, 4, 8, 16))
    torch.manual_seed(0)
    return ClapPipeline(ClapNetwork(config), config, load_tokenizer(config.text, None))


@pytest.fixture(scope="module")
def cnn() -> ClapPipeline:
    """The default model's architecture (aiSFX CNN8, linear head, MiniLM-sized text) with random weights."""
    import json

    from clapkit.config import ModelConfig
    from clapkit.default_model import default_model_files

    config = ModelConfig.from_dict(json.loads(default_model_files()[0].read_text()))
    torch.manual_seed(0)
    module = ClapNetwork(config)
    for bn in (m for m in module.audio_tower.modules() if isinstance(m, nn.BatchNorm2d)):  # trained-like statistics
        bn.running_var.uniform_(0.5, 2.0)
        bn.running_mean.uniform_(-0.2, 0.2)
    return ClapPipeline(module, config, load_tokenizer(config.text, None))


def waves(model: ClapPipeline, count: int = 4, seconds: float | None = None) -> np.ndarray:
    rate = model.sample_rate
    rng = np.random.default_rng(0)
    t = np.arange(int(rate * seconds) if seconds else model.config.frontend.clip_samples) / rate
    tones = np.sin(2 * np.pi * rng.uniform(100, 3000, (count, 1)) * t)
    return (0.05 * rng.standard_normal(tones.shape) + 0.3 * tones).astype(np.float32)


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


_BUILT: dict = {}


def built(model: ClapPipeline, backend: str) -> ClapPipeline:
    """``accelerate(model, backend)``, built once per test module (the runtimes take seconds to trace and compile)."""
    key = (id(model), backend)
    if key not in _BUILT:
        _BUILT[key] = accelerate(model, backend)
    return _BUILT[key]


def check_backend(model: ClapPipeline, backend: str, threshold: float) -> None:
    clips = waves(model)
    fast = built(model, backend)
    assert fast.acceleration == backend
    reference = model.embed_audio(clips, sample_rate=model.sample_rate)
    batched = fast.embed_audio(clips, sample_rate=model.sample_rate, batch_size=4)
    singles = fast.embed_audio(clips, sample_rate=model.sample_rate, batch_size=1)
    assert batched.shape == reference.shape and batched.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(batched, axis=1), 1.0, atol=1e-5)
    assert cosine(reference, batched).min() >= threshold
    assert cosine(batched, singles).min() >= 0.999  # a clip's embedding hardly depends on its batch mates
    np.testing.assert_array_equal(fast.embed_text(CAPTIONS), model.embed_text(CAPTIONS))  # text stays fp32


@pytest.mark.parametrize("backend", HTSAT_BACKENDS)
def test_htsat_backends_close_to_fp32(model, backend):
    check_backend(model, backend, 0.995)


@pytest.mark.parametrize("backend", CNN_BACKENDS)
def test_cnn_backends_close_to_fp32(cnn, backend):
    check_backend(cnn, backend, 0.99 if backend == "onnxruntime-int8" else 0.999)


def test_bf16_backend_runs_fused_bf16_linears_and_batched_attention(model, monkeypatch):
    """Where the CPU has native bf16, the bf16 backend's HTSAT linears go through oneDNN in bf16 (packed weights, GELU
    and residual fused; elsewhere they are plain bf16 linears, so turning oneDNN off changes nothing); its window
    attention goes through bmm_attention on every CPU, and with that off too it takes the autocast path (SDPA). All
    stay close to fp32."""
    from clapkit.models import fused, swin

    fast = built(model, "bf16")
    qkv = next(m for m in fast.module.audio_tower.modules() if isinstance(m, swin.WindowAttention)).qkv
    assert qkv.weight.dtype == torch.bfloat16
    native = fused.bf16_enabled()
    with torch.no_grad():
        assert fused.uses_onednn(qkv, torch.zeros(3, qkv.in_features, dtype=torch.bfloat16)) is native
    clips = waves(model)
    reference = model.embed_audio(clips, sample_rate=model.sample_rate)
    fused_path = fast.embed_audio(clips, sample_rate=model.sample_rate)
    monkeypatch.setattr(fused, "BF16", False)
    plain_linears = fast.embed_audio(clips, sample_rate=model.sample_rate)
    monkeypatch.setattr(swin, "BMM_ATTENTION", False)
    autocast_path = fast.embed_audio(clips, sample_rate=model.sample_rate)
    assert cosine(reference, fused_path).min() >= 0.999 and cosine(reference, autocast_path).min() >= 0.999
    assert bool(np.abs(fused_path - plain_linears).max() > 0) is native
    assert np.abs(plain_linears - autocast_path).max() > 0  # bmm_attention rounds the logits to bf16, SDPA does not


def test_runtime_backends_really_change_the_computation(cnn):
    clips = waves(cnn)
    reference = cnn.embed_audio(clips, sample_rate=cnn.sample_rate)
    for backend in ("bf16", "onnxruntime-int8"):
        assert np.abs(built(cnn, backend).embed_audio(clips, sample_rate=cnn.sample_rate) - reference).max() > 0


def test_runtime_falls_back_to_fp32_for_other_lengths(cnn):
    """The traced graph has the clip length of the model's front end; other feature sizes run the fp32 modules."""
    fast = built(cnn, "onnxruntime")
    features = torch.randn(2, 1, 40, cnn.config.audio.n_mels)
    np.testing.assert_allclose(fast.encode_audio(features).numpy(), cnn.encode_audio(features).numpy(), atol=1e-6)


@pytest.mark.parametrize("backend, package", [("openvino", "openvino"), ("onnxruntime", "onnxruntime"),
                                              ("onnxruntime-int8", "onnx")])
def test_missing_runtime_names_the_extra(model, monkeypatch, backend, package):
    real_import = builtins.__import__

    def refuse(name, *args, **kwargs):
        if name.split(".")[0] == package:
            raise ImportError(f"No module named {name!r}", name=name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", refuse)
    with pytest.raises(ConfigError, match=rf"{backend!r} fast backend needs the {package} package.*clapkit\[fast\]"):
        accelerate(model, backend)


def test_auto_picks_bf16_only_with_native_bf16(model, monkeypatch):
    monkeypatch.setattr(fast_module, "native_bf16", lambda: True)
    assert accelerate(model).acceleration == "bf16"
    monkeypatch.setattr(fast_module, "native_bf16", lambda: False)
    assert accelerate(model).acceleration == "int8"


def test_runtimes_refuse_fusion_models_and_text():
    import clapkit

    fusion = clapkit.load("laion-htsat-tiny-fusion", weights="random")
    with pytest.raises(ConfigError, match="fusion model.*'bf16' or 'int8'"):
        accelerate(fusion, "openvino")
    with pytest.raises(ConfigError, match="audio tower only"):
        accelerate(fusion, "onnxruntime", towers=("audio", "text"))
    assert accelerate(fusion, "bf16").acceleration == "bf16"


@pytest.mark.parametrize("min_features", [1, 192])
def test_int8_audio_close_to_fp32(model, min_features):
    clips = waves(model)
    fast = accelerate(model, "int8", min_features=min_features)
    reference = model.embed_audio(clips, sample_rate=model.sample_rate)
    ours = fast.embed_audio(clips, sample_rate=model.sample_rate)
    assert cosine(reference, ours).min() >= 0.995
    assert np.abs(ours - reference).max() > 0  # really quantised, not a copy


def test_only_eligible_linears_are_quantised_and_original_untouched(model):
    before = {k: v.clone() for k, v in model.module.state_dict().items()}
    fast = accelerate(model, "int8", min_features=192)
    tower = fast.module.audio_tower
    quantised = {n for n, m in tower.named_modules() if isinstance(m, torch.ao.nn.quantized.dynamic.Linear)}
    assert quantised == quantizable(model.module.audio_tower, 192) and quantised
    assert all(type(m) is nn.Linear for m in fast.module.text_tower.modules() if isinstance(m, nn.Linear))
    assert not any(isinstance(m, torch.ao.nn.quantized.dynamic.Linear) for m in model.module.modules())
    accelerate(model, "bf16")
    for key, value in model.module.state_dict().items():
        assert torch.equal(value, before[key])
    assert type(model.module.audio_tower).__name__ == "HTSAT"


@pytest.mark.parametrize("backend", ["int8", "bf16", "onnxruntime"])
def test_accelerated_model_refuses_to_save(model, tmp_path, backend):
    with pytest.raises(ConfigError, match="cannot be saved"):
        built(model, backend).save(tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("backend", ["int8", "bf16"])
def test_text_towers_when_asked(model, backend):
    both = accelerate(model, backend, towers=("audio", "text"), min_features=1).embed_text(CAPTIONS)
    assert cosine(model.embed_text(CAPTIONS), both).min() >= 0.99


def test_int8_deterministic(model):
    fast = accelerate(model, "int8")
    clips = waves(model)
    np.testing.assert_array_equal(fast.embed_audio(clips, sample_rate=model.sample_rate),
                                  fast.embed_audio(clips, sample_rate=model.sample_rate))


@pytest.mark.parametrize("kwargs, message", [({"backend": "int4"}, "unknown acceleration backend 'int4'"),
                                             ({"mode": "int4"}, "unknown acceleration backend 'int4'"),
                                             ({"towers": ("vision",)}, "towers must be"),
                                             ({"towers": ()}, "towers must be")])
def test_bad_arguments_raise_clear_errors(model, kwargs, message):
    with pytest.raises(ConfigError, match=message):
        accelerate(model, **kwargs)


def test_load_and_cli_take_fast(tmp_path):
    import clapkit
    from clapkit.checkpoints import save_clapkit
    from clapkit.cli import build_parser

    config = small_config()
    torch.manual_seed(0)
    directory = save_clapkit(tmp_path / "m", config, ClapNetwork(config).state_dict())
    plain, fast = clapkit.load(directory), clapkit.load(directory, fast="int8")
    assert not any(isinstance(m, nn.Linear) and type(m) is not nn.Linear for m in plain.module.modules())
    assert type(fast.module.audio_tower) is type(plain.module.audio_tower)
    quantised = [m for m in fast.module.audio_tower.modules() if "quantized" in type(m).__module__]
    assert quantised
    assert clapkit.load(directory, fast="bf16").acceleration == "bf16"
    with pytest.raises(ConfigError):
        clapkit.load(directory, fast="int3")
    from clapkit.commands import FAST_BACKENDS

    assert FAST_BACKENDS == fast_module.BACKENDS
    for backend in ("int8", "auto", "bf16", "openvino"):
        args = build_parser().parse_args(["embed", "x.wav", "--fast", backend, "--out", "o"])
        assert args.fast == backend and args.model == "default"


def test_openvino_telemetry_declined():
    """Importing openvino through clapkit must not turn on its usage telemetry (network calls as a side effect)."""
    from clapkit.fast_runtimes import require

    require("openvino")
    from openvino_telemetry.utils.opt_in_checker import ConsentCheckResult, OptInChecker

    assert OptInChecker().check(enable_opt_in_dialog=False) == ConsentCheckResult.DECLINED
