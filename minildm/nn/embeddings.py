"""How the U-Net is told the time: sinusoidal timestep embeddings and the MLP on top of them.

The noise predictor eps_theta(x_t, t) must behave differently at t = 10 (remove a little noise)
and at t = 900 (invent almost everything). A single number t is a poor input for a network, so
we spread it over many sine and cosine waves of geometrically spaced frequencies, as the
Transformer does for token positions (Vaswani et al., 2017) and as DDPM (Ho et al., 2020) and
Stable Diffusion do for timesteps. Nearby timesteps get similar vectors, distant ones different
vectors, and every t in [0, T) gets a unique code.

Names follow CompVis' ``ldm/modules/diffusionmodules/util.py`` (``timestep_embedding``): the
first half of the vector holds cosines, the second half sines.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from minildm.validation import check_number, check_positive_int


def timestep_embedding(timesteps: torch.Tensor | float, dim: int, max_period: float = 10000) -> torch.Tensor:
    """Sinusoidal embedding of ``timesteps`` into ``dim`` numbers each.

    With ``half = dim // 2`` frequencies
        freq_i = max_period ** (-i / half),  i = 0 .. half - 1
    the embedding of a timestep t is
        [cos(t * freq_0), ..., cos(t * freq_{half-1}), sin(t * freq_0), ..., sin(t * freq_{half-1})]
    (a trailing zero is appended when ``dim`` is odd). At t = 0 that is ``half`` ones then zeros.

    Args:
        timesteps: a number, a 0-d tensor or a 1-D tensor ``[B]``; integer or float timesteps
            (float ones appear with continuous-time schedules and fractional DDIM steps).
        dim: the length of each embedding vector (>= 1).
        max_period: the slowest wave has period ``2 * pi * max_period``; 10000 as in SD.

    Returns:
        A float tensor ``[B, dim]`` (``[1, dim]`` for a single number or 0-d tensor).
    """
    check_positive_int("dim", dim)
    check_number("max_period", max_period, low=0, low_open=True)
    if not torch.is_tensor(timesteps):
        timesteps = torch.tensor([timesteps])
    if timesteps.dim() == 0:
        timesteps = timesteps[None]
    if timesteps.dim() != 1:
        raise ValueError(
            f"timesteps must be a number or a 0-d / 1-D tensor [B], got shape {tuple(timesteps.shape)}"
        )
    half = dim // 2
    # freq_i = max_period^(-i/half) = exp(-ln(max_period) * i / half): from 1 down to ~1/max_period.
    exponent = torch.arange(half, dtype=torch.float32, device=timesteps.device) / half
    freqs = torch.exp(-math.log(max_period) * exponent)
    # args[b, i] = t_b * freq_i  (computed in float32 even for integer timesteps)
    args = timesteps.float()[:, None] * freqs[None, :]
    embedding = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:  # odd dim: pad one zero so the output has exactly `dim` columns
        embedding = torch.cat([embedding, torch.zeros_like(embedding[:, :1])], dim=-1)
    return embedding


class TimestepEmbedding(nn.Module):
    """Timesteps -> sinusoidal code of length ``dim`` -> Linear -> SiLU -> Linear -> ``time_embed_dim``.

    This is the ``time_embed`` MLP of CompVis' ``UNetModel`` (there ``dim = model_channels`` and
    ``time_embed_dim = 4 * model_channels``). The sinusoidal code is fixed; the MLP learns which
    mix of frequencies each ResBlock needs. Every ResBlock then adds its own projection of the
    result to its feature maps.

    Args:
        dim: length of the sinusoidal code fed to the MLP.
        time_embed_dim: width of the output (and hidden layer).
        max_period: passed to :func:`timestep_embedding`.
    """

    def __init__(self, dim: int, time_embed_dim: int, max_period: float = 10000) -> None:
        super().__init__()
        for name, value in (("dim", dim), ("time_embed_dim", time_embed_dim)):
            check_positive_int(name, value)
        self.dim = dim
        self.max_period = max_period
        self.linear_1 = nn.Linear(dim, time_embed_dim)
        self.act = nn.SiLU()
        self.linear_2 = nn.Linear(time_embed_dim, time_embed_dim)

    def forward(self, timesteps: torch.Tensor | float) -> torch.Tensor:
        """``timesteps`` (number, 0-d or ``[B]``) -> embedding ``[B, time_embed_dim]``."""
        emb = timestep_embedding(timesteps, self.dim, self.max_period)
        emb = emb.to(self.linear_1.weight.device, self.linear_1.weight.dtype)
        # h = W_2 SiLU(W_1 emb + b_1) + b_2
        return self.linear_2(self.act(self.linear_1(emb)))
