"""A network with known answers, shared by the sampler tests: the exact denoiser of Gaussian data."""

import torch

GAUSS_MEAN, GAUSS_STD = torch.tensor([1.0, -2.0]), 0.5


def gaussian_denoiser(scheduler, prediction):
    """The best possible (linear) network when the data is x0 ~ N(m, s^2 I): E[eps | x_t] or E[v | x_t]."""
    m, s = GAUSS_MEAN, GAUSS_STD

    def model(x, t, context=None):
        abar = scheduler.alphas_cumprod[t].reshape(-1, 1)
        # x_t ~ N(sqrt(abar) m, (abar s^2 + 1 - abar) I), so
        # E[eps | x_t] = sqrt(1 - abar) (x_t - sqrt(abar) m) / (abar s^2 + 1 - abar)
        eps = (1 - abar).sqrt() * (x - abar.sqrt() * m) / (abar * s**2 + 1 - abar)
        if prediction == "epsilon":
            return eps
        x0 = (x - (1 - abar).sqrt() * eps) / abar.sqrt()
        return abar.sqrt() * eps - (1 - abar).sqrt() * x0  # E[v | x_t]

    return model
