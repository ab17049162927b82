"""Same seed, same numbers: pipeline outputs and first training losses compared with stored tensors.

``tests/data/reference_outputs.safetensors`` was written before the architecture was reorganised
(``python tests/test_reference_outputs.py --write``); a refactoring that changes a sampler, a
scheduler, a pipeline or a training loss by more than rounding fails here. A new task adds its first loss
beside the old values, which stay as they were (``loss_lcm``: lesson 11's distillation, added later).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

REFERENCE = Path(__file__).parent / "data" / "reference_outputs.safetensors"
PROMPTS = ["a red circle to the left of a blue square", "a large green triangle in the top left"]


def _sampling_outputs() -> dict[str, torch.Tensor]:
    from minildm.checkpoints import checkpoint_dir, load_pretrained
    from minildm.pipelines import LatentDiffusionPipeline, TextToImagePipeline
    from minildm.sampling import CFGDenoiser, Sampler
    from minildm.schedulers import DDIMScheduler, DDPMScheduler

    out = {}
    model, scheduler, _ = load_pretrained("pixel_ddpm", device="cpu")
    generator = torch.Generator().manual_seed(0)
    out["pixel_ddpm"] = Sampler().sample(
        model, (2, 3, 32, 32), scheduler, 5, generator=generator, progress=False
    )
    latent = LatentDiffusionPipeline.from_pretrained(device="cpu")
    out["latent_pipeline"] = latent(2, 5, seed=0, progress=False).images
    # the U-Net the references were written with (the default is now lesson 11's DiT)
    pipe = TextToImagePipeline.from_pretrained(checkpoint_dir() / "text2img_unet", device="cpu")
    result = pipe(PROMPTS, 5, 3.0, seed=0, progress=False)
    latents = result.latents
    out["text2img_ddim"], out["text2img_ddim_latents"] = result.images, latents
    pipe.scheduler = DDPMScheduler.from_config(pipe.scheduler.config)
    out["text2img_ddpm"] = pipe(PROMPTS, 5, 3.0, seed=0, progress=False).images
    pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config)
    out["text2img_ddim_eta"] = pipe(PROMPTS, 5, 2.0, seed=1, progress=False, eta=0.5).images
    cond = pipe.encode_prompt(PROMPTS)
    out["ddim_inversion"] = Sampler().invert(CFGDenoiser(pipe.backbone, cond), latents, pipe.scheduler, 5,
                                             progress=False)
    return out


def _first_losses() -> dict[str, torch.Tensor]:
    from minildm.checkpoints import checkpoint_dir
    from minildm.tasks import TASKS
    from minildm.training import step_generator

    out = {}
    for name, task_fn in sorted(TASKS.items()):
        kwargs = {} if name == "toy2d" else {"data_size": 64}
        if name == "lcm":  # distilled from the U-Net, as the reference was (and the shipped student is)
            kwargs["teacher"] = checkpoint_dir() / "text2img_unet"
        task = task_fn("quick", seed=0, **kwargs)
        with torch.no_grad():
            out[f"loss_{task.kind}"] = task.loss(task.model, step_generator(0, 3), 8).reshape(1)
    return out


def compute_outputs() -> dict[str, torch.Tensor]:
    with torch.no_grad():
        return {**_sampling_outputs(), **_first_losses()}


@pytest.mark.skipif(not REFERENCE.is_file(), reason="no stored reference outputs")
def test_same_seed_same_outputs_as_stored():
    stored = load_file(str(REFERENCE))
    now = compute_outputs()
    assert sorted(now) == sorted(stored)
    for name, value in stored.items():
        torch.testing.assert_close(now[name].float().cpu(), value, rtol=1e-4, atol=1e-5, msg=name)


if __name__ == "__main__" and "--write" in sys.argv:
    save_file({k: v.float().cpu().contiguous() for k, v in compute_outputs().items()}, str(REFERENCE))
    print(f"wrote {REFERENCE}")
