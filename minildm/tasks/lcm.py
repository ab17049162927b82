r"""Lesson 11's few-step student: latent consistency distillation (Luo et al., 2023) of the
text-to-image model, with classifier-free guidance folded in.

The teacher's guided probability-flow ODE carries each noisy latent $z_t$ to one clean latent. A
*consistency function* $f_\theta(z_t, t)$ jumps straight to that end point from anywhere on the
trajectory, so it must give the same answer at two points of one trajectory. Distillation makes it so
on the skipping-step schedule $t_n = 20 n - 1$ (``original_inference_steps`` = 50, $k = 20$), at every step:

1. draw a training latent $z_0$, its caption $c$, a step $n$, and $z_{t_{n}} = \sqrt{\bar\alpha}\, z_0 +
   \sqrt{1 - \bar\alpha}\, \epsilon$ at $t_{n}$;
2. the **teacher** takes one guided DDIM step ($\eta = 0$) from $t_n$ to $t_n - k$ (or 0), with
   $\hat v = v(z, \varnothing) + w\,(v(z, c) - v(z, \varnothing))$, $w = 3$: a point $\hat z$ on the same
   guided trajectory;
3. the target is the answer there of the *target network* $\theta^-$, the exponential moving average of
   the student's weights (decay 0.95, as in LCM; the training loop's EMA, so a resumed run is exact), without
   gradient: $f_{\theta^-}(\hat z, t_n - k)$; at $t = 0$ the boundary condition makes it $\hat z$ itself.
   (With $\theta^- = \theta$ the chain of targets drifted here: the many-step samples got worse as training
   went on);
4. the loss is $\lVert f_\theta(z_{t_n}, t_n) - f_{\theta^-}(\hat z, t_n - k) \rVert^2$ (``"l2"``), or the
   pseudo-Huber distance $\sqrt{\lVert \cdot \rVert^2 + c^2} - c$, $c = 0.00054 \sqrt{d}$ for $d$ numbers
   per latent (``"huber"``, Song & Dhariwal 2023), which lets the largest errors pull less.

``original_steps`` (N) sets the skipping step $k = T / N$: 25 makes the teacher's steps exactly those of
the DDIM-25 sampler the student is measured against, with half as many links in the chain of targets.

$f_\theta = c_\text{skip}\, z + c_\text{out}\, \hat z_0(\text{U-Net}(z, t, c))$
(:meth:`~minildm.schedulers.LCMScheduler.consistency_function`). The student starts from the teacher's
weights and has its architecture; it samples with :class:`~minildm.schedulers.LCMScheduler` in 1 to 8
steps and one network call per step (the guidance is in the weights: no unconditional pass).
"""

from __future__ import annotations

import copy
from dataclasses import replace
from pathlib import Path

import torch

from minildm import names
from minildm.checkpoint_config import CheckpointConfig, Distillation, TextEncoderRef
from minildm.checkpoints import checkpoint_folder, load_pretrained
from minildm.diffusion import add_noise
from minildm.guidance import CFGDenoiser
from minildm.schedulers import LCMScheduler, SchedulerMixin
from minildm.tasks.common import (
    DeviceCache,
    Task,
    data_config,
    get_preset,
    latent_data,
    posterior_sampler,
    train_config,
)
from minildm.tasks.text2img import TEXT2IMG_DATA, _load_text_encoder, encode_captions
from minildm.training import TrainConfig
from minildm.utils import check_positive_int

#: what the student is distilled for: guidance w folded in, N skipping steps, sampled in 1-8 steps
LCM_GUIDANCE = 3.0
LCM_ORIGINAL_STEPS = 50
LCM_STEPS = (1, 2, 4, 8)  # the step counts the student is measured at (others warn)
LCM_LOSSES = names.CONSISTENCY_LOSSES  # ("l2", "huber")
LCM_BUDGETS = {
    "quick": TrainConfig(steps=20, batch_size=16, lr=2e-5, warmup_steps=5, checkpoint_every=20,
                         ema_decay=0.95),
    "full": TrainConfig(steps=2_000, batch_size=64, lr=2e-5, warmup_steps=100, checkpoint_every=250,
                        ema_decay=0.95),
    # on a GPU: 8x the batch, 500 steps (2x the examples seen)
    "gpu": TrainConfig(steps=500, batch_size=512, lr=5e-5, warmup_steps=50, checkpoint_every=250,
                       ema_decay=0.95),
}


# long: the teacher, the student and the data are read and checked in turn before any work
def lcm_task(
    budget: str = "quick",
    seed: int = 0,
    data_size: int | None = None,
    teacher: str | Path | None = None,
    vae_path: str | Path | None = None,
    text_encoder_path: str | Path | None = None,
    preset: str | None = None,
    original_steps: int = LCM_ORIGINAL_STEPS,
    consistency_loss: str = "l2",
) -> Task:
    """Distil the text-to-image model in ``teacher`` (default ``data/checkpoints/text2img``; a U-Net or
    lesson 11's DiT) into a consistency student of the same backbone; its latents and captions are the
    teacher's training distribution (held-out pairs still out), encoded by its VAE and text encoder
    (default the shipped ones, refused if they are not the teacher's). ``original_steps`` and
    ``consistency_loss``: the module docstring."""
    preset = get_preset(preset)
    _check_options(original_steps, consistency_loss)
    teacher_net, teacher_scheduler, teacher_cfg = load_pretrained("text2img", teacher, device="cpu")
    folder = checkpoint_folder("text2img", teacher)  # (the sections read below, checked first)
    typed = CheckpointConfig.from_dict(teacher_cfg, folder).require("vae", "text_encoder", folder=folder)
    if typed.distillation is not None:
        raise ValueError("--teacher must be a text2img checkpoint (U-Net or DiT) trained by `train text2img` "
                         f"(got one with model {[typed.backbone]}, itself distilled)")
    timesteps = teacher_scheduler.config.num_train_timesteps
    if original_steps > timesteps:
        raise ValueError(f"--original-steps must be at most the teacher's {timesteps} training timesteps, "
                         f"got {original_steps}")
    data_cfg = data_config(teacher_cfg.get("data", TEXT2IMG_DATA), seed, data_size)
    data = latent_data(data_cfg, vae_path)
    # the layer the teacher read
    text_encoder, encoder_ref = _load_text_encoder(text_encoder_path, typed.text_encoder.clip_skip)
    _check_parts(typed, data.vae_section(), encoder_ref)
    contexts, caption_index = encode_captions(text_encoder, data.dataset.captions)
    uncond = text_encoder([""]).cpu()
    scheduler = LCMScheduler.from_config(dict(vars(teacher_scheduler.config),
                                              original_inference_steps=original_steps))
    distillation = Distillation(
        steps=tuple(n for n in LCM_STEPS if n <= original_steps), original_inference_steps=original_steps,
        timestep_scaling=scheduler.config.timestep_scaling, guidance_scale=LCM_GUIDANCE, method="lcm",
        loss=consistency_loss,
        teacher=str(Path(teacher).resolve()) if teacher is not None else "data/checkpoints/text2img",
    )
    # the teacher's network, schedule, VAE and text encoder; stored in half precision: the student ships
    # beside its teacher, and fp16 rounding of the weights moves its samples far less than the judge can
    # see (measured against the float32 EMA weights: the figures are in docs/results.md)
    config = replace(typed, distillation=distillation, weights_dtype="float16",
                     extra={"data": data_cfg, "preset": preset}).to_dict()
    draw_z0 = posterior_sampler(data.mean, data.std, data.scale)
    contexts, caption_index = DeviceCache(contexts), DeviceCache(caption_index)

    def pick_context(idx: torch.Tensor, on: torch.device) -> torch.Tensor:
        return contexts.on(on)[caption_index.on(on)[idx]]

    teacher_net.requires_grad_(False).eval()
    loss = consistency_loss_fn(len(data.mean), draw_z0, pick_context, DeviceCache(uncond), teacher_net,
                               scheduler, distance=consistency_loss)
    torch.manual_seed(seed)
    student = type(teacher_net)(teacher_net.config)  # the teacher's backbone: lesson 06's U-Net or the DiT
    student.load_state_dict(teacher_net.state_dict())  # the student starts as the teacher
    return Task("lcm", student, loss, config, train_config(LCM_BUDGETS, budget, seed, preset))


def _check_options(original_steps: int, consistency_loss: str) -> None:
    check_positive_int("--original-steps", original_steps)
    if consistency_loss not in LCM_LOSSES:
        raise ValueError(f"--consistency-loss must be one of {', '.join(LCM_LOSSES)}, "
                         f"got {consistency_loss!r}")


def _check_parts(teacher: CheckpointConfig, vae_section: dict, encoder: TextEncoderRef) -> None:
    """The VAE and the text encoder must be the ones the teacher was trained with."""
    if vae_section["model"] != teacher.vae.model:
        raise ValueError("--vae is not the VAE the teacher was trained with")
    if encoder.model != teacher.text_encoder.model:
        raise ValueError("--text-encoder is not the text encoder the teacher was trained with")


def consistency_loss_fn(num_examples: int, draw_z0, pick_context, uncond: DeviceCache,
                        teacher: torch.nn.Module, scheduler: LCMScheduler, guidance: float = LCM_GUIDANCE,
                        distance: str = "l2"):
    r"""The distillation step of the module docstring, for ``train``: every draw from the step's
    generator, on its device; ``shard`` keeps this rank's part of the batch (under torchrun)."""
    origin = torch.from_numpy(scheduler.origin_timesteps())  # $t_n = n k - 1$: 19, 39, ..., 999
    k = scheduler.config.num_train_timesteps // scheduler.config.original_inference_steps
    abar = DeviceCache(scheduler.alphas_cumprod)

    target_net = copy.deepcopy(teacher).requires_grad_(False)  # holds the EMA weights, step by step

    def loss(model: torch.nn.Module, generator: torch.Generator, batch_size: int,
             shard: slice | None = None, ema=None) -> torch.Tensor:
        device, on = next(model.parameters()).device, generator.device
        idx = torch.randint(num_examples, (batch_size,), generator=generator, device=on)
        z0, context = draw_z0(idx, generator), pick_context(idx, on)
        n = torch.randint(len(origin), (batch_size,), generator=generator, device=on)
        t = origin.to(on)[n]
        t_prev = (t - k).clamp_min(0)
        noise = torch.randn(z0.shape, generator=generator, device=on)
        z_t = add_noise(z0, noise, t, abar.on(on))  # $z_{t_n}$, as in training
        if shard is not None:
            z_t, t, t_prev, context = z_t[shard], t[shard], t_prev[shard], context[shard]
        z_t, t, t_prev, context = z_t.to(device), t.to(device), t_prev.to(device), context.to(device)
        teacher.to(device), target_net.to(device)
        target_net.load_state_dict(ema.state_dict() if ema is not None else model.state_dict())
        with torch.no_grad():
            z_prev = guided_ddim_step(teacher, z_t, t, t_prev, context, uncond.on(device), abar.on(device),
                                       guidance, scheduler)
            target = scheduler.consistency_function(target_net(z_prev, t_prev, context), t_prev, z_prev)
        prediction = scheduler.consistency_function(model(z_t, t, context), t, z_t)
        return consistency_distance(prediction, target, distance)

    loss.needs_ema = True  # train() passes its EMA: the target network
    return loss


def consistency_distance(prediction: torch.Tensor, target: torch.Tensor, kind: str = "l2") -> torch.Tensor:
    r"""``"l2"``: the mean squared error; ``"huber"``: the mean over the batch of the pseudo-Huber
    distance $\sqrt{\lVert p - y \rVert^2 + c^2} - c$ of each latent, $c = 0.00054 \sqrt{d}$."""
    if kind == "l2":
        return torch.nn.functional.mse_loss(prediction, target)
    if kind != "huber":
        raise ValueError(f"kind must be one of {', '.join(LCM_LOSSES)}, got {kind!r}")
    d = prediction[0].numel()
    c = 0.00054 * d**0.5
    squared = (prediction - target).pow(2).flatten(1).sum(1)
    return ((squared + c * c).sqrt() - c).mean()


def guided_ddim_step(
    teacher, z_t, t, t_prev, context, uncond, abar, guidance, scheduler: SchedulerMixin
) -> torch.Tensor:
    r"""One deterministic DDIM step of the guided teacher, $t \to t'$ (lesson 07):
    $z_{t'} = \sqrt{\bar\alpha_{t'}}\, \hat z_0 + \sqrt{1 - \bar\alpha_{t'}}\, \hat\epsilon$."""
    # classifier-free guidance (lesson 06), in one batch [cond, uncond] at each sample's own t
    out = CFGDenoiser(teacher, context, uncond, guidance, uncond_first=False)(z_t, t)
    # $\hat z_0$ and $\hat\epsilon$ as DDIMScheduler.step reads them, at each sample's own timestep
    z0_hat, eps_hat = scheduler.predict_x0_and_eps(out, z_t, abar[t])
    a_prev = abar[t_prev].reshape(-1, 1, 1, 1)
    return a_prev.sqrt() * z0_hat + (1 - a_prev).sqrt() * eps_hat
