"""The U-Net's building blocks: ResBlock, Downsample, Upsample and TimestepEmbedSequential.

Names follow CompVis' ``ldm/modules/diffusionmodules/openaimodel.py``. :class:`minildm.nn.unet.UNetModel`
assembles them; the VAE (:mod:`minildm.vae`) reuses ``Downsample`` and ``Upsample``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from minildm.nn.attention import SpatialTransformer
from minildm.validation import check_positive_int


def _zero_module(module: nn.Module) -> nn.Module:
    """Set all parameters of ``module`` to zero and return it (CompVis' ``zero_module``)."""
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


def _group_norm(norm_groups: int, channels: int, eps: float = 1e-5) -> nn.GroupNorm:
    if channels % norm_groups:
        raise ValueError(f"norm_groups ({norm_groups}) must divide the number of channels ({channels})")
    return nn.GroupNorm(norm_groups, channels, eps=eps)


class ResBlock(nn.Module):
    """Residual block that also reads the timestep embedding:

        h = conv3x3(SiLU(GroupNorm(x)))                       # in_layers
        h = h + Linear(SiLU(emb))[:, :, None, None]           # emb_layers: one shift per channel
        h = conv3x3(dropout(SiLU(GroupNorm(h))))              # out_layers, conv zero-initialised
        out = skip(x) + h                                     # skip: identity or 1x1 conv

    The zero-initialised last conv makes the block start as ``skip(x)``, which keeps a deep
    U-Net stable at the start of training.
    """

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        time_embed_dim: int,
        dropout: float = 0.0,
        norm_groups: int = 8,
        norm_eps: float = 1e-5,
    ) -> None:
        super().__init__()
        for name, value in (("in_ch", in_ch), ("out_ch", out_ch), ("time_embed_dim", time_embed_dim)):
            check_positive_int(name, value)
        self.in_ch, self.out_ch = in_ch, out_ch
        self.in_layers = nn.Sequential(
            _group_norm(norm_groups, in_ch, norm_eps), nn.SiLU(), nn.Conv2d(in_ch, out_ch, 3, padding=1)
        )
        self.emb_layers = nn.Sequential(nn.SiLU(), nn.Linear(time_embed_dim, out_ch))
        self.out_layers = nn.Sequential(
            _group_norm(norm_groups, out_ch, norm_eps),
            nn.SiLU(),
            nn.Dropout(dropout),
            _zero_module(nn.Conv2d(out_ch, out_ch, 3, padding=1)),
        )
        # When the channel count changes, x must be projected before it can be added to h.
        self.skip_connection = nn.Identity() if in_ch == out_ch else nn.Conv2d(in_ch, out_ch, 1)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        """``x`` ``[B, in_ch, H, W]``, ``emb`` ``[B, time_embed_dim]`` -> ``[B, out_ch, H, W]``."""
        h = self.in_layers(x)
        # [B, out_ch] -> [B, out_ch, 1, 1]: the same shift for every pixel of a channel
        h = h + self.emb_layers(emb).to(h.dtype)[:, :, None, None]
        h = self.out_layers(h)
        return self.skip_connection(x) + h


class Downsample(nn.Module):
    """Halve height and width with a stride-2 3x3 convolution (a learned downsampling)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.op = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, C, H, W]`` -> ``[B, C, H/2, W/2]``."""
        return self.op(x)


class Upsample(nn.Module):
    """Double height and width: nearest-neighbour x2, then a 3x3 conv to smooth the blocks."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, C, H, W]`` -> ``[B, C, 2H, 2W]``."""
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))


class TimestepEmbedSequential(nn.Sequential):
    """A ``Sequential`` that hands each layer what it needs: ``emb`` to ResBlocks, ``context``
    to SpatialTransformers, nothing to the rest (as in CompVis)."""

    def forward(  # type: ignore[override]
        self, x: torch.Tensor, emb: torch.Tensor, context: torch.Tensor | None = None
    ) -> torch.Tensor:
        for layer in self:
            if isinstance(layer, ResBlock):
                x = layer(x, emb)
            elif isinstance(layer, SpatialTransformer):
                x = layer(x, context)
            else:
                x = layer(x)
        return x
