"""What ``python -m minildm train <what>`` can train, and how to load what it made.

Each task builds its model, a ``loss(model, generator, batch_size)`` that draws its own batch
from the step's generator, the config stored with its checkpoints, and the training settings of
each budget:

- ``toy2d``: the MLP noise predictor of lesson 02 on the two-peak ("cats and dogs") data;
- ``pixel``: the U-Net of lesson 03, a pixel-space DDPM on one-object shapes-world images.
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


TASKS: dict[str, Callable[..., Task]] = {"toy2d": toy2d_task, "pixel": pixel_task}


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
    if kind == "toy2d":
        return MLPDenoiser(MLPConfig.from_dict(config["model"]["mlp"]))
    if kind == "pixel_ddpm":
        return UNetModel(UNetConfig.from_dict(config["model"]["unet"]))
    raise ValueError(f"unknown checkpoint kind {kind!r}; expected 'toy2d' or 'pixel_ddpm'")


def load_pretrained(
    kind: str, path: str | Path | None = None, device: str | torch.device | None = None
) -> tuple[torch.nn.Module, DDPMScheduler, dict]:
    """Load a trained model: ``(model in eval mode, its scheduler, its config)``.

    ``path`` defaults to the shipped checkpoint ``data/checkpoints/<kind>``. A checkpoint of
    another kind, or whose weights do not fit its config, raises a ``ValueError``."""
    folder = Path(path) if path is not None else checkpoint_dir() / kind
    config = read_config(folder, expected_kind=kind)
    model = load_weights(folder, build_model(config))
    return model.to(get_device(device)).eval(), scheduler_from_config(config), config
