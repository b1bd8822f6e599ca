"""An instruction-set cap (``ATEN_CPU_CAPABILITY=avx2``, ``ONEDNN_MAX_CPU_ISA=AVX2``: how docs/performance.md emulates
an AVX2 CPU on an AVX-512 one) makes clapkit behave as on an AVX2 CPU: no native bf16, so ``auto`` does not pick
``bf16``, the fused linears keep to fp32, and OpenVINO is told fp32 (its own default ignores the cap)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from clapkit import fast_runtimes
from clapkit.models import fused

SRC = Path(__file__).resolve().parents[2] / "src"


@pytest.fixture
def capability(monkeypatch):
    """Set what ``torch.backends.cpu.get_cpu_capability()`` reports; the cached bf16 check is recomputed around it."""

    def set_to(value: str) -> None:
        monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: value)
        fused.native_bf16.cache_clear()

    yield set_to
    monkeypatch.undo()
    fused.native_bf16.cache_clear()


def test_aten_cap_below_avx512_means_no_native_bf16(capability, monkeypatch):
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: True, raising=False)
    capability("AVX512")
    assert fused.native_bf16() is fused._has_onednn_linear()
    capability("AVX2")
    assert fused.native_bf16() is False
    assert fused.bf16_enabled() is False  # the automatic choice of the fused bf16 linears follows
    assert fast_runtimes.openvino_precision() == "f32"


def test_onednn_without_bf16_means_no_native_bf16(capability, monkeypatch):
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: False, raising=False)
    capability("AVX512")
    assert fused.native_bf16() is False
    assert fast_runtimes.openvino_precision() == "f32"


def test_real_isa_cap_in_a_fresh_process():
    """The environment variables themselves (read when torch loads), not a patched function."""
    env = dict(os.environ, ATEN_CPU_CAPABILITY="avx2", ONEDNN_MAX_CPU_ISA="AVX2", PYTHONPATH=str(SRC))
    code = ("import torch; from clapkit.fast import native_bf16; from clapkit.fast_runtimes import openvino_precision; "
            "print(torch.backends.cpu.get_cpu_capability(), native_bf16(), openvino_precision())")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120, check=True)
    capability, native, precision = out.stdout.split()
    assert capability in ("AVX2", "DEFAULT") and native == "False" and precision == "f32"


def test_auto_under_an_avx2_cap_picks_int8(capability, monkeypatch):
    """The whole chain: ATen capped to AVX2 -> ``fused.native_bf16`` -> ``clapkit.fast.choose_backend``."""
    from clapkit.fast import accelerate
    from clapkit.inference import ClapPipeline
    from clapkit.models.clap import ClapNetwork
    from clapkit.tokenizers import load_tokenizer
    from tests.small_models import small_config

    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: True, raising=False)
    config = small_config(htsat_embed_dim=32, embed_dim=256, depths=(2, 2, 2, 2), num_heads=(2, 4, 8, 16))
    torch.manual_seed(0)
    model = ClapPipeline(ClapNetwork(config), config, load_tokenizer(config.text, None))
    capability("AVX512")
    assert accelerate(model).acceleration == ("bf16" if fused._has_onednn_linear() else "int8")
    capability("AVX2")
    assert accelerate(model).acceleration == "int8"
