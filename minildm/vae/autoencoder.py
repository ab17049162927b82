"""The KL-regularised autoencoder: its config and the networks around the latent.

``VAEConfig`` and ``compression_ratio``, the blocks ``ResnetBlock``, ``AttnBlock`` and
``AsymmetricDownsample``, ``Encoder``, ``Decoder`` and ``AutoencoderKL``, with CompVis' names. The
overview (image -> latent -> image, autoencoder or VAE) is in :mod:`minildm.vae`; the posterior q(z | x) in
:mod:`minildm.vae.distributions`; the training objective in :mod:`minildm.vae.losses`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from minildm.config import ConfigMixin
from minildm.nn.blocks import Downsample, Upsample
from minildm.vae.distributions import DiagonalGaussianDistribution
from minildm.validation import (
    check_bool,
    check_choice,
    check_int_tuple,
    check_positive_int,
    check_positive_number,
)


def _norm(norm_groups: int, channels: int, eps: float = 1e-6) -> nn.GroupNorm:
    if channels % norm_groups:
        raise ValueError(f"norm_groups ({norm_groups}) must divide the number of channels ({channels})")
    return nn.GroupNorm(norm_groups, channels, eps=eps)


def compression_ratio(image_shape: tuple[int, ...], latent_shape: tuple[int, ...]) -> float:
    """How many numbers of the image one number of the latent stands for.

    ``compression_ratio((3, 512, 512), (4, 64, 64)) == 48.0`` (Stable Diffusion);
    ``compression_ratio((3, 32, 32), (4, 8, 8)) == 12.0`` (our default VAE).
    """
    check_int_tuple("image_shape", image_shape)
    check_int_tuple("latent_shape", latent_shape)
    return math.prod(image_shape) / math.prod(latent_shape)


@dataclass
class VAEConfig(ConfigMixin):
    """Everything that defines an :class:`AutoencoderKL`; the defaults run on a laptop CPU.

    Attributes:
        in_channels, out_channels: image channels in and out (3 for RGB).
        z_channels: latent channels (4, as in SD).
        ch: channels after ``conv_in``; level ``i`` has ``ch * ch_mult[i]``.
        ch_mult: one multiplier per resolution level; ``len(ch_mult) - 1`` stride-2 downsamplings.
        num_res_blocks: ResnetBlocks per level in the encoder (``num_res_blocks + 1`` in the decoder).
        attn_in_middle: put a single-head self-attention over the pixels in the middle blocks.
        norm_groups: GroupNorm groups; must divide every channel count (SD: 32).
        image_size: the image size the model is meant for (any divisible size is accepted).
        norm_eps: eps of every GroupNorm (1e-6, as in SD).
        downsample_padding: how the encoder's stride-2 convs pad: 1 on every side (ours, the
            U-Net's :class:`~minildm.nn.blocks.Downsample`), or 0: one row and column of zeros on
            the bottom and right only, then an unpadded conv (SD's VAE, CompVis and diffusers alike).
        scaling_factor: the latent scale f (the U-Net diffuses ``f * z``) when it is part of the
            model's config, as in SD (0.18215 for SD 1.x/2.x, from ``vae/config.json``); None when it
            is estimated from data after training and stored beside the weights (ours, lesson 04).

    SD's VAE: ``VAEConfig(ch=128, ch_mult=(1, 2, 4, 4), num_res_blocks=2, norm_groups=32,
    image_size=512, downsample_padding=0, scaling_factor=0.18215)`` (f = 8, 3x512x512 -> 4x64x64).
    """

    in_channels: int = 3
    out_channels: int = 3
    z_channels: int = 4
    ch: int = 32
    ch_mult: tuple[int, ...] = (1, 2, 2)
    num_res_blocks: int = 1
    attn_in_middle: bool = True
    norm_groups: int = 8
    image_size: int = 32
    norm_eps: float = 1e-6
    downsample_padding: int = 1
    scaling_factor: float | None = None

    def __post_init__(self) -> None:
        self.ch_mult = tuple(self.ch_mult)  # JSON gives lists
        for name in (
            "in_channels",
            "out_channels",
            "z_channels",
            "ch",
            "num_res_blocks",
            "norm_groups",
            "image_size",
        ):
            check_positive_int(f"VAEConfig.{name}", getattr(self, name))
        check_int_tuple("VAEConfig.ch_mult", self.ch_mult)
        check_bool("VAEConfig.attn_in_middle", self.attn_in_middle)
        check_positive_number("VAEConfig.norm_eps", self.norm_eps)
        check_choice("VAEConfig.downsample_padding", self.downsample_padding, (1, 0),
                     hint="1: pad every side, 0: SD's padding of the bottom and right only")
        check_positive_number("VAEConfig.scaling_factor", self.scaling_factor, optional=True)
        bad = sorted(c for c in {self.ch} | {self.ch * m for m in self.ch_mult} if c % self.norm_groups)
        if bad:
            raise ValueError(
                f"VAEConfig.norm_groups ({self.norm_groups}) must divide every channel count, but not {bad}"
            )

    @property
    def downsample_factor(self) -> int:
        """f = 2 ** (len(ch_mult) - 1): the latent is f times smaller in height and width."""
        return 2 ** (len(self.ch_mult) - 1)

    def latent_shape(self, image_shape: tuple[int, int, int] | None = None) -> tuple[int, int, int]:
        """``(C, H, W)`` of an image -> ``(z_channels, H / f, W / f)`` of its latent.

        Default image: ``(in_channels, image_size, image_size)``.
        """
        if image_shape is None:
            image_shape = (self.in_channels, self.image_size, self.image_size)
        check_int_tuple("image_shape", image_shape, length=3, hint="C, H, W")
        _, h, w = image_shape
        f = self.downsample_factor
        if h % f or w % f:
            raise ValueError(f"image height and width must be divisible by {f}, got {h}x{w}")
        return (self.z_channels, h // f, w // f)

    def compression_ratio(self, image_shape: tuple[int, int, int] | None = None) -> float:
        """Numbers in the image / numbers in its latent (12 for 3x32x32 -> 4x8x8; SD: 48)."""
        if image_shape is None:
            image_shape = (self.in_channels, self.image_size, self.image_size)
        return compression_ratio(tuple(image_shape), self.latent_shape(image_shape))


class ResnetBlock(nn.Module):
    """The VAE's residual block: the U-Net's ResBlock without the timestep embedding.

    h = conv1(SiLU(norm1(x)))
    h = conv2(SiLU(norm2(h)))
    out = nin_shortcut(x) + h        # nin_shortcut: 1x1 conv when channels change, else identity
    """

    def __init__(self, in_channels: int, out_channels: int, norm_groups: int = 8, eps: float = 1e-6) -> None:
        super().__init__()
        for name, value in (("in_channels", in_channels), ("out_channels", out_channels)):
            check_positive_int(name, value)
        self.norm1 = _norm(norm_groups, in_channels, eps)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.norm2 = _norm(norm_groups, out_channels, eps)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        same = in_channels == out_channels
        self.nin_shortcut = nn.Identity() if same else nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, in_channels, H, W]`` -> ``[B, out_channels, H, W]``."""
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        return self.nin_shortcut(x) + h


class AttnBlock(nn.Module):
    """Single-head self-attention over the pixels of a feature map, with a residual connection.

    Every pixel is a token of width C: Q = W_q x, K = W_k x, V = W_v x (1x1 convs), then
        out = x + proj_out(softmax(Q^T K / sqrt(C)) V)
    Attention costs (H * W)^2, so the VAE uses it only at the lowest resolution. ``fused`` (off by
    default; :func:`minildm.nn.attention.use_fused_attention` switches it) computes the same with
    PyTorch's fused kernel, without the [HW, HW] matrix (SD's 64x64 level: 64 MB per image).
    """

    def __init__(self, channels: int, norm_groups: int = 8, eps: float = 1e-6) -> None:
        super().__init__()
        self.norm = _norm(norm_groups, channels, eps)
        self.q = nn.Conv2d(channels, channels, 1)
        self.k = nn.Conv2d(channels, channels, 1)
        self.v = nn.Conv2d(channels, channels, 1)
        self.proj_out = nn.Conv2d(channels, channels, 1)
        self.fused = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, C, H, W]`` -> ``[B, C, H, W]``."""
        b, c, h, w = x.shape
        hn = self.norm(x)
        # [B, C, H, W] -> [B, H*W, C]: one token per pixel
        q = self.q(hn).reshape(b, c, h * w).transpose(1, 2)
        k = self.k(hn).reshape(b, c, h * w).transpose(1, 2)
        v = self.v(hn).reshape(b, c, h * w).transpose(1, 2)
        if self.fused:  # the same softmax(Q K^T / sqrt(C)) V in one kernel
            out = F.scaled_dot_product_attention(q, k, v, scale=c**-0.5).transpose(1, 2).reshape(b, c, h, w)
            return x + self.proj_out(out)
        # A = softmax(Q K^T / sqrt(C)) over the keys: [B, HW, HW]
        attn = torch.softmax(torch.bmm(q, k.transpose(1, 2)) * c**-0.5, dim=-1)
        out = torch.bmm(attn, v).transpose(1, 2).reshape(b, c, h, w)
        return x + self.proj_out(out)


def _mid_block(channels: int, cfg: VAEConfig) -> nn.Module:
    """ResnetBlock, AttnBlock (or nothing), ResnetBlock at the lowest resolution."""
    mid = nn.Module()
    mid.block_1 = ResnetBlock(channels, channels, cfg.norm_groups, cfg.norm_eps)
    mid.attn_1 = AttnBlock(channels, cfg.norm_groups, cfg.norm_eps) if cfg.attn_in_middle else nn.Identity()
    mid.block_2 = ResnetBlock(channels, channels, cfg.norm_groups, cfg.norm_eps)
    return mid


class AsymmetricDownsample(nn.Module):
    """SD's VAE downsampling: pad one zero row at the bottom and one zero column at the right,
    then a 3x3 conv with stride 2 and no padding (CompVis' ``Downsample`` with ``with_conv``).
    Same shapes and parameters as :class:`~minildm.nn.blocks.Downsample` (``op``), other numbers."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.op = nn.Conv2d(channels, channels, 3, stride=2, padding=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, C, H, W]`` -> ``[B, C, H/2, W/2]``."""
        return self.op(F.pad(x, (0, 1, 0, 1)))  # (left, right, top, bottom)


class Encoder(nn.Module):
    """Image ``[B, in_channels, H, W]`` -> ``[B, 2 * z_channels, H/f, W/f]`` (mean and log-variance)."""

    def __init__(self, config: VAEConfig) -> None:
        super().__init__()
        cfg = config
        self.conv_in = nn.Conv2d(cfg.in_channels, cfg.ch, 3, padding=1)
        self.down = nn.ModuleList()
        ch = cfg.ch
        for level, mult in enumerate(cfg.ch_mult):
            stage = nn.Module()
            blocks = []
            for _ in range(cfg.num_res_blocks):
                blocks.append(ResnetBlock(ch, cfg.ch * mult, cfg.norm_groups, cfg.norm_eps))
                ch = cfg.ch * mult
            stage.block = nn.ModuleList(blocks)
            # halve H and W after every level but the last: f = 2 ** (levels - 1)
            down = Downsample if cfg.downsample_padding == 1 else AsymmetricDownsample
            stage.downsample = down(ch) if level != len(cfg.ch_mult) - 1 else nn.Identity()
            self.down.append(stage)
        self.mid = _mid_block(ch, cfg)
        self.norm_out = _norm(cfg.norm_groups, ch, cfg.norm_eps)
        # 2 * z_channels: a mean and a log-variance for every latent number
        self.conv_out = nn.Conv2d(ch, 2 * cfg.z_channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, in_channels, H, W]`` -> ``[B, 2 * z_channels, H/f, W/f]``."""
        h = self.conv_in(x)
        for stage in self.down:
            for block in stage.block:
                h = block(h)
            h = stage.downsample(h)
        h = self.mid.block_2(self.mid.attn_1(self.mid.block_1(h)))
        return self.conv_out(F.silu(self.norm_out(h)))


class Decoder(nn.Module):
    """Latent ``[B, z_channels, h, w]`` -> image ``[B, out_channels, h*f, w*f]``: the encoder's mirror."""

    def __init__(self, config: VAEConfig) -> None:
        super().__init__()
        cfg = config
        ch = cfg.ch * cfg.ch_mult[-1]  # start at the widest, lowest-resolution level
        self.conv_in = nn.Conv2d(cfg.z_channels, ch, 3, padding=1)
        self.mid = _mid_block(ch, cfg)
        # self.up[i] is level i (as in CompVis), built and run from the lowest level upwards
        up: list[nn.Module] = []
        for level, mult in reversed(list(enumerate(cfg.ch_mult))):
            stage = nn.Module()
            blocks = []
            for _ in range(cfg.num_res_blocks + 1):
                blocks.append(ResnetBlock(ch, cfg.ch * mult, cfg.norm_groups, cfg.norm_eps))
                ch = cfg.ch * mult
            stage.block = nn.ModuleList(blocks)
            # nearest-neighbour x2 + conv3x3 after every level but the full-resolution one
            stage.upsample = Upsample(ch) if level != 0 else nn.Identity()
            up.insert(0, stage)
        self.up = nn.ModuleList(up)
        self.norm_out = _norm(cfg.norm_groups, ch, cfg.norm_eps)
        self.conv_out = nn.Conv2d(ch, cfg.out_channels, 3, padding=1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """``[B, z_channels, h, w]`` -> ``[B, out_channels, h*f, w*f]``."""
        h = self.conv_in(z)
        h = self.mid.block_2(self.mid.attn_1(self.mid.block_1(h)))
        for stage in reversed(self.up):
            for block in stage.block:
                h = block(h)
            h = stage.upsample(h)
        return self.conv_out(F.silu(self.norm_out(h)))


class AutoencoderKL(nn.Module):
    """The KL-regularised autoencoder of latent diffusion.

    ``encode(x)`` gives q(z | x) as a :class:`DiagonalGaussianDistribution`; ``decode(z)`` gives
    the image. Used deterministically (``encode(x).mode()``, trained with ``kl_weight=0``) it is
    the plain autoencoder.
    """

    def __init__(self, config: VAEConfig | None = None) -> None:
        super().__init__()
        self.config = cfg = config if config is not None else VAEConfig()
        self.encoder = Encoder(cfg)
        self.decoder = Decoder(cfg)
        # 1x1 convs between the networks and the latent (CompVis' names, from VQ-GAN's "quantisation")
        self.quant_conv = nn.Conv2d(2 * cfg.z_channels, 2 * cfg.z_channels, 1)
        self.post_quant_conv = nn.Conv2d(cfg.z_channels, cfg.z_channels, 1)

    def _check_image(self, x: torch.Tensor) -> None:
        cfg = self.config
        expected = f"[B, {cfg.in_channels}, H, W] with H and W divisible by {cfg.downsample_factor}"
        if not torch.is_tensor(x) or x.dim() != 4:
            got = tuple(x.shape) if torch.is_tensor(x) else type(x).__name__
            raise ValueError(f"x must be an image batch {expected}, got {got}")
        _, c, h, w = x.shape
        if c != cfg.in_channels or h % cfg.downsample_factor or w % cfg.downsample_factor:
            raise ValueError(
                f"x must be an image batch {expected} (downsample_factor = 2 ** (len(ch_mult) - 1) "
                f"for ch_mult={cfg.ch_mult}), got {tuple(x.shape)}"
            )

    def encode(self, x: torch.Tensor) -> DiagonalGaussianDistribution:
        """Image ``[B, in_channels, H, W]`` -> q(z | x) over latents ``[B, z_channels, H/f, W/f]``."""
        self._check_image(x)
        return DiagonalGaussianDistribution(self.quant_conv(self.encoder(x)))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Latent ``[B, z_channels, h, w]`` -> image ``[B, out_channels, h*f, w*f]``.

        ``z`` is the *unscaled* latent: divide a diffusion latent by the scale factor first.
        """
        zc = self.config.z_channels
        if not torch.is_tensor(z) or z.dim() != 4 or z.shape[1] != zc:
            got = tuple(z.shape) if torch.is_tensor(z) else type(z).__name__
            raise ValueError(f"z must be a latent batch [B, z_channels={zc}, h, w], got {got}")
        return self.decoder(self.post_quant_conv(z))

    def forward(
        self,
        x: torch.Tensor,
        sample_posterior: bool = True,
        generator: torch.Generator | None = None,
        noise: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, DiagonalGaussianDistribution]:
        """Encode, sample z (or take the mode), decode: returns ``(reconstruction, posterior)``.
        ``noise``: the eps of z = mean + std * eps, drawn beforehand (else from ``generator``)."""
        posterior = self.encode(x)
        z = posterior.sample(generator, noise) if sample_posterior else posterior.mode()
        return self.decode(z), posterior
