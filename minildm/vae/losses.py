"""The VAE's training objective and the latent scale factor measured from data.

``vae_loss``: MSE reconstruction + a (very small) weight times the KL to N(0, I);
``estimate_scale_factor``: 1 / std of the latents (SD's 0.18215 for SD's VAE). No LPIPS and no
patch-GAN discriminator here: see :func:`vae_loss` for why.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from minildm.vae.autoencoder import AutoencoderKL
from minildm.vae.distributions import DiagonalGaussianDistribution
from minildm.validation import check_number, check_positive_int


def vae_loss(
    reconstruction: torch.Tensor,
    x: torch.Tensor,
    posterior: DiagonalGaussianDistribution,
    kl_weight: float = 1e-6,
    with_logs: bool = True,
) -> tuple[torch.Tensor, dict[str, float]]:
    """The VAE training objective, normalised per input number:

        loss = MSE(reconstruction, x) + kl_weight * KL(q(z|x) || N(0, I)) / (C * H * W)

    - MSE is the mean over all elements (= -log p(x|z) for a Gaussian decoder, up to constants).
    - KL is summed over the latent of each sample and averaged over the batch, then divided by
      the number of *input* numbers per sample, C * H * W, so the loss keeps the familiar MSE
      scale. CompVis' ``LPIPSWithDiscriminator`` is a different loss (L1 + LPIPS divided by a
      learned variance, a patch discriminator), so SD's ``kl_weight: 1e-6`` does not carry over
      to ours (lesson 04 sweeps ours).

    Stable Diffusion's VAE adds an LPIPS perceptual loss and a patch-GAN discriminator: with
    MSE alone, a decoder of natural images averages over the textures it cannot pin down and
    blurs them. Our shapes world is flat colours with sharp edges and no texture, which MSE
    reconstructs well, so we skip both (and the training stays a few minutes on a CPU).

    Returns:
        ``(loss, logs)`` with logs ``{"mse", "kl", "loss"}`` as floats; ``"kl"`` is the mean KL
        per sample in nats (before the division by C * H * W). ``with_logs=False``: logs ``{}``.
    """
    if reconstruction.shape != x.shape:
        raise ValueError(
            f"reconstruction must have the shape of x {tuple(x.shape)}, got {tuple(reconstruction.shape)}"
        )
    check_number("kl_weight", kl_weight, low=0)
    mse = F.mse_loss(reconstruction, x)  # mean over B * C * H * W numbers
    kl = posterior.kl().mean()  # sum over the latent, mean over the batch (nats per image)
    numel_per_sample = x[0].numel()  # C * H * W
    loss = mse + kl_weight * kl / numel_per_sample
    if not with_logs:  # training on a GPU: reading the logs back would stall it every step
        return loss, {}
    return loss, {"mse": mse.item(), "kl": kl.item(), "loss": loss.item()}


@torch.no_grad()
def estimate_scale_factor(
    vae: AutoencoderKL,
    images: torch.Tensor,
    batch_size: int = 256,
    use_mode: bool = False,
    generator: torch.Generator | None = None,
) -> float:
    """The factor that gives the diffusion model unit-variance latents: 1 / std(z).

    Rombach et al. (2022, appendix G) rescale the KL-regularised latent by 1 / sigma_hat, with
    sigma_hat^2 = 1/(bchw) * sum (z - mu_hat)^2 estimated on the first batch of data. SD's
    0.18215 is that number for SD's VAE on its training images (its latents have std ~5.49);
    it is not a constant of nature, and a VAE of our own needs its own, measured here.

    Args:
        vae: the (trained) autoencoder; run in eval mode without gradients.
        images: ``[N, in_channels, H, W]``, the images to measure on.
        batch_size: images per encoder call.
        use_mode: take the mean of q(z|x) instead of a sample (the sample is what SD diffuses).
        generator: for the samples, to make the estimate reproducible.

    Returns:
        ``1 / std`` of all latent numbers, so that ``scale_factor * z`` has std 1.
    """
    batch_size = check_positive_int("batch_size", batch_size)
    if not torch.is_tensor(images) or images.dim() != 4 or images.shape[0] == 0:
        got = tuple(images.shape) if torch.is_tensor(images) else type(images).__name__
        raise ValueError(f"images must be a non-empty tensor [N, C, H, W], got {got}")
    param = next(vae.parameters())
    was_training = vae.training
    vae.eval()
    try:
        latents = []
        for start in range(0, images.shape[0], batch_size):
            batch = images[start : start + batch_size].to(param.device, param.dtype)
            posterior = vae.encode(batch)
            z = posterior.mode() if use_mode else posterior.sample(generator)
            latents.append(z.float().cpu())
    finally:
        vae.train(was_training)
    # sigma_hat: std over every number of every latent, around their mean
    std = torch.cat(latents).std(correction=0).item()
    if not std > 0:
        raise ValueError(f"the latents have std {std}: cannot scale them to unit variance")
    return 1.0 / std
