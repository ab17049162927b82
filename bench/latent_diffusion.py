"""Benchmark lessons 04-05: the VAE's reconstructions, latent samples, and latent vs pixel cost.

    python bench/latent_diffusion.py [--n 256] [--steps 100] [--heldout 500]

Prints:
- the judge's score and the PSNR of the shipped VAE's reconstructions of held-out renders
  (``split="all"``: held-out colour-shape pairs included, a seed no training run used);
- the fraction of latent-diffusion samples that are one clean object, and their mix;
- the time of a training step (batch 64, forward + backward + AdamW) and of sampling (20 steps,
  batch 16, per image, VAE decode included) for the same U-Net (``LATENT_UNET``) on 3x32x32
  pixels and on 4x8x8 latents, and for lesson 03's narrower pixel U-Net, with the ratios.
Timings use however many threads PyTorch has; run nothing else meanwhile.
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import replace

import torch
import torch.nn.functional as F

from minildm.checkpoints import load_vae
from minildm.data import ShapesDataset
from minildm.metrics import clean_object_report, score
from minildm.metrics.checkpoint_quality import psnr
from minildm.nn import UNetConfig, UNetModel
from minildm.pipelines import LatentDiffusionPipeline
from minildm.sampling import Sampler
from minildm.schedulers import DDPMScheduler
from minildm.tasks import LATENT_SCHEDULER, LATENT_UNET, PIXEL_UNET

IMAGE, LATENT = (3, 32, 32), (4, 8, 8)


def train_step_seconds(config: UNetConfig, shape: tuple[int, ...],
                       batch: int = 64, repeats: int = 3) -> float:
    """Median time of one optimisation step of a fresh U-Net, after one warm-up step."""
    torch.manual_seed(0)
    net = UNetModel(config)
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-4)
    x, t = torch.randn(batch, *shape), torch.randint(0, 1000, (batch,))
    times = []
    for _ in range(1 + repeats):
        start = time.perf_counter()
        loss = F.mse_loss(net(x, t), x)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:])


def sample_seconds(fn, n: int) -> float:
    fn()  # warm-up
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=256, help="latent samples to judge")
    parser.add_argument("--steps", type=int, default=100, help="DDPM steps for those samples")
    parser.add_argument("--heldout", type=int, default=500, help="held-out renders to reconstruct")
    args = parser.parse_args()

    vae, vae_config = load_vae()
    held_out = ShapesDataset(args.heldout, seed=12345, split="all")
    x = held_out.tensors()
    with torch.no_grad():
        recon = torch.cat([vae.decode(vae.encode(x[i : i + 250]).mode()) for i in range(0, len(x), 250)])
    result, quality = score(recon.clamp(-1, 1), held_out.captions), psnr(recon, x)
    print(f"VAE ({vae_config['steps_trained']} steps): judge {result['score']:.1%} on {result['n']} held-out "
          f"reconstructions (held-out pairs {result['heldout']:.1%}); PSNR {quality.mean():.1f} dB "
          f"(worst {quality.min():.1f} dB); scale factor {vae_config['scale_factor']:.4f}")

    pipe = LatentDiffusionPipeline.from_pretrained(device="cpu")
    start = time.perf_counter()
    batches = [pipe(min(64, args.n - i), args.steps, seed=i, progress=False).images
               for i in range(0, args.n, 64)]
    samples = torch.cat(batches)
    per_image = (time.perf_counter() - start) / args.n
    report = clean_object_report(samples)
    print(f"latent DDPM: {args.n} samples, {args.steps} steps, {per_image * 1000:.0f} ms per image; "
          f"one clean object {report['clean']:.1%}")
    for key in ("shapes", "colours", "sizes", "positions"):
        print(f"  {key}: {dict(report[key])}")

    same_on_pixels = replace(LATENT_UNET, in_channels=3, out_channels=3, image_size=32)
    train = {
        "pixel U-Net on pixels": train_step_seconds(PIXEL_UNET, IMAGE),
        "latent U-Net on pixels": train_step_seconds(same_on_pixels, IMAGE),
        "latent U-Net on latents": train_step_seconds(LATENT_UNET, LATENT),
    }
    scheduler, n, steps = DDPMScheduler(**LATENT_SCHEDULER), 16, 20

    def pixel_sampler(config: UNetConfig):
        net = UNetModel(config).eval()  # untrained: the weights do not change the time
        return lambda: Sampler().sample(net, (n, *IMAGE), scheduler, steps, progress=False)

    sample = {
        "pixel U-Net on pixels": sample_seconds(pixel_sampler(PIXEL_UNET), n),
        "latent U-Net on pixels": sample_seconds(pixel_sampler(same_on_pixels), n),
        "latent U-Net on latents": sample_seconds(lambda: pipe(n, steps, seed=0, progress=False), n),
    }
    print(f"\n{'':26s} {'train step (batch 64)':>22s} {'sampling (20 steps)':>22s}")
    for name in train:
        print(f"{name:26s} {train[name] * 1000:16.0f} ms   {sample[name] * 1000:14.1f} ms/image")
    same, latent, pixel = "latent U-Net on pixels", "latent U-Net on latents", "pixel U-Net on pixels"
    print(f"same network, pixels / latents: training {train[same] / train[latent]:.1f}x, "
          f"sampling {sample[same] / sample[latent]:.1f}x")
    print(f"lesson 03's pixel U-Net / latent U-Net: training {train[pixel] / train[latent]:.1f}x, "
          f"sampling {sample[pixel] / sample[latent]:.1f}x")


if __name__ == "__main__":
    main()
