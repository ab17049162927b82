"""The VAE of latent diffusion: an image <-> a small latent, and the Gaussian in between.

Stable Diffusion does not diffuse pixels. A variational autoencoder (Kingma & Welling, 2014),
trained once and then frozen, squeezes an image into a latent with far fewer numbers
(SD: 3x512x512 -> 4x64x64, 48x fewer), the U-Net diffuses in that latent space, and the
decoder maps the result back to pixels (Rombach et al., 2022, "High-Resolution Image
Synthesis with Latent Diffusion Models").

    x [B, 3, H, W]
      Encoder: conv_in, ResnetBlocks, stride-2 convs, middle (ResnetBlock, AttnBlock,
               ResnetBlock), GroupNorm-SiLU-conv_out      -> [B, 2 * z, H/f, W/f]
      quant_conv (1x1)                                   -> mean and log-variance of q(z | x)
      DiagonalGaussianDistribution: z = mean + std * eps  (the reparameterisation trick)
      post_quant_conv (1x1), Decoder (the mirror image)  -> reconstruction [B, 3, H, W]

with f = ``downsample_factor`` = 2 ** (len(ch_mult) - 1).

Autoencoder or VAE? The plain autoencoder of lesson 04 is the *same network* used
deterministically: take ``encode(x).mode()`` (the mean) and train with ``kl_weight = 0``. The
KL term (a very small weight, 1e-6 as in SD) only keeps the latent near N(0, I) so that it does
not drift to arbitrary scales; the scale that is left is measured from data by
:func:`estimate_scale_factor` (SD's 0.18215).

Names follow CompVis' ``ldm/models/autoencoder.py`` and ``ldm/modules/diffusionmodules/model.py``:
``AutoencoderKL`` (``encoder``, ``decoder``, ``quant_conv``, ``post_quant_conv``), ``Encoder``,
``Decoder`` (``conv_in``, ``down``/``up``, ``mid``, ``norm_out``, ``conv_out``), ``ResnetBlock``
(``norm1``, ``conv1``, ``norm2``, ``conv2``, ``nin_shortcut``), ``AttnBlock`` (``q``, ``k``, ``v``,
``proj_out``) and ``DiagonalGaussianDistribution``.

Layout of the package:

- :mod:`minildm.vae.distributions`: ``DiagonalGaussianDistribution``
- :mod:`minildm.vae.autoencoder`: ``VAEConfig``, ``compression_ratio``, ``ResnetBlock``, ``AttnBlock``,
  ``Encoder``, ``Decoder``, ``AutoencoderKL``
- :mod:`minildm.vae.losses`: ``vae_loss``, ``estimate_scale_factor``
"""

from minildm.vae.autoencoder import (
    AttnBlock,
    AutoencoderKL,
    Decoder,
    Encoder,
    ResnetBlock,
    VAEConfig,
    compression_ratio,
)
from minildm.vae.distributions import DiagonalGaussianDistribution
from minildm.vae.losses import estimate_scale_factor, vae_loss

__all__ = [
    "AttnBlock",
    "AutoencoderKL",
    "Decoder",
    "DiagonalGaussianDistribution",
    "Encoder",
    "ResnetBlock",
    "VAEConfig",
    "compression_ratio",
    "estimate_scale_factor",
    "vae_loss",
]
