"""A small MLP noise predictor for 2-D points (lesson 02).

The simplest network that can learn $\\epsilon_\\theta(x_t, t)$: the point and a sinusoidal
embedding of $t$ go in, a 2-D noise estimate comes out. Images need a U-Net; points do not.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from minildm.config import ConfigMixin
from minildm.nn.embeddings import timestep_embedding


@dataclass
class MLPConfig(ConfigMixin):
    dim: int = 2
    hidden: int = 128
    layers: int = 3
    time_dim: int = 32


class MLPDenoiser(nn.Module):
    """$\\epsilon_\\theta(x_t, t)$ for points: ``[x_t, emb(t)] -> hidden -> ... -> dim``."""

    def __init__(self, config: MLPConfig | None = None):
        super().__init__()
        self.config = config = config or MLPConfig()
        widths = [config.dim + config.time_dim] + [config.hidden] * config.layers
        blocks: list[nn.Module] = []
        for a, b in zip(widths[:-1], widths[1:]):
            blocks += [nn.Linear(a, b), nn.SiLU()]
        self.net = nn.Sequential(*blocks, nn.Linear(config.hidden, config.dim))

    def forward(self, x: torch.Tensor, timesteps: torch.Tensor | int, context=None) -> torch.Tensor:
        if x.ndim != 2 or x.shape[1] != self.config.dim:
            raise ValueError(f"x must have shape [batch, {self.config.dim}], got {tuple(x.shape)}")
        t = torch.as_tensor(timesteps, device=x.device).float().reshape(-1).expand(x.shape[0])
        emb = timestep_embedding(t, self.config.time_dim)
        return self.net(torch.cat([x, emb], dim=1))
