"""What every training recipe shares: the :class:`Task` it returns, its budgets, its shapes-world
data, and ONE diffusion loss (pixels, latents, with or without a text context).

A task builds its model, a ``loss(model, generator, batch_size)`` that draws its own batch from
the step's generator (so a step is the same whether or not the run was interrupted before it;
see :mod:`minildm.training`), the config stored with its checkpoints, and the training settings
of each budget.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from minildm import names
from minildm.checkpoints import load_vae
from minildm.data import ShapesDataset
from minildm.diffusion import add_noise, diffusion_loss, sample_timesteps
from minildm.schedulers import DDPMScheduler
from minildm.training import LossFn, TrainConfig
from minildm.utils import BUDGETS, get_device
from minildm.vae import AutoencoderKL
from minildm.validation import check_choice, check_positive_int, check_probability, check_seed

#: The training presets: "cpu" (the shipped checkpoints' settings) and "gpu" (the full budget on a
#: CUDA GPU: larger batches, fewer steps, at least as many images seen, the learning rate scaled by
#: at most the square root of the batch ratio; each task's budgets say how they were derived).
PRESETS = names.PRESETS  # ("cpu", "gpu")


@dataclass
class Task:
    kind: str  # the checkpoint kind it writes, and the name ``python -m minildm train`` knows it by
    model: torch.nn.Module
    loss: LossFn
    config: dict  # stored in config.json: enough to rebuild the model and its scheduler
    train_config: TrainConfig
    #: called after training with the model holding its EMA weights; returns entries to add to
    #: the checkpoint's config (the VAE's scale factor, estimated from data)
    finalize: Callable[[torch.nn.Module], dict] | None = None


def get_preset(preset: str | None = None, device: str | torch.device | None = None) -> str:
    """``"cpu"`` or ``"gpu"``: ``preset`` if given, else ``$MINILDM_PRESET``, else "gpu" where the
    training device (``device``, default :func:`minildm.utils.get_device`) is a CUDA GPU."""
    choice = preset if preset is not None else os.environ.get("MINILDM_PRESET") or None
    if choice is None:
        return "gpu" if get_device(device).type == "cuda" else "cpu"
    return check_choice("preset (MINILDM_PRESET)", choice, PRESETS)


def train_config(budgets: dict[str, TrainConfig], budget: str, seed: int, preset: str = "cpu") -> TrainConfig:
    """The training settings of ``budget`` ("quick" or "full") with the run's seed; the full budget
    on the "gpu" preset takes ``budgets["gpu"]`` (the quick budget is the same on both)."""
    check_choice("budget", budget, BUDGETS)
    check_choice("preset", preset, PRESETS)
    key = "gpu" if budget == "full" and preset == "gpu" else budget
    return replace(budgets[key], seed=check_seed("seed", seed))


class DeviceCache:
    """A tensor kept on the CPU, with one copy on each other device a training step draws on
    (moved once, the first time it is asked for): the data lives where the batch is drawn."""

    def __init__(self, tensor: torch.Tensor) -> None:
        self.cpu = tensor
        self._copies: dict[str, torch.Tensor] = {}

    def on(self, device: str | torch.device) -> torch.Tensor:
        device = torch.device(device)
        if device.type == "cpu":
            return self.cpu
        if str(device) not in self._copies:
            self._copies[str(device)] = self.cpu.to(device)
        return self._copies[str(device)]


def data_config(
    defaults: dict, seed: int, data_size: int | None, two_object_fraction: float | None = None
) -> dict:
    """The data section of a task's config: ``defaults`` with the seed and, if given, the size and
    the share of two-object scenes (lesson 10's data lever; recorded, so a resume keeps it)."""
    size = defaults["size"] if data_size is None else check_positive_int("data_size", data_size)
    config = dict(defaults, seed=check_seed("seed", seed), size=size)
    if two_object_fraction is None:
        return config
    return dict(config, two_object_fraction=check_probability("two_object_fraction", two_object_fraction))


def shapes_dataset(data_cfg: dict) -> ShapesDataset:
    """The captioned shapes-world training set a data config describes."""
    options = ("image_size", "two_object_fraction", "omit_prob")
    kwargs = {k: data_cfg[k] for k in options if k in data_cfg}
    return ShapesDataset(data_cfg["size"], seed=data_cfg["seed"], **kwargs)


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


@dataclass
class LatentData:
    """A captioned training set encoded once by the frozen VAE (lessons 05-06)."""

    dataset: ShapesDataset
    mean: torch.Tensor  # the posterior of every image, [N, z, h, w], unscaled
    std: torch.Tensor
    scale: float  # the VAE's scale factor, estimated from data when it was trained
    vae_config: dict  # the VAE checkpoint's config, recorded in the U-Net's

    def vae_section(self) -> dict:
        """What the U-Net's config records of its VAE (the pipeline refuses another)."""
        return {"model": self.vae_config["model"], "scale_factor": self.scale}

    def loss(self, scheduler: DDPMScheduler, pick_context: Callable | None = None) -> LossFn:
        """The diffusion loss on fresh posterior samples of these latents (with a text context)."""
        draw_z0 = posterior_sampler(self.mean, self.std, self.scale)
        return diffusion_loss_fn(len(self.mean), draw_z0, scheduler, pick_context)


def latent_data(data_cfg: dict, vae_path: str | Path | None) -> LatentData:
    """The shapes-world images ``data_cfg`` describes, encoded by the VAE in ``vae_path`` (default
    the shipped one)."""
    vae, vae_config = load_vae(vae_path)
    dataset = shapes_dataset(data_cfg)
    mean, std = encode_dataset(vae, dataset.tensors())
    return LatentData(dataset, mean, std, vae_config["scale_factor"], vae_config)


def row_sampler(data: torch.Tensor):
    """``draw(idx, generator)``: the examples ``idx`` of ``data`` (points, images), on the device the
    step's generator draws on (lessons 02-03)."""
    data = DeviceCache(data)

    def draw(idx: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return data.on(generator.device)[idx]

    return draw


def posterior_sampler(mean: torch.Tensor, std: torch.Tensor, scale: float):
    """``draw(idx, generator)``: scaled latents of the examples ``idx``, a fresh sample of each
    posterior every time: $z_0 = f\\,(\\mu + \\sigma \\epsilon)$ (lesson 05)."""

    mean, std = DeviceCache(mean), DeviceCache(std)

    def draw(idx: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        m, s = mean.on(generator.device)[idx], std.on(generator.device)[idx]
        return scale * (m + s * torch.randn(m.shape, generator=generator, device=generator.device))

    return draw


def diffusion_loss_fn(
    num_examples: int,
    draw_x0: Callable[[torch.Tensor, torch.Generator], torch.Tensor],
    scheduler: DDPMScheduler,
    pick_context: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None,
) -> LossFn:
    r"""The DDPM training step of lessons 02-06, on any data:

    1. draw ``batch_size`` example indices and their clean samples $x_0$ (``draw_x0(idx, g)``:
       points, images, or posterior samples of latents);
    2. with ``pick_context(idx, g)``, the text context of those examples (lesson 06);
    3. $t \sim \mathcal{U}\{0..T-1\}$, $\epsilon \sim \mathcal{N}(0, I)$,
       $x_t = \sqrt{\bar\alpha_t} x_0 + \sqrt{1 - \bar\alpha_t} \epsilon$;
    4. the MSE between the network's output and its target ($\epsilon$, $v$ or $x_0$).

    Every draw comes from the step's generator, in this order, on the generator's device (the
    data follows it there); the network runs on its own device. ``shard`` (under torchrun) keeps
    this rank's part of the drawn batch."""
    T = scheduler.config.num_train_timesteps
    prediction_type = scheduler.config.prediction_type
    alphas_cumprod = DeviceCache(scheduler.alphas_cumprod)

    def loss(
        model: torch.nn.Module, generator: torch.Generator, batch_size: int, shard: slice | None = None
    ) -> torch.Tensor:
        device, on = next(model.parameters()).device, generator.device
        idx = torch.randint(num_examples, (batch_size,), generator=generator, device=on)
        x0 = draw_x0(idx, generator)
        context = None if pick_context is None else pick_context(idx, generator)
        t = sample_timesteps(batch_size, T, generator=generator)
        noise = torch.randn(x0.shape, generator=generator, device=on)
        # $x_t = \sqrt{\bar\alpha_t} x_0 + \sqrt{1 - \bar\alpha_t} \epsilon$
        x_t = add_noise(x0, noise, t, alphas_cumprod.on(on))
        if shard is not None:  # this rank's part of the global batch
            x0, noise, t, x_t = x0[shard], noise[shard], t[shard], x_t[shard]
            context = None if context is None else context[shard]
        inputs = (x_t.to(device), t.to(device)) + (() if context is None else (context.to(device),))
        output = model(*inputs)
        target_args = (x0.to(device), noise.to(device), t.to(device), alphas_cumprod.on(device))
        return diffusion_loss(output, *target_args, prediction_type=prediction_type)

    return loss
