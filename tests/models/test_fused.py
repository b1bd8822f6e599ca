"""clapkit.models.fused: oneDNN linears with fused GELU / residual epilogues equal the plain path; when they are (not)
used; Swin blocks with fused epilogues and cached attention bias equal the unfused eager block on masked windows."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from clapkit.models import fused, swin
from clapkit.models.swin import SwinBlock


@pytest.fixture
def onednn(monkeypatch):
    """Force the oneDNN path on (the CPU builds of torch this project runs on ship oneDNN)."""
    monkeypatch.setattr(fused, "ONEDNN", True)
    assert fused.onednn_enabled(), "torch without oneDNN (mkldnn): the fused path cannot be exercised"


def random_linear(inputs: int, outputs: int, seed: int = 0) -> torch.nn.Linear:
    torch.manual_seed(seed)
    layer = torch.nn.Linear(inputs, outputs)
    torch.nn.init.normal_(layer.bias, std=0.5)
    return layer


@pytest.mark.parametrize("epilogue", ["none", "gelu", "residual"])
def test_onednn_linear_equals_plain(onednn, epilogue: str) -> None:
    layer = random_linear(96, 192)
    x = torch.randn(8, 64, 96, generator=torch.Generator().manual_seed(1))
    residual = torch.randn(8, 64, 192, generator=torch.Generator().manual_seed(2))
    expected = F.linear(x, layer.weight, layer.bias)
    expected = F.gelu(expected) if epilogue == "gelu" else expected + residual if epilogue == "residual" else expected
    with torch.inference_mode():
        assert fused.uses_onednn(layer, x)
        out = fused.linear(layer, x, gelu=epilogue == "gelu", residual=residual if epilogue == "residual" else None)
    assert out.shape == expected.shape
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("epilogue", ["none", "gelu", "residual"])
def test_separate_epilogues_equal_fused(onednn, monkeypatch, epilogue: str) -> None:
    layer = random_linear(96, 192)
    x = torch.randn(2, 64, 96, generator=torch.Generator().manual_seed(1))
    residual = torch.randn(2, 64, 192, generator=torch.Generator().manual_seed(2))
    extra = {"gelu": epilogue == "gelu", "residual": residual if epilogue == "residual" else None}
    with torch.inference_mode():
        fused_out = fused.linear(layer, x, **extra)
        monkeypatch.setattr(fused, "EPILOGUES", False)
        separate = fused.linear(layer, x, **extra)
    torch.testing.assert_close(separate, fused_out, atol=1e-5, rtol=1e-5)


def test_autograd_takes_the_plain_path(onednn) -> None:
    """oneDNN's op has no autograd formula: with gradients recorded the ordinary linear runs, gradients exact."""
    layer = random_linear(48, 96)
    x = torch.randn(4, 16, 48, generator=torch.Generator().manual_seed(3), requires_grad=True)
    assert not fused.uses_onednn(layer, x)
    fused.linear(layer, x, gelu=True).pow(2).sum().backward()
    ours = [t.grad.clone() for t in (x, layer.weight, layer.bias)]
    for tensor in (x, layer.weight, layer.bias):
        tensor.grad = None
    F.gelu(F.linear(x, layer.weight, layer.bias)).pow(2).sum().backward()
    for a, b in zip(ours, (x.grad, layer.weight.grad, layer.bias.grad), strict=True):
        torch.testing.assert_close(a, b, atol=0, rtol=0)


def test_packed_weight_is_reused_until_the_weight_changes(onednn) -> None:
    layer = random_linear(64, 128)
    x = torch.randn(10, 64, generator=torch.Generator().manual_seed(6))
    with torch.inference_mode():
        first = fused.packed_weight(layer)
        assert fused.packed_weight(layer) is first
        before = fused.linear(layer, x)
    with torch.no_grad():
        layer.weight.mul_(-1.0)  # in place: the packed copy must follow
    with torch.inference_mode():
        assert fused.packed_weight(layer) is not first
        torch.testing.assert_close(fused.linear(layer, x), F.linear(x, layer.weight, layer.bias), atol=1e-5, rtol=1e-5)
    layer.weight = torch.nn.Parameter(torch.zeros(128, 64))  # replaced
    with torch.inference_mode():
        torch.testing.assert_close(fused.linear(layer, x), layer.bias.expand(10, 128), atol=0, rtol=0)
    assert not torch.equal(before, layer.bias.expand(10, 128))


def test_unpacked_weights_equal_packed(onednn, monkeypatch) -> None:
    layer = random_linear(96, 64)
    x = torch.randn(3, 50, 96, generator=torch.Generator().manual_seed(7))
    with torch.inference_mode():
        packed = fused.linear(layer, x, gelu=True)
        monkeypatch.setattr(fused, "PACK", False)
        assert fused.packed_weight(layer) is layer.weight
        torch.testing.assert_close(fused.linear(layer, x, gelu=True), packed, atol=1e-5, rtol=1e-5)


def test_fallbacks_take_the_plain_path(monkeypatch) -> None:
    layer = random_linear(32, 32)
    x = torch.randn(5, 32)
    monkeypatch.setattr(fused, "ONEDNN", False)
    assert not fused.uses_onednn(layer, x)
    with torch.inference_mode():
        torch.testing.assert_close(fused.linear(layer, x, gelu=True), F.gelu(layer(x)), atol=0, rtol=0)
    monkeypatch.setattr(fused, "ONEDNN", True)

    class Replaced(torch.nn.Linear):  # e.g. a quantised linear: not a plain nn.Linear
        def forward(self, x):
            return super().forward(x) * 2

    replaced = Replaced(32, 32)
    replaced.load_state_dict(layer.state_dict())
    assert not fused.uses_onednn(replaced, x)
    with torch.inference_mode():
        torch.testing.assert_close(fused.linear(replaced, x), 2 * layer(x))
    assert not fused.uses_onednn(layer, x.double())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert not fused.uses_onednn(layer, x)
        assert fused.linear(layer, x).dtype == torch.bfloat16  # autocast applies as for any linear
    with pytest.raises(ValueError, match="either GELU or a residual"):
        fused.linear(layer, x, gelu=True, residual=x)


def test_graph_capture_sees_plain_linears(onednn) -> None:
    """torch.jit.trace (what the OpenVINO and ONNX Runtime backends of clapkit.fast record) gets portable ops."""
    block = random_block(4)
    x = torch.randn(1, 256, 64, generator=torch.Generator().manual_seed(8))
    with torch.no_grad():
        traced = torch.jit.trace(block, x, check_trace=False)
        eager = block(x)
    graph = str(traced.inlined_graph)
    assert "mkldnn" not in graph and "aten::linear" in graph
    with torch.no_grad():
        torch.testing.assert_close(traced(x), eager, atol=1e-5, rtol=1e-5)


def test_automatic_choice_follows_cpu_capability(monkeypatch) -> None:
    monkeypatch.setattr(fused, "ONEDNN", None)
    fused._onednn_pays.cache_clear()
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX2")
    assert not fused.onednn_enabled()
    fused._onednn_pays.cache_clear()
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX512")
    assert fused.onednn_enabled() == torch.backends.mkldnn.is_available()
    fused._onednn_pays.cache_clear()


def random_block(shift: int, seed: int = 0) -> SwinBlock:
    torch.manual_seed(seed)
    block = SwinBlock(64, (16, 16), num_heads=4, window_size=8, shift_size=shift).eval()
    with torch.no_grad():
        for parameter in block.parameters():
            parameter.normal_(0, 0.2)
        block.attn.relative_position_bias_table.normal_(0, 1.0)
    return block


@pytest.mark.parametrize("shift", [0, 4])
def test_swin_block_fused_equals_unfused(monkeypatch, shift: int) -> None:
    """The shifted block's windows carry the -100 region masks; both orders of evaluation must agree."""
    block = random_block(shift)
    x = torch.randn(3, 256, 64, generator=torch.Generator().manual_seed(5))
    monkeypatch.setattr(fused, "ONEDNN", False)
    with torch.no_grad():
        plain = block(x)
    with torch.enable_grad():
        graded = block(x)  # autograd path: no bias cache
    monkeypatch.setattr(fused, "ONEDNN", True)
    with torch.inference_mode():
        fast = block(x)
        again = block(x)  # second call reuses the cached bias
    torch.testing.assert_close(fast, plain, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(graded.detach(), plain, atol=1e-5, rtol=1e-5)
    assert torch.equal(fast, again)


def test_attention_bias_cache_follows_the_table() -> None:
    block = random_block(4)
    with torch.no_grad():
        first = block.attention_bias(4)
        assert block.attention_bias(4) is first
        assert block.attention_bias(2) is not first  # another tiling is another entry
        block.attn.relative_position_bias_table.add_(1.0)  # in place: version changes
        changed = block.attention_bias(4)
    torch.testing.assert_close(changed, first + 1.0)
    block.attn.relative_position_bias_table = torch.nn.Parameter(torch.zeros_like(
        block.attn.relative_position_bias_table))  # replaced: storage changes
    with torch.no_grad():
        zeroed = block.attention_bias(4)
    torch.testing.assert_close(zeroed, block.attn_mask.unsqueeze(1).expand_as(zeroed))
    assert block.attention_bias(4).requires_grad  # with autograd: built fresh, differentiable


def test_model_built_under_inference_mode(monkeypatch) -> None:
    """Parameters created under torch.inference_mode keep no version counter: nothing is cached, results are right."""
    monkeypatch.setattr(fused, "ONEDNN", True)
    x = torch.randn(2, 256, 64, generator=torch.Generator().manual_seed(9))
    reference = random_block(4)
    with torch.inference_mode():
        block = random_block(4)
        assert block.attn.qkv.weight.is_inference()
        assert fused.packed_weight(block.attn.qkv) is block.attn.qkv.weight
        assert block.attention_bias(4) is not block.attention_bias(4)
        out = block(x)
    monkeypatch.setattr(fused, "ONEDNN", False)
    with torch.no_grad():
        torch.testing.assert_close(out, reference(x), atol=1e-5, rtol=1e-5)


def test_attention_bias_cache_can_be_switched_off(monkeypatch) -> None:
    block = random_block(4)
    monkeypatch.setattr(swin, "CACHE_BIAS", False)
    with torch.no_grad():
        first = block.attention_bias(4)
        assert block.attention_bias(4) is not first


@pytest.mark.parametrize("act", ["gelu", "relu"])
def test_bert_encoder_fused_equals_plain(monkeypatch, act: str) -> None:
    from clapkit.models.bert import BertEncoder

    config = {"model_type": "roberta", "vocab_size": 120, "hidden_size": 64, "num_hidden_layers": 2,
              "num_attention_heads": 4, "intermediate_size": 128, "hidden_act": act, "max_position_embeddings": 40,
              "type_vocab_size": 1, "pad_token_id": 1, "layer_norm_eps": 1e-5, "initializer_range": 0.2,
              "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1}
    torch.manual_seed(0)
    model = BertEncoder(config).eval()
    ids = torch.randint(5, 120, (3, 17), generator=torch.Generator().manual_seed(10))
    mask = torch.ones_like(ids)
    mask[1, 9:] = 0
    outputs = []
    for mode in (True, False):
        monkeypatch.setattr(fused, "ONEDNN", mode)
        with torch.inference_mode():
            assert fused.uses_onednn(model.encoder.layer[0].intermediate.dense, torch.zeros(1, 64)) is mode
            outputs.append(model(ids, mask).last_hidden_state)
    torch.testing.assert_close(outputs[0], outputs[1], atol=1e-5, rtol=1e-5)


def bf16_linear(inputs: int, outputs: int, seed: int = 0) -> torch.nn.Linear:
    """A linear with bf16 weights and bias, as ``clapkit.fast``'s bf16 backend stores them."""
    return random_linear(inputs, outputs, seed).to(torch.bfloat16)


@pytest.mark.parametrize("epilogue", ["none", "gelu", "residual"])
def test_bf16_linear_close_to_fp32(monkeypatch, epilogue: str) -> None:
    """bf16 weights, fp32 input under bf16 autocast: one oneDNN bf16 call (product + epilogue) where the CPU has
    native bf16, else the autocast path; both give bf16 close to the fp32 result of the same rounded weights and
    input, and a bf16 input without autocast takes the same path."""
    layer = bf16_linear(96, 192)
    x = torch.randn(8, 64, 96, generator=torch.Generator().manual_seed(1))
    residual = torch.randn(8, 64, 192, generator=torch.Generator().manual_seed(2)).bfloat16()
    extra = {"gelu": epilogue == "gelu", "residual": residual if epilogue == "residual" else None}
    expected = F.linear(x.bfloat16().float(), layer.weight.float(), layer.bias.float())
    if epilogue == "gelu":
        expected = F.gelu(expected)
    elif epilogue == "residual":
        expected = expected + residual.float()
    native = fused.native_bf16()
    outputs = {}
    for mode in (True, False):
        monkeypatch.setattr(fused, "BF16", mode and native)
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
            assert fused.uses_onednn(layer, x) is (mode and native)
            outputs[mode] = fused.linear(layer, x, **extra)
        assert outputs[mode].dtype == torch.bfloat16 and outputs[mode].shape == expected.shape
        torch.testing.assert_close(outputs[mode].float(), expected, atol=2e-2, rtol=1e-2)
    monkeypatch.setattr(fused, "BF16", None)
    with torch.inference_mode():
        assert fused.uses_onednn(layer, x.bfloat16()) is native
        assert not fused.uses_onednn(layer, x)  # fp32 input, bf16 weights, no autocast: F.linear's own dtype error
        torch.testing.assert_close(fused.linear(layer, x.bfloat16(), **extra), outputs[True], atol=0, rtol=0)


def test_bf16_packed_weight_follows_the_weight(monkeypatch) -> None:
    layer = bf16_linear(64, 128)
    x = torch.randn(10, 64, generator=torch.Generator().manual_seed(6)).bfloat16()
    monkeypatch.setattr(fused, "BF16", fused.native_bf16())
    with torch.inference_mode():
        before = fused.linear(layer, x)
    with torch.no_grad():
        layer.weight.mul_(-1.0)
    with torch.inference_mode():
        after = fused.linear(layer, x)
    torch.testing.assert_close(after.float(), F.linear(x, layer.weight, layer.bias).float(), atol=2e-2, rtol=1e-2)
    assert not torch.allclose(before.float(), after.float(), atol=1e-1)


@pytest.mark.parametrize("shift", [0, 4])
def test_bmm_attention_equals_sdpa(shift: int) -> None:
    """fp32: the two batched products equal SDPA; bf16 (logits rounded to bf16): close to the fp32 result."""
    block = random_block(shift)
    with torch.no_grad():
        bias = block.attention_bias(4)
    qkv = torch.randn(4, 64, 3, 4, 16, generator=torch.Generator().manual_seed(11))
    query, key, value = qkv.permute(2, 0, 3, 1, 4).unbind(0)
    expected = F.scaled_dot_product_attention(query, key, value, attn_mask=bias).transpose(1, 2)
    torch.testing.assert_close(swin.bmm_attention(qkv, bias), expected, atol=1e-5, rtol=1e-5)
    half = swin.bmm_attention(qkv.bfloat16(), bias.bfloat16())
    assert half.dtype == torch.bfloat16
    torch.testing.assert_close(half.float(), expected, atol=5e-2, rtol=2e-2)


@pytest.mark.parametrize("shift", [0, 4])
def test_swin_block_in_bf16_close_to_fp32(monkeypatch, shift: int) -> None:
    """A block with bf16 linears under bf16 autocast, fused bf16 path (oneDNN linears, batched-product attention,
    bias cached in bf16) and the autocast path alike: close to the fp32 block; the fused path really ran where the
    CPU has native bf16 (results differ from the autocast path's)."""
    block = random_block(shift)
    x = torch.randn(2, 256, 64, generator=torch.Generator().manual_seed(12))
    with torch.no_grad():
        expected = block(x)
    for layer in block.modules():
        if type(layer) is torch.nn.Linear:
            layer.to(torch.bfloat16)
    outputs = []
    for mode in (True, False):
        monkeypatch.setattr(fused, "BF16", mode and fused.native_bf16())
        monkeypatch.setattr(swin, "BMM_ATTENTION", mode)
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
            outputs.append(block(x))
            assert block.attention_bias(4, torch.bfloat16).dtype == torch.bfloat16
        scale = expected.abs().max()
        assert (outputs[-1].float() - expected).abs().max() / scale < 3e-2
        assert F.cosine_similarity(outputs[-1].float().flatten(1), expected.flatten(1)).min() > 0.999
    assert not torch.equal(outputs[0], outputs[1])
