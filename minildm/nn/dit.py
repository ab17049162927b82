r"""DiT: a transformer as the noise predictor (Peebles & Xie, 2023, "Scalable Diffusion Models with
Transformers"), with cross-attention to the text as in PixArt-alpha (Chen et al., 2023).

The U-Net's convolutions see a neighbourhood; a transformer sees every position at once, and
scales by adding blocks. On our $4 \times 8 \times 8$ latent:

1. **patchify**: cut the latent into $p \times p$ patches ($p = 2$: 16 patches of $4 \cdot 2 \cdot 2 = 16$
   numbers), embed each linearly to ``hidden_size`` and add a fixed 2-D sine-cosine position
   embedding: 16 tokens;
2. **blocks**: self-attention over the tokens, cross-attention to the text tokens, an MLP; the
   timestep enters through **adaLN-Zero**: each block's LayerNorms have no learned scale and shift
   of their own; a linear map of the timestep embedding gives a shift $\beta$, a scale $\gamma$
   and a gate $\alpha$ per sub-layer,
   $$x \leftarrow x + \alpha \cdot f\big(\mathrm{LN}(x)\,(1 + \gamma) + \beta\big),$$
   and that map starts at **zero**, so every block starts as the identity (the "Zero");
3. **unpatchify**: a last adaLN-modulated linear layer (also zero-initialised) maps each token back
   to its $p \times p \times C$ numbers, put back in place.

``DiTModel(x, t, context)`` has the U-Net's signature, so the same tasks, trainer, samplers and
pipelines use either.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from minildm.config import ConfigMixin
from minildm.nn.attention import CrossAttention
from minildm.nn.embeddings import TimestepEmbedding
from minildm.validation import check_positive_int


@dataclass
class DiTConfig(ConfigMixin):
    """Everything that defines a :class:`DiTModel`.

    Attributes:
        in_channels, out_channels: channels of the latent and of the prediction.
        image_size: the latent's side (8 for our VAE's 4 x 8 x 8); ``patch_size`` must divide it.
        patch_size: side of a patch: ``(image_size / patch_size) ** 2`` tokens.
        hidden_size: width of every token.
        depth: number of transformer blocks.
        num_heads: attention heads (``hidden_size`` must be a multiple).
        mlp_ratio: the MLP's hidden width is ``mlp_ratio * hidden_size``.
        context_dim: width of the text tokens; ``None`` for an unconditional DiT.
    """

    in_channels: int = 4
    out_channels: int = 4
    image_size: int = 8
    patch_size: int = 2
    hidden_size: int = 192
    depth: int = 4
    num_heads: int = 4
    mlp_ratio: int = 4
    context_dim: int | None = 64

    def __post_init__(self) -> None:
        for name in (
            "in_channels",
            "out_channels",
            "image_size",
            "patch_size",
            "hidden_size",
            "depth",
            "num_heads",
            "mlp_ratio",
        ):
            check_positive_int(name, getattr(self, name))
        if self.image_size % self.patch_size:
            raise ValueError(
                f"patch_size {self.patch_size} must divide the latent's side image_size={self.image_size}"
            )
        if self.hidden_size % self.num_heads:
            raise ValueError(
                f"hidden_size {self.hidden_size} must be a multiple of num_heads {self.num_heads}"
            )
        check_positive_int("context_dim", self.context_dim, optional=True)


def sincos_position_embedding(grid: int, dim: int) -> torch.Tensor:
    """Fixed 2-D sine-cosine position embeddings ``[grid * grid, dim]``: half the channels encode
    the row, half the column, each with the transformer's 1-D sines and cosines."""
    if dim % 4:
        raise ValueError(f"the position embedding width must be a multiple of 4, got {dim}")
    quarter = dim // 4
    freqs = 1.0 / 10000 ** (torch.arange(quarter, dtype=torch.float64) / quarter)
    rows, cols = torch.meshgrid(torch.arange(grid), torch.arange(grid), indexing="ij")

    def encode(pos: torch.Tensor) -> torch.Tensor:
        angles = pos.reshape(-1, 1).double() * freqs
        return torch.cat([angles.sin(), angles.cos()], dim=1)

    return torch.cat([encode(rows), encode(cols)], dim=1).float()


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    r"""$x (1 + \gamma) + \beta$, one $\gamma$, $\beta$ per example, broadcast over the tokens."""
    return x * (1 + scale[:, None]) + shift[:, None]


class DiTBlock(nn.Module):
    """Self-attention, cross-attention (if ``context_dim``), MLP; each gated by adaLN-Zero."""

    def __init__(self, hidden: int, heads: int, mlp_ratio: int, context_dim: int | None) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-6)
        self.attn = CrossAttention(hidden, None, heads=heads, dim_head=hidden // heads)
        self.cross = None
        if context_dim is not None:
            self.norm_cross = nn.LayerNorm(hidden, eps=1e-6)  # plain LN: text does not depend on t
            self.cross = CrossAttention(hidden, context_dim, heads=heads, dim_head=hidden // heads)
        self.norm2 = nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-6)
        self.mlp = nn.Sequential(
            nn.Linear(hidden, mlp_ratio * hidden),
            nn.GELU(approximate="tanh"),
            nn.Linear(mlp_ratio * hidden, hidden),
        )
        # adaLN-Zero: (shift, scale, gate) for attention and for the MLP, from the timestep
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(hidden, 6 * hidden))
        nn.init.zeros_(self.adaLN_modulation[1].weight)
        nn.init.zeros_(self.adaLN_modulation[1].bias)

    def forward(self, x: torch.Tensor, c: torch.Tensor, context: torch.Tensor | None) -> torch.Tensor:
        shift1, scale1, gate1, shift2, scale2, gate2 = self.adaLN_modulation(c).chunk(6, dim=1)
        # $x \leftarrow x + \alpha_1 \cdot \mathrm{Attn}(\mathrm{LN}(x)(1 + \gamma_1) + \beta_1)$
        x = x + gate1[:, None] * self.attn(modulate(self.norm1(x), shift1, scale1))
        if self.cross is not None:
            x = x + self.cross(self.norm_cross(x), context)
        return x + gate2[:, None] * self.mlp(modulate(self.norm2(x), shift2, scale2))


class DiTModel(nn.Module):
    """The DiT noise predictor: ``forward(x [B, C, H, W], t [B], context [B, N, D]) -> [B, C, H, W]``."""

    def __init__(self, config: DiTConfig | None = None) -> None:
        super().__init__()
        self.config = cfg = config or DiTConfig()
        hidden, p = cfg.hidden_size, cfg.patch_size
        self.patch_embed = nn.Conv2d(
            cfg.in_channels, hidden, kernel_size=p, stride=p
        )  # one linear map per patch
        self.register_buffer(
            "pos_embed", sincos_position_embedding(cfg.image_size // p, hidden)[None], persistent=False
        )
        self.time_embed = TimestepEmbedding(hidden, hidden)
        self.blocks = nn.ModuleList(
            DiTBlock(hidden, cfg.num_heads, cfg.mlp_ratio, cfg.context_dim) for _ in range(cfg.depth)
        )
        self.norm_out = nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-6)
        self.adaLN_out = nn.Sequential(nn.SiLU(), nn.Linear(hidden, 2 * hidden))
        self.proj_out = nn.Linear(hidden, p * p * cfg.out_channels)
        for layer in (self.adaLN_out[1], self.proj_out):  # the output starts at zero
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def unpatchify(self, tokens: torch.Tensor) -> torch.Tensor:
        """``[B, (H/p)(W/p), p*p*C]`` -> ``[B, C, H, W]``: each token's numbers back to its patch."""
        cfg = self.config
        p, g, c = cfg.patch_size, cfg.image_size // cfg.patch_size, cfg.out_channels
        x = tokens.reshape(tokens.shape[0], g, g, p, p, c)
        return x.permute(0, 5, 1, 3, 2, 4).reshape(tokens.shape[0], c, g * p, g * p)

    def forward(
        self, x: torch.Tensor, timesteps: torch.Tensor, context: torch.Tensor | None = None
    ) -> torch.Tensor:
        cfg = self.config
        if x.dim() != 4 or x.shape[1] != cfg.in_channels or x.shape[-2:] != (cfg.image_size, cfg.image_size):
            raise ValueError(
                f"x must have shape [B, {cfg.in_channels}, {cfg.image_size}, {cfg.image_size}], "
                f"got {tuple(x.shape)}"
            )
        if (context is None) != (cfg.context_dim is None):
            raise ValueError("context must be given exactly when the DiT has a context_dim")
        # patchify: [B, C, H, W] -> [B, hidden, H/p, W/p] -> [B, tokens, hidden], plus positions
        tokens = self.patch_embed(x).flatten(2).transpose(1, 2) + self.pos_embed
        c = self.time_embed(timesteps.reshape(-1).expand(x.shape[0]))
        for block in self.blocks:
            tokens = block(tokens, c, context)
        shift, scale = self.adaLN_out(c).chunk(2, dim=1)
        return self.unpatchify(self.proj_out(modulate(self.norm_out(tokens), shift, scale)))
