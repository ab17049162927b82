"""The Gaussian between encoder and decoder: q(z | x) = N(mean, diag(var)).

``DiagonalGaussianDistribution`` reads the encoder's output as a mean and a log-variance per
latent number, samples with the reparameterisation trick and gives the KL term and the NLL
(as CompVis' ``ldm/modules/distributions/distributions.py``).
"""

from __future__ import annotations

import math

import torch


class DiagonalGaussianDistribution:
    """q(z | x) = N(mean, diag(var)): the encoder's output read as a Gaussian per latent number.

    Args:
        parameters: ``[B, 2 * z_channels, h, w]``; the first half of the channels is the mean,
            the second half the log-variance (clamped to [-30, 20] so that exp() stays finite).
    """

    def __init__(self, parameters: torch.Tensor) -> None:
        if not torch.is_tensor(parameters) or parameters.dim() != 4 or parameters.shape[1] % 2:
            shape = tuple(parameters.shape) if torch.is_tensor(parameters) else type(parameters).__name__
            raise ValueError(f"parameters must be a 4-D tensor [B, 2 * z_channels, h, w], got {shape}")
        self.parameters = parameters
        self.mean, logvar = torch.chunk(parameters, 2, dim=1)
        self.logvar = torch.clamp(logvar, -30.0, 20.0)
        self.std = torch.exp(0.5 * self.logvar)  # sigma = exp(log sigma^2 / 2)
        self.var = torch.exp(self.logvar)

    def sample(
        self, generator: torch.Generator | None = None, noise: torch.Tensor | None = None
    ) -> torch.Tensor:
        """z = mean + std * eps, eps ~ N(0, I): the reparameterisation trick.

        The randomness sits in eps, which does not depend on the parameters, so gradients flow
        through ``mean`` and ``std`` to the encoder. eps is drawn on the generator's device (the
        CPU by default) and then moved, so a seed gives the same latent on every device; or it is
        ``noise``, drawn beforehand (a data-parallel rank's part of the global batch's noise).
        """
        if noise is None:
            device = generator.device if generator is not None else torch.device("cpu")
            noise = torch.randn(self.mean.shape, generator=generator, device=device, dtype=self.mean.dtype)
        elif noise.shape != self.mean.shape:
            raise ValueError(
                f"noise must have the latent's shape {tuple(self.mean.shape)}, got {tuple(noise.shape)}"
            )
        return self.mean + self.std * noise.to(self.mean)

    def mode(self) -> torch.Tensor:
        """The most likely z: the mean (a deterministic encoder, i.e. a plain autoencoder)."""
        return self.mean

    def kl(self, other: DiagonalGaussianDistribution | None = None) -> torch.Tensor:
        """KL(self || other) per sample, summed over C, H, W: a tensor ``[B]`` (in nats).

        To the prior N(0, I) (``other=None``):
            KL = 1/2 * sum(mu^2 + sigma^2 - 1 - log sigma^2)
        which is zero exactly when mu = 0 and sigma = 1, positive otherwise. Between two
        diagonal Gaussians:
            KL = 1/2 * sum((mu1 - mu2)^2 / var2 + var1 / var2 - 1 - log var1 + log var2)
        """
        dims = [1, 2, 3]
        if other is None:
            return 0.5 * torch.sum(self.mean**2 + self.var - 1.0 - self.logvar, dim=dims)
        if other.mean.shape != self.mean.shape:
            raise ValueError(
                f"other must have the same shape as this distribution {tuple(self.mean.shape)}, "
                f"got {tuple(other.mean.shape)}"
            )
        return 0.5 * torch.sum(
            (self.mean - other.mean) ** 2 / other.var
            + self.var / other.var
            - 1.0
            - self.logvar
            + other.logvar,
            dim=dims,
        )

    def nll(self, sample: torch.Tensor) -> torch.Tensor:
        """-log q(sample) per sample, summed over C, H, W: a tensor ``[B]``.

        -log N(z; mu, sigma^2) = 1/2 * sum(log(2 pi) + log sigma^2 + (z - mu)^2 / sigma^2)
        """
        if sample.shape != self.mean.shape:
            raise ValueError(f"sample must have shape {tuple(self.mean.shape)}, got {tuple(sample.shape)}")
        log_two_pi = math.log(2.0 * math.pi)
        return 0.5 * torch.sum(log_two_pi + self.logvar + (sample - self.mean) ** 2 / self.var, dim=[1, 2, 3])
