"""What ``python -m minildm train <kind>`` can train: one recipe per module, named by the kind of
checkpoint it writes (load it with :func:`minildm.checkpoints.load_pretrained`).

- ``toy2d``: the MLP noise predictor of lesson 02 on the two-peak ("cats and dogs") data;
- ``pixel_ddpm``: the U-Net of lesson 03, a pixel-space DDPM on one-object shapes-world images;
- ``vae``: the ``AutoencoderKL`` of lesson 04 on shapes-world images (one and two objects);
- ``latent_ddpm``: lesson 05's DDPM on the VAE's scaled latents of one-object images;
- ``clip`` and ``text2img``: lesson 06's mini CLIP and text-conditioned U-Net;
- ``lcm``: lesson 11's few-step student, text2img distilled by latent consistency distillation.

Training imports these; inference (pipelines, schedulers, sampling, checkpoints) never does.
"""

from collections.abc import Callable

from minildm import names
from minildm.tasks.clip import CLIP_BUDGETS, CLIP_DATA, clip_task
from minildm.tasks.common import Task, diffusion_loss_fn, encode_dataset, posterior_sampler
from minildm.tasks.latent_ddpm import LATENT_BUDGETS, LATENT_SCHEDULER, LATENT_UNET, latent_ddpm_task
from minildm.tasks.lcm import LCM_BUDGETS, lcm_task
from minildm.tasks.pixel_ddpm import PIXEL_BUDGETS, PIXEL_SCHEDULER, PIXEL_UNET, pixel_ddpm_task
from minildm.tasks.text2img import (
    CAPTION_DROPOUT,
    TEXT2IMG_BUDGETS,
    TEXT2IMG_UNET,
    encode_captions,
    text2img_task,
)
from minildm.tasks.toy2d import TOY2D_BUDGETS, TOY2D_SCHEDULER, toy2d_task
from minildm.tasks.vae import VAE_BUDGETS, VAE_CONFIG, VAE_KL_WEIGHT, vae_task

#: Every recipe by the kind of checkpoint it writes.
TASKS: dict[str, Callable[..., Task]] = {
    "toy2d": toy2d_task,
    "pixel_ddpm": pixel_ddpm_task,
    "vae": vae_task,
    "latent_ddpm": latent_ddpm_task,
    "clip": clip_task,
    "text2img": text2img_task,
    "lcm": lcm_task,
}

#: Every recipe's training settings by budget and preset ("quick", "full", "gpu").
TRAIN_BUDGETS = {
    "toy2d": TOY2D_BUDGETS,
    "pixel_ddpm": PIXEL_BUDGETS,
    "vae": VAE_BUDGETS,
    "latent_ddpm": LATENT_BUDGETS,
    "clip": CLIP_BUDGETS,
    "text2img": TEXT2IMG_BUDGETS,
    "lcm": LCM_BUDGETS,
}

#: Short names the ``train`` command also accepts (the lesson's words).
ALIASES = names.TRAIN_ALIASES



def _check_names() -> None:
    """The command line offers names without importing torch (:mod:`minildm.names`): they must be these."""
    for what, here, named in (
        ("TASKS", TASKS, names.TRAIN_KINDS), ("TRAIN_BUDGETS", TRAIN_BUDGETS, names.TRAIN_KINDS),
    ):
        if tuple(here) != named:
            raise ImportError(f"minildm.tasks: {what} {tuple(here)} and minildm.names' {named} differ")


_check_names()

__all__ = [
    "ALIASES", "CAPTION_DROPOUT", "CLIP_BUDGETS", "CLIP_DATA", "LATENT_BUDGETS", "LATENT_SCHEDULER",
    "LCM_BUDGETS",
    "LATENT_UNET", "PIXEL_BUDGETS", "PIXEL_SCHEDULER", "PIXEL_UNET", "TASKS", "TEXT2IMG_BUDGETS",
    "TEXT2IMG_UNET", "TOY2D_BUDGETS", "TOY2D_SCHEDULER", "TRAIN_BUDGETS", "VAE_BUDGETS", "VAE_CONFIG",
    "VAE_KL_WEIGHT",
    "Task", "clip_task", "diffusion_loss_fn", "encode_captions", "encode_dataset", "latent_ddpm_task",
    "lcm_task", "pixel_ddpm_task", "posterior_sampler", "text2img_task", "toy2d_task", "vae_task",
]
