"""The Frechet distance between two sets of feature vectors, from scratch.

Fit a Gaussian to each set (mean ``mu``, covariance ``S``) and measure the Frechet (also called
2-Wasserstein) distance between the two Gaussians, which has a closed form (Dowson & Landau, 1982):

    FD = ||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^{1/2})

FID (Heusel et al., 2017) is this distance on the 2048 pool features of an Inception-v3 network;
here the features are whatever the caller gives (lesson 09 uses the mini CLIP's image tower).

The only delicate part is ``Tr (S_a S_b)^{1/2}``: ``S_a S_b`` is not symmetric, so a general
matrix square root (``scipy.linalg.sqrtm``, what FID code uses) is slow and can return tiny
imaginary parts. We use the symmetric form instead. With ``R = S_a^{1/2}`` (symmetric, from an
eigendecomposition), ``S_a S_b = R (R S_b R) R^{-1}`` is similar to ``M = R S_b R``, so both have
the same eigenvalues; ``M`` is symmetric positive semi-definite, hence

    Tr (S_a S_b)^{1/2} = sum_i sqrt(lambda_i(M)),    lambda_i(M) >= 0,

with nothing but ``torch.linalg.eigh`` (and no inverse: a singular ``S_a`` is fine).
"""

from __future__ import annotations

import numpy as np
import torch


def _as_features(features, name: str) -> torch.Tensor:
    """``features`` as a float64 CPU tensor [N, D], N >= 2, or a ValueError naming ``name``."""
    if isinstance(features, np.ndarray):
        features = torch.from_numpy(features)
    if not isinstance(features, torch.Tensor):
        raise ValueError(f"{name} must be a tensor or array [N, D], got {type(features).__name__}")
    if features.ndim != 2:
        raise ValueError(f"{name} must be 2-D [N samples, D features], got shape {tuple(features.shape)}")
    if features.shape[0] < 2:
        raise ValueError(
            f"{name} needs at least 2 samples to estimate a covariance, got {features.shape[0]}"
        )
    features = features.detach().to("cpu", torch.float64)
    if not torch.isfinite(features).all():
        raise ValueError(f"{name} hold NaN or infinite values")
    return features


def gaussian_stats(
    features: torch.Tensor | np.ndarray, name: str = "features"
) -> tuple[torch.Tensor, torch.Tensor]:
    """The mean [D] and the unbiased covariance [D, D] (divided by N - 1) of ``features`` [N, D],
    in float64. Fewer than 2 samples, or not 2-D, raises a ValueError naming ``name``."""
    x = _as_features(features, name)
    mu = x.mean(dim=0)
    centred = x - mu
    sigma = centred.T @ centred / (x.shape[0] - 1)
    return mu, sigma


def sqrtm_psd(matrix: torch.Tensor) -> torch.Tensor:
    """The symmetric square root of a symmetric positive semi-definite matrix: V diag(sqrt(l)) V^T.

    Eigenvalues that round-off made slightly negative are set to 0."""
    sym = (matrix + matrix.T) / 2
    eigenvalues, vectors = torch.linalg.eigh(sym)
    return (vectors * eigenvalues.clamp(min=0).sqrt()) @ vectors.T


def trace_sqrt_product(sigma_a: torch.Tensor, sigma_b: torch.Tensor) -> float:
    """``Tr (S_a S_b)^{1/2}`` as the sum of sqrt(eigenvalues) of ``S_a^{1/2} S_b S_a^{1/2}``."""
    root_a = sqrtm_psd(sigma_a.to(torch.float64))
    middle = root_a @ sigma_b.to(torch.float64) @ root_a
    eigenvalues = torch.linalg.eigvalsh((middle + middle.T) / 2)
    return float(eigenvalues.clamp(min=0).sqrt().sum())


def frechet_distance_from_stats(
    mu_a: torch.Tensor, sigma_a: torch.Tensor, mu_b: torch.Tensor, sigma_b: torch.Tensor
) -> float:
    """``||mu_a - mu_b||^2 + Tr(S_a) + Tr(S_b) - 2 Tr (S_a S_b)^{1/2}`` for two Gaussians.

    The result is >= 0 in exact arithmetic; round-off below 0 (identical inputs) is returned as 0."""
    mu_a, mu_b = mu_a.to(torch.float64), mu_b.to(torch.float64)
    sigma_a, sigma_b = sigma_a.to(torch.float64), sigma_b.to(torch.float64)
    if mu_a.ndim != 1 or mu_a.shape != mu_b.shape:
        raise ValueError(
            f"mu_a and mu_b must be vectors of one length, got {tuple(mu_a.shape)} and {tuple(mu_b.shape)}"
        )
    width = mu_a.shape[0]
    for name, sigma in (("sigma_a", sigma_a), ("sigma_b", sigma_b)):
        if sigma.shape != (width, width):
            raise ValueError(f"{name} must be [{width}, {width}] like the means, got {tuple(sigma.shape)}")
    mean_term = float((mu_a - mu_b).pow(2).sum())
    trace_term = float(torch.trace(sigma_a) + torch.trace(sigma_b)) - 2 * trace_sqrt_product(sigma_a, sigma_b)
    return max(mean_term + trace_term, 0.0)


def frechet_distance(features_a: torch.Tensor | np.ndarray, features_b: torch.Tensor | np.ndarray) -> float:
    """The Frechet distance between Gaussians fitted to two feature sets [N_a, D] and [N_b, D].

    The sets may differ in size but not in width D; each needs at least 2 samples. The estimate
    is biased upwards for finite N (the covariances are noisy), so compare distances computed
    with the same numbers of samples, and against the distance between two real sets (the floor)."""
    a = _as_features(features_a, "features_a")
    b = _as_features(features_b, "features_b")
    if a.shape[1] != b.shape[1]:
        raise ValueError(
            f"features_a and features_b must have the same width, got {a.shape[1]} and {b.shape[1]}"
        )
    return frechet_distance_from_stats(*gaussian_stats(a, "features_a"), *gaussian_stats(b, "features_b"))
