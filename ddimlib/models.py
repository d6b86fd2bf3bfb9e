"""Noise predictors eps_theta(x_t, t): an MLP for 2-D data and a small UNet for 8x8 and 28x28 images.

Both take x_t and t, a (B,) int64 tensor of the paper's timesteps 1..T, and return a tensor of
x_t's shape. The architecture follows DDPM's (Ho et al. 2020, Appendix B) in miniature:
sinusoidal timestep embedding, residual blocks with GroupNorm and SiLU, the embedding added in
every block, a down path and an up path joined by skip connections.

Each model is built from a typed config dataclass, which checkpoints store and check on load.
Taught in notebooks/03_training.ipynb.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn import functional as F

from ddimlib._validate import require_choice, require_int


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding of the paper's timesteps (Vaswani et al. 2017): (B,) -> (B, dim).

    Entry k < dim/2 is sin(t * w_k), entry dim/2 + k is cos(t * w_k), w_k = max_period^(-k/(dim/2)).
    """
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    angles = t.float()[:, None] * freqs[None]
    return torch.cat([angles.sin(), angles.cos()], dim=1)


@dataclass
class MLPConfig:
    """An MLP noise predictor for points in R^D."""

    data_dim: int = 2  # D, the dimension of a data point
    hidden: int = 128  # width of each hidden layer
    depth: int = 3  # number of hidden layers
    time_dim: int = 64  # size of the sinusoidal timestep embedding


class MLPEps(nn.Module):
    """eps_theta for 2-D data: [x_t, embed(t)] -> hidden layers with SiLU -> D outputs."""

    def __init__(self, config: MLPConfig):
        super().__init__()
        self.config = config
        layers, width = [], config.data_dim + config.time_dim
        for _ in range(config.depth):
            layers += [nn.Linear(width, config.hidden), nn.SiLU()]
            width = config.hidden
        layers.append(nn.Linear(width, config.data_dim))
        self.net = nn.Sequential(*layers)

    def forward(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        B, D = x_t.shape
        embedding = timestep_embedding(t, self.config.time_dim).to(x_t.dtype)
        return self.net(torch.cat([x_t, embedding], dim=1))


@dataclass
class UNetConfig:
    """A small UNet noise predictor for (B, C, H, W) images (8x8 digits, 28x28 MNIST).

    Sizes that do not halve evenly are handled on the way up by resizing to the skip's size."""

    channels: int = 1  # C, image channels
    base: int = 32  # channels at the first level
    mults: tuple[int, ...] = field(default=(1, 2, 2))  # channel multiplier per level; len - 1 downsamplings
    blocks: int = 1  # residual blocks per level on the down path
    groups: int = 8  # GroupNorm groups (must divide every level's channels)
    time_dim: int = 128  # size of the timestep embedding after its MLP
    dropout: float = 0.0  # dropout before each block's second convolution (DDPM used 0.1 on CIFAR-10)


class ResBlock(nn.Module):
    """GroupNorm -> SiLU -> conv, plus the timestep embedding, GroupNorm -> SiLU -> dropout -> conv, plus a skip."""

    def __init__(self, c_in: int, c_out: int, time_dim: int, groups: int, dropout: float = 0.0):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.norm1, self.conv1 = nn.GroupNorm(groups, c_in), nn.Conv2d(c_in, c_out, 3, padding=1)
        self.time = nn.Linear(time_dim, c_out)
        self.norm2, self.conv2 = nn.GroupNorm(groups, c_out), nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.time(emb)[:, :, None, None]
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return h + self.skip(x)


class UNetEps(nn.Module):
    """eps_theta for images: conv_in, a down path, a middle, an up path with skips, conv_out."""

    def __init__(self, config: UNetConfig):
        super().__init__()
        self.config = config
        c, tdim, groups = config.base, config.time_dim, config.groups
        self.time_mlp = nn.Sequential(nn.Linear(config.base, tdim), nn.SiLU(), nn.Linear(tdim, tdim))
        self.conv_in = nn.Conv2d(config.channels, c, 3, padding=1)
        widths = [config.base * m for m in config.mults]
        self.down, skips, c_prev = nn.ModuleList(), [c], c
        for level, width in enumerate(widths):
            for _ in range(config.blocks):
                self.down.append(ResBlock(c_prev, width, tdim, groups, config.dropout))
                c_prev = width
                skips.append(width)
            if level < len(widths) - 1:
                self.down.append(nn.Conv2d(width, width, 3, stride=2, padding=1))
                skips.append(width)
        self.mid = nn.ModuleList(
            [
                ResBlock(c_prev, c_prev, tdim, groups, config.dropout),
                ResBlock(c_prev, c_prev, tdim, groups, config.dropout),
            ]
        )
        self.up = nn.ModuleList()
        for level, width in reversed(list(enumerate(widths))):
            for _ in range(config.blocks + 1):
                self.up.append(ResBlock(c_prev + skips.pop(), width, tdim, groups, config.dropout))
                c_prev = width
            if level > 0:
                self.up.append(nn.Upsample(scale_factor=2, mode="nearest"))
        self.norm_out = nn.GroupNorm(groups, c_prev)
        self.conv_out = nn.Conv2d(c_prev, config.channels, 3, padding=1)

    def forward(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        B, C, H, W = x_t.shape
        emb = self.time_mlp(timestep_embedding(t, self.config.base).to(x_t.dtype))
        h = self.conv_in(x_t)
        hs = [h]
        for layer in self.down:
            h = layer(h, emb) if isinstance(layer, ResBlock) else layer(h)
            hs.append(h)
        for layer in self.mid:
            h = layer(h, emb)
        for layer in self.up:
            if isinstance(layer, ResBlock):
                skip = hs.pop()
                if h.shape[-2:] != skip.shape[-2:]:  # 7 -> 14 -> 28 is fine; 4 -> 8 -> 7 needs a crop
                    h = F.interpolate(h, size=skip.shape[-2:], mode="nearest")
                h = layer(torch.cat([h, skip], dim=1), emb)
            else:
                h = layer(h)
        return self.conv_out(F.silu(self.norm_out(h)))


MODEL_KINDS = ("mlp", "unet")


def build_model(kind: str, config) -> nn.Module:
    """The model of `kind` ("mlp" or "unet") for its config dataclass (or a dict of its fields)."""
    kind = require_choice("kind", kind, MODEL_KINDS)
    config_type = MLPConfig if kind == "mlp" else UNetConfig
    if isinstance(config, dict):
        config = dict(config)
        if "mults" in config:
            config["mults"] = tuple(config["mults"])
        unknown = set(config) - set(config_type.__dataclass_fields__)
        if unknown:
            raise ValueError(
                f"config for a {kind} model has unknown fields {sorted(unknown)}; allowed: "
                f"{sorted(config_type.__dataclass_fields__)}"
            )
        config = config_type(**config)
    if not isinstance(config, config_type):
        raise TypeError(f"config for a {kind} model must be a {config_type.__name__}, got {type(config).__name__}")
    if kind == "unet":
        for width in (config.base * m for m in config.mults):
            if width % config.groups:
                raise ValueError(
                    f"groups={config.groups} must divide every level's channels; {width} is not divisible"
                )
        require_int("blocks", config.blocks, 1)
    return MLPEps(config) if kind == "mlp" else UNetEps(config)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
