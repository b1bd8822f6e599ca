"""Swin-transformer stages for HTSAT, laid out like LAION-CLAP's ``htsat.py`` (same state-dict keys and buffers).

Speed: every operation in a Swin block except the attention itself acts token by token, so a block does not need its
tokens in image order. Here each block keeps the residual stream in the order of its own (possibly shifted) windows:
a window is 64 consecutive tokens, attention is ``scaled_dot_product_attention`` on a free view (in bf16 without
autograd: two batched products, ``bmm_attention``, faster there than SDPA's CPU kernel), and the cyclic shift,
window partition, window reverse and reverse shift of the reference become one precomputed gather applied to the
block's output (which also does the 2x2 regrouping of the following patch merging). Blocks run over chunks of whole
windows (``chunk_tokens()`` tokens at most) so the MLP's 4x-wide activations stay in cache: 1024 tokens on one thread
(~3 % faster than 4096 there), 4096 (one clip at stage 1) with more threads, where every op is a parallel region and
fewer, larger ones suffer much less from OpenMP barrier waits when the machine is busy.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from clapkit.models.fused import capturing, linear, tensor_key

CHUNK_TOKENS: int | None = None  # None: automatic, see chunk_tokens()
CACHE_BIAS = True  # reuse the attention bias without autograd (False: rebuild per call, for the speed ablation)
BMM_ATTENTION = True  # bf16 without autograd: bmm_attention instead of SDPA (~1.3x per call on 64-token windows)
MASKED = -100.0  # LAION fills attention logits across shifted-window regions with -100 (not -inf)


def chunk_tokens() -> int:
    """Tokens per block chunk: ``CHUNK_TOKENS`` if set, else 1024 on one thread and 4096 on more."""
    if CHUNK_TOKENS is not None:
        return CHUNK_TOKENS
    return 1024 if torch.get_num_threads() == 1 else 4096


def window_order(height: int, width: int, window_size: int, shift_size: int) -> Tensor:
    """Image-order token index at each position of the (shifted) window order, the order of the reference's
    ``window_partition(torch.roll(x, (-shift, -shift)))``: windows row by row, tokens row by row inside a window."""
    index = torch.arange(height * width).view(height, width)
    if shift_size:
        index = torch.roll(index, shifts=(-shift_size, -shift_size), dims=(0, 1))
    rows, cols = height // window_size, width // window_size
    return index.view(rows, window_size, cols, window_size).permute(0, 2, 1, 3).reshape(-1)


def merge_order(height: int, width: int, merged_order: Tensor) -> Tensor:
    """Image-order index of the 2x2 neighbours ``[(0,0), (1,0), (0,1), (1,1)]`` (the reference's ``x0..x3``) of each
    merged token, merged tokens in ``merged_order`` (image order of the half-size grid); shape (4 * merged tokens,)."""
    row, col = merged_order // (width // 2), merged_order % (width // 2)
    offsets = torch.tensor([[0, 0], [1, 0], [0, 1], [1, 1]])
    rows = 2 * row[:, None] + offsets[:, 0]
    cols = 2 * col[:, None] + offsets[:, 1]
    return (rows * width + cols).reshape(-1)


def relative_position_index(window_size: int) -> Tensor:
    """(N, N) index into the (2w-1)^2 relative-position table for each query/key pair of a window, N = w * w."""
    coords = torch.stack(torch.meshgrid(torch.arange(window_size), torch.arange(window_size), indexing="ij")).flatten(1)
    relative = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (window_size - 1)
    return relative[:, :, 0] * (2 * window_size - 1) + relative[:, :, 1]


def shifted_window_mask(height: int, width: int, window_size: int, shift_size: int) -> Tensor:
    """(windows, N, N) additive mask: 0 inside a region, -100 between the regions a cyclic shift brings together."""
    regions = torch.zeros(height, width)
    bounds = (slice(0, -window_size), slice(-window_size, -shift_size), slice(-shift_size, None))
    label = 0
    for rows in bounds:
        for cols in bounds:
            regions[rows, cols] = label
            label += 1
    windows = regions.reshape(-1)[window_order(height, width, window_size, 0)].view(-1, window_size * window_size)
    differs = windows[:, None, :] != windows[:, :, None]
    return torch.zeros(differs.shape).masked_fill(differs, MASKED)


def path_scale(clips: int, windows_per_clip: int, rate: float, training: bool, like: Tensor) -> Tensor | None:
    """Stochastic depth per clip, as (clips * windows, 1, 1) factors 0 or 1 / (1 - rate); ``None`` when inactive."""
    if rate == 0.0 or not training:
        return None
    keep = torch.empty(clips, dtype=like.dtype, device=like.device).bernoulli_(1.0 - rate) / (1.0 - rate)
    return keep.repeat_interleave(windows_per_clip).view(-1, 1, 1)


def bmm_attention(qkv: Tensor, bias: Tensor) -> Tensor:
    """Softmax attention of ``qkv`` (windows, N, 3, heads, width) with additive ``bias`` (1 or windows, heads, N, N)
    as two batched matrix products on contiguous q/k/v -> (windows, N, heads, width). In bf16 the logits are rounded
    to bf16 before the softmax (SDPA keeps them in fp32); used where that measured faster (``BMM_ATTENTION``)."""
    count, tokens, _, heads, width = qkv.shape
    query, key, value = qkv.permute(2, 0, 3, 1, 4).contiguous().unbind(0)
    if bias.shape[0] == 1:
        logits = torch.matmul(query, key.transpose(-1, -2)).mul_(width**-0.5).add_(bias)
    else:
        logits = torch.baddbmm(bias.reshape(-1, tokens, tokens), query.reshape(-1, tokens, width),
                               key.reshape(-1, tokens, width).transpose(1, 2), alpha=width**-0.5)
    return torch.matmul(torch.softmax(logits.view(count, heads, tokens, tokens), -1), value).transpose(1, 2)


class WindowAttention(nn.Module):
    """Multi-head self-attention inside windows of N tokens with a learned relative-position bias."""

    def __init__(self, dim: int, window_size: int, num_heads: int):
        super().__init__()
        self.dim = dim
        self.window_size = window_size
        self.num_heads = num_heads
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window_size - 1) ** 2, num_heads))
        self.register_buffer("relative_position_index", relative_position_index(window_size))
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)

    def position_bias(self) -> Tensor:
        """(heads, N, N) relative-position bias."""
        tokens = self.window_size**2
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)]
        return bias.view(tokens, tokens, self.num_heads).permute(2, 0, 1)

    def forward(self, windows: Tensor, bias: Tensor, residual: Tensor | None = None) -> Tensor:
        """windows: (windows, N, C); bias: additive logits bias broadcastable to (windows, heads, N, N); ``residual``
        (windows, N, C), if given, is added to the output (fused into the projection where ``fused.linear`` can)."""
        count, tokens, dim = windows.shape
        qkv = linear(self.qkv, windows).view(count, tokens, 3, self.num_heads, dim // self.num_heads)
        if BMM_ATTENTION and qkv.dtype == torch.bfloat16 and not torch.is_grad_enabled() and not capturing():
            out = bmm_attention(qkv, bias)
        else:
            query, key, value = qkv.permute(2, 0, 3, 1, 4).unbind(0)
            out = F.scaled_dot_product_attention(query, key, value, attn_mask=bias).transpose(1, 2)
        return linear(self.proj, out.reshape(count, tokens, dim), residual=residual)


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor, residual: Tensor | None = None) -> Tensor:
        """fc1, exact GELU, fc2 (+ ``residual``), the epilogues fused where ``fused.linear`` can."""
        return linear(self.fc2, linear(self.fc1, x, gelu=True), residual=residual)


class SwinBlock(nn.Module):
    """Pre-norm (shifted-)window attention + MLP block over tokens kept in this block's window order.

    ``attn_mask`` (shifted blocks only) is a persistent buffer as in LAION's checkpoints. ``output_order`` (not saved)
    is the gather that puts the output into the order the next block or patch merging wants; ``None`` keeps it.
    """

    def __init__(self, dim: int, resolution: tuple[int, int], num_heads: int, window_size: int, shift_size: int,
                 mlp_ratio: float = 4.0, drop_path_rate: float = 0.0):
        super().__init__()
        if min(resolution) <= window_size:  # one window covers the grid: no shift
            window_size, shift_size = min(resolution), 0
        self.resolution = resolution
        self.window_size = window_size
        self.shift_size = shift_size
        self.drop_path_rate = drop_path_rate
        mask = shifted_window_mask(*resolution, window_size, shift_size) if shift_size else None
        self.register_buffer("attn_mask", mask)
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, window_size, num_heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.register_buffer("output_order", None, persistent=False)
        self.register_buffer("output_position", None, persistent=False)  # inverse of output_order
        self._bias_cache: tuple | None = None  # (key, bias) of attention_bias without autograd

    def set_output_order(self, order: Tensor | None) -> None:
        device = self.attn.relative_position_index.device
        self.output_order = None if order is None else order.to(device)
        self.output_position = None if order is None else torch.argsort(order).to(device)

    def token_order(self) -> Tensor:
        return window_order(*self.resolution, self.window_size, self.shift_size)

    def attention_bias(self, windows_per_chunk: int, dtype: torch.dtype = torch.float32) -> Tensor:
        """Position bias plus shift mask in ``dtype``, (1, heads, N, N) unshifted, else the per-window masks tiled so
        that any run of ``windows_per_chunk`` windows starting at window ``i < windows`` is the slice ``[i : i + run]``.

        Without autograd the result is kept and reused until the bias table or the mask changes (in place or
        replaced): building it is a gather, an add and a tiling copy of up to (64, heads, N, N) per call."""
        table, mask = self.attn.relative_position_bias_table, self.attn_mask
        keys = (tensor_key(table), None if mask is None else tensor_key(mask))
        if torch.is_grad_enabled() or not CACHE_BIAS or keys[0] is None or (mask is not None and keys[1] is None):
            return self._attention_bias(windows_per_chunk, dtype)  # inference tensors (no version counter): not cached
        key = (windows_per_chunk, dtype, *keys)
        if self._bias_cache is None or self._bias_cache[0] != key:
            self._bias_cache = (key, self._attention_bias(windows_per_chunk, dtype))
        return self._bias_cache[1]

    def _attention_bias(self, windows_per_chunk: int, dtype: torch.dtype) -> Tensor:
        bias = self.attn.position_bias()
        if self.attn_mask is None:
            return bias.unsqueeze(0).to(dtype).contiguous()
        windows = self.attn_mask.shape[0]
        if windows % windows_per_chunk == 0:
            tiles = 1
        elif windows_per_chunk % windows == 0:
            tiles = windows_per_chunk // windows
        else:
            tiles = 1 + -(-windows_per_chunk // windows)
        masked = (bias.unsqueeze(0) + self.attn_mask.unsqueeze(1)).to(dtype)  # summed in fp32, then rounded
        return masked if tiles == 1 else masked.repeat(tiles, 1, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        """x: (B, L, C) in this block's window order -> (B, L, C) in ``output_order``.

        Runs over chunks of at most ``chunk_tokens()`` tokens (whole windows). Without autograd each chunk is scattered
        straight to its place in the output order; with autograd the chunks are concatenated and gathered."""
        batch, length, dim = x.shape
        tokens = self.window_size**2
        windows_per_clip = length // tokens
        windows = x.view(batch * windows_per_clip, tokens, dim)
        per_chunk = max(1, min(chunk_tokens() // tokens, windows.shape[0]))
        bias = self.attention_bias(per_chunk, x.dtype)
        attn_scale = path_scale(batch, windows_per_clip, self.drop_path_rate, self.training, x)
        mlp_scale = path_scale(batch, windows_per_clip, self.drop_path_rate, self.training, x)
        scatter = None
        if not torch.is_grad_enabled() and self.output_order is not None:
            scatter = (self.output_position + length * torch.arange(batch, device=x.device)[:, None]).view(-1)
            out = torch.empty(batch * length, dim, dtype=x.dtype, device=x.device)
        outputs = []
        for start in range(0, windows.shape[0], per_chunk):
            chunk = windows[start : start + per_chunk]
            count = chunk.shape[0]
            first = start % windows_per_clip
            chunk_bias = bias if bias.shape[0] == 1 else bias[first : first + count]
            if attn_scale is None:
                h = self.attn(self.norm1(chunk), chunk_bias, residual=chunk)
            else:
                h = (self.attn(self.norm1(chunk), chunk_bias) * attn_scale[start : start + count]).add_(chunk)
            if mlp_scale is None:
                y = self.mlp(self.norm2(h), residual=h)
            else:
                y = (self.mlp(self.norm2(h)) * mlp_scale[start : start + count]).add_(h)
            if scatter is not None:
                out.index_copy_(0, scatter[start * tokens : (start + count) * tokens], y.view(-1, dim))
            else:
                outputs.append(y)
        if scatter is not None:
            return out.view(batch, length, dim)
        y = (outputs[0] if len(outputs) == 1 else torch.cat(outputs)).view(batch, length, dim)
        return y if self.output_order is None else y.index_select(1, self.output_order)


class PatchMerging(nn.Module):
    """2x2 patch merging: (B, L/4, 4C) tokens already grouped by the previous block's gather -> (B, L/4, 2C)."""

    def __init__(self, dim: int):
        super().__init__()
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)
        self.norm = nn.LayerNorm(4 * dim)

    def forward(self, x: Tensor) -> Tensor:
        batch, length, dim = x.shape
        return linear(self.reduction, self.norm(x.view(batch, length // 4, 4 * dim)))


class SwinStage(nn.Module):
    """A stage of Swin blocks (alternating plain and shifted windows) with optional patch merging (LAION's
    ``BasicLayer``). ``next_order``: image-order index of the next stage's first-block token order (merged grid)."""

    def __init__(self, dim: int, resolution: tuple[int, int], depth: int, num_heads: int, window_size: int,
                 mlp_ratio: float = 4.0, drop_path_rates: list[float] | None = None, downsample: bool = False):
        super().__init__()
        rates = drop_path_rates or [0.0] * depth
        self.resolution = resolution
        self.blocks = nn.ModuleList(
            SwinBlock(dim, resolution, num_heads, window_size, 0 if i % 2 == 0 else window_size // 2, mlp_ratio,
                      rates[i])
            for i in range(depth)
        )
        self.downsample = PatchMerging(dim) if downsample else None

    def input_order(self) -> Tensor:
        return self.blocks[0].token_order()

    def link(self, next_order: Tensor | None) -> None:
        """Precompute each block's output gather; ``next_order`` is the next stage's ``input_order()``."""
        orders = [block.token_order() for block in self.blocks]
        for block, order, following in zip(self.blocks, orders, orders[1:] + [None], strict=True):
            position = torch.argsort(order)  # where each image-order token sits in this block's output
            if following is not None:
                gather = None if torch.equal(order, following) else position[following]
            elif self.downsample is not None:
                if next_order is None:
                    raise ValueError("a stage with patch merging needs the next stage's token order")
                gather = position[merge_order(*self.resolution, next_order)]
            else:
                gather = None
            block.set_output_order(gather)

    def forward(self, x: Tensor) -> Tensor:
        for block in self.blocks:
            x = block(x)
        return x if self.downsample is None else self.downsample(x)
