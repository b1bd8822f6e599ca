"""Projection heads: tower output -> joint embedding space."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from clapkit.config import HeadConfig
from clapkit.errors import ConfigError


class LaionProjection(nn.Sequential):
    """LAION-CLAP's 2-layer MLP: Linear -> ReLU (or GELU) -> Linear. Keys ``0.*`` and ``2.*`` as in LAION."""

    def __init__(self, in_dim: int, out_dim: int, activation: str = "relu"):
        act = {"relu": nn.ReLU(), "gelu": nn.GELU()}.get(activation)
        if act is None:
            raise ConfigError(f"LAION projection activation must be 'relu' or 'gelu', got {activation!r}")
        super().__init__(nn.Linear(in_dim, out_dim), act, nn.Linear(out_dim, out_dim))


class MsProjection(nn.Module):
    """MS-CLAP's projection: y = LayerNorm(h + Dropout(W2 GELU(h))), h = W1 x (both linears without bias)."""

    def __init__(self, in_dim: int, out_dim: int, dropout: float = 0.5):
        super().__init__()
        self.linear1 = nn.Linear(in_dim, out_dim, bias=False)
        self.linear2 = nn.Linear(out_dim, out_dim, bias=False)
        self.layer_norm = nn.LayerNorm(out_dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden = self.linear1(x)
        return self.layer_norm(hidden + self.drop(self.linear2(F.gelu(hidden))))


class CentredProjection(nn.Module):
    """``normalize(inner(x)) - centre``: a head whose output is moved away from a stored mean embedding (hubness
    correction: the direction every embedding shares is taken out before cosine similarity)."""

    def __init__(self, inner: nn.Module, out_dim: int):
        super().__init__()
        self.inner = inner
        self.register_buffer("centre", torch.zeros(out_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.inner(x), dim=-1) - self.centre


def build_projection(config: HeadConfig, in_dim: int, out_dim: int) -> nn.Module:
    if config.kind == "laion_mlp":
        head: nn.Module = LaionProjection(in_dim, out_dim, config.activation)
    elif config.kind == "ms":
        head = MsProjection(in_dim, out_dim, config.dropout)
    elif config.kind == "linear":
        head = nn.Linear(in_dim, out_dim)
    elif config.kind == "identity":
        if in_dim != out_dim:
            raise ConfigError(f"an identity projection head needs the tower width ({in_dim}) to equal the joint "
                              f"dimension ({out_dim})")
        head = nn.Identity()
    else:
        raise ConfigError(f"unknown projection head kind {config.kind!r}; known: 'laion_mlp', 'ms', 'linear', "
                          "'identity'")
    return CentredProjection(head, out_dim) if config.centre else head
