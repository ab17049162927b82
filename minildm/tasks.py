"""What ``python -m minildm train <what>`` can train, and how to load what it made.

Each task builds its model, a ``loss(model, generator, batch_size)`` that draws its own batch
from the step's generator, the config stored with its checkpoints, and the training settings of
each budget:

- ``toy2d``: the MLP noise predictor of lesson 02 on the two-peak ("cats and dogs") data;
- ``pixel``: the U-Net of lesson 03, a pixel-space DDPM on one-object shapes-world images;
- ``vae``: the ``AutoencoderKL`` of lesson 04 on shapes-world images (one and two objects);
- ``latent``: lesson 05's DDPM on the VAE's scaled latents of one-object images;
- ``clip`` and ``text2img``: lesson 06's mini CLIP and text-conditioned U-Net
  (``minildm.text_tasks``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from minildm.checkpoints import load_weights, read_config
from minildm.data import ShapesDataset, two_peaks
from minildm.diffusion import add_noise, diffusion_loss, sample_timesteps
from minildm.nn import UNetConfig, UNetModel
from minildm.nn.mlp import MLPConfig, MLPDenoiser
from minildm.samplers import DDPMScheduler
from minildm.training import TrainConfig
from minildm.utils import get_device
from minildm.vae import AutoencoderKL, VAEConfig, estimate_scale_factor, vae_loss


def checkpoint_dir() -> Path:
    """Where shipped checkpoints live: ``data/checkpoints`` of the repository (or
    ``$MINILDM_CHECKPOINTS``)."""
    env = os.environ.get("MINILDM_CHECKPOINTS")
    return Path(env) if env else Path(__file__).resolve().parents[1] / "data" / "checkpoints"


@dataclass
class Task:
    kind: str
    model: torch.nn.Module
    loss: Callable[[torch.nn.Module, torch.Generator, int], torch.Tensor]
    config: dict  # stored in config.json: enough to rebuild the model and its scheduler
    train_config: TrainConfig
    #: called after training with the model holding its EMA weights; returns entries to add to
    #: the checkpoint's config (the VAE's scale factor, estimated from data)
    finalize: Callable[[torch.nn.Module], dict] | None = None


def scheduler_from_config(config: dict) -> DDPMScheduler:
    return DDPMScheduler(**config["scheduler"])


def _diffusion_loss_fn(data: torch.Tensor, scheduler: DDPMScheduler):
    """The DDPM training step on a fixed tensor of examples (points or images)."""
    prediction_type = scheduler.config.prediction_type
    T = scheduler.config.num_train_timesteps

    def loss(model: torch.nn.Module, generator: torch.Generator, batch_size: int) -> torch.Tensor:
        device = next(model.parameters()).device
        idx = torch.randint(len(data), (batch_size,), generator=generator)
        x0 = data[idx]
        t = sample_timesteps(batch_size, T, generator=generator)
        noise = torch.randn(x0.shape, generator=generator)
        # $x_t = \sqrt{\bar\alpha_t} x_0 + \sqrt{1 - \bar\alpha_t} \epsilon$
        x_t = add_noise(x0, noise, t, scheduler.alphas_cumprod)
        output = model(x_t.to(device), t.to(device))
        target_args = (x0.to(device), noise.to(device), t.to(device), scheduler.alphas_cumprod.to(device))
        return diffusion_loss(output, *target_args, prediction_type=prediction_type)

    return loss


# ------------------------------------------------------------------------------ toy2d

TOY2D_SCHEDULER = dict(num_train_timesteps=1000, beta_schedule="linear", clip_sample=False)
TOY2D_BUDGETS = {
    "quick": TrainConfig(steps=300, batch_size=256, lr=2e-3, warmup_steps=20, checkpoint_every=300),
    "full": TrainConfig(steps=4000, batch_size=512, lr=2e-3, warmup_steps=100, checkpoint_every=1000),
}


def toy2d_task(budget: str = "quick", seed: int = 0) -> Task:
    points, _ = two_peaks(20_000, seed=seed)
    mlp = MLPConfig()
    scheduler = DDPMScheduler(**TOY2D_SCHEDULER)
    config = {
        "kind": "toy2d",
        "model": {"mlp": mlp.to_dict()},
        "scheduler": TOY2D_SCHEDULER,
        "data": {"name": "two_peaks", "n": 20_000, "seed": seed},
    }
    cfg = _with_seed(TOY2D_BUDGETS[_check_budget(budget)], seed)
    torch.manual_seed(seed)  # the initial weights depend on the seed alone
    return Task("toy2d", MLPDenoiser(mlp), _diffusion_loss_fn(points, scheduler), config, cfg)


# ------------------------------------------------------------------------------ pixel

#: Cosine schedule and v-prediction: the network's target stays well scaled at high noise,
#: where an eps-predicting pixel model goes wrong (see lesson 03 and course.md's notes).
PIXEL_SCHEDULER = dict(
    num_train_timesteps=1000,
    beta_schedule="squaredcos_cap_v2",
    prediction_type="v_prediction",
    clip_sample=True,
    timestep_spacing="trailing",
)
PIXEL_UNET = UNetConfig(
    in_channels=3,
    out_channels=3,
    model_channels=32,
    channel_mult=(1, 2, 2),
    num_res_blocks=1,
    attention_levels=(2,),
    image_size=32,
)
PIXEL_DATA = {"name": "shapes", "size": 20_000, "two_object_fraction": 0.0, "image_size": 32}
PIXEL_BUDGETS = {
    "quick": TrainConfig(steps=40, batch_size=32, lr=3e-4, warmup_steps=10, checkpoint_every=40),
    "full": TrainConfig(
        steps=2000, batch_size=64, lr=3e-4, warmup_steps=100, checkpoint_every=100, ema_decay=0.999
    ),
}


def pixel_task(budget: str = "quick", seed: int = 0, data_size: int | None = None) -> Task:
    data_cfg = dict(PIXEL_DATA, seed=seed, size=data_size or PIXEL_DATA["size"])
    images = ShapesDataset(
        data_cfg["size"],
        seed=seed,
        image_size=data_cfg["image_size"],
        two_object_fraction=data_cfg["two_object_fraction"],
    ).tensors()
    scheduler = DDPMScheduler(**PIXEL_SCHEDULER)
    config = {
        "kind": "pixel_ddpm",
        "model": {"unet": PIXEL_UNET.to_dict()},
        "scheduler": PIXEL_SCHEDULER,
        "data": data_cfg,
    }
    cfg = _with_seed(PIXEL_BUDGETS[_check_budget(budget)], seed)
    torch.manual_seed(seed)  # the initial weights depend on the seed alone
    return Task("pixel_ddpm", UNetModel(PIXEL_UNET), _diffusion_loss_fn(images, scheduler), config, cfg)


# ------------------------------------------------------------------------------ vae

#: Channels 16, 32, 64 at 32, 16 and 8 pixels: cheap at full resolution, where a CPU spends its time.
VAE_CONFIG = VAEConfig(ch=16, ch_mult=(1, 2, 4), z_channels=4, num_res_blocks=1, image_size=32)
VAE_KL_WEIGHT = 1e-5
VAE_DATA = {"name": "shapes", "size": 20_000, "two_object_fraction": 0.3, "image_size": 32}
VAE_BUDGETS = {
    "quick": TrainConfig(steps=40, batch_size=32, lr=1e-3, warmup_steps=10, checkpoint_every=40),
    "full": TrainConfig(
        steps=2000, batch_size=32, lr=1e-3, warmup_steps=100, checkpoint_every=100, ema_decay=0.999
    ),
}


def vae_task(budget: str = "quick", seed: int = 0, data_size: int | None = None) -> Task:
    data_cfg = dict(VAE_DATA, seed=seed, size=data_size or VAE_DATA["size"])
    images = ShapesDataset(
        data_cfg["size"],
        seed=seed,
        image_size=data_cfg["image_size"],
        two_object_fraction=data_cfg["two_object_fraction"],
    ).tensors()
    config = {
        "kind": "vae",
        "model": {"vae": VAE_CONFIG.to_dict()},
        "kl_weight": VAE_KL_WEIGHT,
        "data": data_cfg,
    }

    def loss(model: torch.nn.Module, generator: torch.Generator, batch_size: int) -> torch.Tensor:
        device = next(model.parameters()).device
        x = images[torch.randint(len(images), (batch_size,), generator=generator)].to(device)
        reconstruction, posterior = model(x, sample_posterior=True, generator=generator)
        return vae_loss(reconstruction, x, posterior, kl_weight=VAE_KL_WEIGHT)[0]

    def finalize(model: torch.nn.Module) -> dict:
        # SD's 0.18215 was estimated the same way: 1 / std of the latents of training images
        sample = images[torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))[:4096]]
        device = next(model.parameters()).device
        scale = estimate_scale_factor(
            model.eval(), sample.to(device), generator=torch.Generator().manual_seed(seed)
        )
        return {"scale_factor": scale}

    cfg = _with_seed(VAE_BUDGETS[_check_budget(budget)], seed)
    torch.manual_seed(seed)
    return Task("vae", AutoencoderKL(VAE_CONFIG), loss, config, cfg, finalize)


# ------------------------------------------------------------------------------ latent

LATENT_UNET = UNetConfig(
    in_channels=4,
    out_channels=4,
    model_channels=64,
    channel_mult=(1, 2),
    num_res_blocks=1,
    attention_levels=(1,),
    image_size=8,
)
#: Lesson 03's schedule, but no clipping of the predicted z_0 to [-1, 1]: pixels live in [-1, 1],
#: latents do not (their mean is about -1 and the background's code is below -2 in one channel),
#: so clipping would pull every sample toward the wrong colours (as in Stable Diffusion, whose
#: schedulers use ``clip_sample=False``).
LATENT_SCHEDULER = dict(PIXEL_SCHEDULER, clip_sample=False)
LATENT_DATA = {"name": "shapes", "size": 20_000, "two_object_fraction": 0.0, "image_size": 32}
LATENT_BUDGETS = {
    "quick": TrainConfig(steps=40, batch_size=64, lr=3e-4, warmup_steps=10, checkpoint_every=40),
    "full": TrainConfig(
        steps=2500, batch_size=64, lr=3e-4, warmup_steps=100, checkpoint_every=100, ema_decay=0.999
    ),
}


@torch.no_grad()
def encode_dataset(vae: AutoencoderKL, images: torch.Tensor, batch_size: int = 256):
    """The posterior of every image: ``(mean, std)``, each ``[N, z, h, w]``, unscaled."""
    means, stds = [], []
    device = next(vae.parameters()).device
    for i in range(0, len(images), batch_size):
        posterior = vae.encode(images[i : i + batch_size].to(device))
        means.append(posterior.mean.cpu())
        stds.append(posterior.std.cpu())
    return torch.cat(means), torch.cat(stds)


def latent_diffusion_loss(
    mean: torch.Tensor,
    std: torch.Tensor,
    scale: float,
    scheduler: DDPMScheduler,
    pick_context: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None,
) -> Callable[[torch.nn.Module, torch.Generator, int], torch.Tensor]:
    """The loss of a DDPM on scaled VAE latents (lesson 05), given the encoded dataset's posterior
    ``mean`` and ``std``. With ``pick_context(idx, generator)`` the U-Net is also given the
    context of the drawn examples (lesson 06); it is called after the latents are drawn."""
    T = scheduler.config.num_train_timesteps

    def loss(model: torch.nn.Module, generator: torch.Generator, batch_size: int) -> torch.Tensor:
        device = next(model.parameters()).device
        idx = torch.randint(len(mean), (batch_size,), generator=generator)
        # a fresh sample of the posterior every time: z = mu + sigma * eps, then scaled
        z0 = scale * (mean[idx] + std[idx] * torch.randn(mean[idx].shape, generator=generator))
        context = None if pick_context is None else pick_context(idx, generator).to(device)
        t = sample_timesteps(batch_size, T, generator=generator)
        noise = torch.randn(z0.shape, generator=generator)
        z_t = add_noise(z0, noise, t, scheduler.alphas_cumprod)
        inputs = (z_t.to(device), t.to(device)) + (() if context is None else (context,))
        output = model(*inputs)
        target_args = (z0.to(device), noise.to(device), t.to(device), scheduler.alphas_cumprod.to(device))
        return diffusion_loss(output, *target_args, prediction_type=scheduler.config.prediction_type)

    return loss


def latent_task(
    budget: str = "quick", seed: int = 0, data_size: int | None = None, vae_path: str | Path | None = None
) -> Task:
    """DDPM on ``scale_factor * z`` with ``z ~ q(z | x)`` from the shipped (frozen) VAE."""
    vae, vae_config = load_vae(vae_path)
    scale = vae_config["scale_factor"]
    data_cfg = dict(LATENT_DATA, seed=seed, size=data_size or LATENT_DATA["size"])
    images = ShapesDataset(
        data_cfg["size"],
        seed=seed,
        image_size=data_cfg["image_size"],
        two_object_fraction=data_cfg["two_object_fraction"],
    ).tensors()
    mean, std = encode_dataset(vae, images)
    scheduler = DDPMScheduler(**LATENT_SCHEDULER)
    config = {
        "kind": "latent_ddpm",
        "model": {"unet": LATENT_UNET.to_dict()},
        "scheduler": LATENT_SCHEDULER,
        "data": data_cfg,
        "vae": {"model": vae_config["model"], "scale_factor": scale},
    }
    loss = latent_diffusion_loss(mean, std, scale, scheduler)
    cfg = _with_seed(LATENT_BUDGETS[_check_budget(budget)], seed)
    torch.manual_seed(seed)
    return Task("latent_ddpm", UNetModel(LATENT_UNET), loss, config, cfg)


def clip_task(budget: str = "quick", seed: int = 0, data_size: int | None = None) -> Task:
    """Lesson 06's mini CLIP (see :func:`minildm.text_tasks.clip_task`)."""
    from minildm.text_tasks import clip_task as make

    return make(budget, seed=seed, data_size=data_size)


def text2img_task(budget: str = "quick", seed: int = 0, data_size: int | None = None, **kwargs) -> Task:
    """Lesson 06's text-conditioned latent U-Net (see :func:`minildm.text_tasks.text2img_task`)."""
    from minildm.text_tasks import text2img_task as make

    return make(budget, seed=seed, data_size=data_size, **kwargs)


TASKS: dict[str, Callable[..., Task]] = {
    "toy2d": toy2d_task,
    "pixel": pixel_task,
    "vae": vae_task,
    "latent": latent_task,
    "clip": clip_task,
    "text2img": text2img_task,
}


def _check_budget(budget: str) -> str:
    if budget not in ("quick", "full"):
        raise ValueError(f"budget must be 'quick' or 'full', got {budget!r}")
    return budget


def _with_seed(cfg: TrainConfig, seed: int) -> TrainConfig:
    from dataclasses import replace

    return replace(cfg, seed=seed)


# ------------------------------------------------------------------------------ loading


def build_model(config: dict) -> torch.nn.Module:
    """The (untrained) model a checkpoint config describes."""
    kind = config.get("kind")
    if kind in KINDS and "model" not in config:
        raise ValueError(f"the {kind!r} checkpoint config has no 'model' section")
    if kind == "toy2d":
        return MLPDenoiser(MLPConfig.from_dict(config["model"]["mlp"]))
    if kind in ("pixel_ddpm", "latent_ddpm", "text2img"):
        return UNetModel(UNetConfig.from_dict(config["model"]["unet"]))
    if kind == "vae":
        return AutoencoderKL(VAEConfig.from_dict(config["model"]["vae"]))
    if kind == "clip":
        from minildm.text import MiniCLIPConfig, build_clip, load_tokenizer

        return build_clip(MiniCLIPConfig.from_dict(config["model"]["clip"]), load_tokenizer())
    raise ValueError(f"unknown checkpoint kind {kind!r}; expected one of {sorted(KINDS)}")


KINDS = ("toy2d", "pixel_ddpm", "vae", "latent_ddpm", "clip", "text2img")


def load_pretrained(
    kind: str, path: str | Path | None = None, device: str | torch.device | None = None
) -> tuple[torch.nn.Module, DDPMScheduler | None, dict]:
    """Load a trained model: ``(model in eval mode, its scheduler, its config)``.

    ``path`` defaults to the shipped checkpoint ``data/checkpoints/<kind>``. A checkpoint of
    another kind, or whose weights do not fit its config, raises a ``ValueError``."""
    folder = Path(path) if path is not None else checkpoint_dir() / kind
    config = read_config(folder, expected_kind=kind)
    model = load_weights(folder, build_model(config))
    scheduler = scheduler_from_config(config) if "scheduler" in config else None  # clip has none
    return model.to(get_device(device)).eval(), scheduler, config


def load_vae(
    path: str | Path | None = None, device: str | torch.device | None = None
) -> tuple[AutoencoderKL, dict]:
    """Load a trained VAE: ``(model in eval mode, config)``; ``config["scale_factor"]`` is the
    latent scale estimated from data when it was trained (``python -m minildm train vae``)."""
    folder = Path(path) if path is not None else checkpoint_dir() / "vae"
    config = read_config(folder, expected_kind="vae")
    model = load_weights(folder, build_model(config))
    if "scale_factor" not in config:
        raise ValueError(f"VAE checkpoint {str(folder)!r} has no scale_factor in its config.json")
    return model.to(get_device(device)).eval(), config
