"""Benchmark: SD 1.5's full configuration in our modules against diffusers', random weights.

    python bench/stable_diffusion.py [--threads 2] [--repeats 1] [--batch 2] [--size 512] [--device cpu]

Builds diffusers' ``UNet2DConditionModel`` (SD 1.5: 320 channels x (1, 2, 4, 4), 8 heads, context 768;
860M parameters) and ``AutoencoderKL`` (SD's VAE, 84M parameters) with random weights, maps them into
our ``UNetModel`` and ``AutoencoderKL`` (the same tensors: no second copy of the weights), and runs
both libraries side by side on the same inputs:

- one U-Net step at 512x512 (latents 4x64x64; batch 2 = one classifier-free guidance step, context
  [2, 77, 768]);
- one VAE decode of a 4x64x64 latent to a 3x512x512 image.

Printed per component: the largest absolute difference of the outputs (fp32), seconds per call (the
best of ``--repeats``), and the peak memory the call added (CPU: the process's peak resident memory,
reset before each call through /proc/self/clear_refs; CUDA: torch's peak allocation), ours and
diffusers', with the ratio ours / diffusers (<= 1: ours no slower, no larger). Heavy: about 4 GB of
memory for the weights, a minute or more on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import gc
import os
import time
from collections.abc import Callable
from pathlib import Path

import torch


def _rss_peak_mb() -> float:
    """The process's peak resident memory (VmHWM) in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _call(fn: Callable[[], torch.Tensor], device: torch.device) -> tuple[torch.Tensor, float, float]:
    """One call: ``(output, seconds, peak MB it added)``."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
        base = _rss_mb()
    start = time.perf_counter()
    with torch.no_grad():
        out = fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    if device.type == "cuda":
        return out, seconds, (torch.cuda.max_memory_allocated() - base) / 2**20
    return out, seconds, _rss_peak_mb() - base


def measure(
    ours: Callable[[], torch.Tensor], theirs: Callable[[], torch.Tensor], device: torch.device, repeats: int
) -> tuple[torch.Tensor, torch.Tensor, list[float], list[float]]:
    """Both models called in turn ``repeats`` times (interleaved, so that a change of load on a shared
    machine hits both): their outputs, and [best seconds, largest peak MB] of each."""
    best = {"ours": [float("inf"), 0.0], "theirs": [float("inf"), 0.0]}
    outputs = {}
    for _ in range(repeats):
        for name, fn in (("theirs", theirs), ("ours", ours)):
            outputs[name] = None
            outputs[name], seconds, mb = _call(fn, device)
            best[name] = [min(best[name][0], seconds), max(best[name][1], mb)]
    return outputs["ours"], outputs["theirs"], best["ours"], best["theirs"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2, help="torch threads (CPU)")
    parser.add_argument("--repeats", type=int, default=1, help="calls per model; the best time is kept")
    parser.add_argument("--batch", type=int, default=2, help="U-Net batch (2: one guided step)")
    parser.add_argument("--size", type=int, default=512, help="image size in pixels (latents: size / 8)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    device = torch.device(args.device)

    from diffusers import AutoencoderKL as DAutoencoderKL
    from diffusers import UNet2DConditionModel

    from minildm.nn import UNetModel, count_parameters
    from minildm.nn.attention import use_fused_attention
    from minildm.stable_diffusion import unet_config_from_diffusers, vae_config_from_diffusers
    from minildm.stable_diffusion import weights as W
    from minildm.vae import AutoencoderKL

    torch.manual_seed(0)
    # diffusers' defaults are SD 1.5's U-Net but for the context width (768: CLIP ViT-L/14)
    theirs_unet = UNet2DConditionModel(cross_attention_dim=768, sample_size=64).eval().to(device)
    cfg = unet_config_from_diffusers(dict(theirs_unet.config))
    with torch.device("meta"):
        ours_unet = UNetModel(cfg)
    ours_unet.load_state_dict(W.unet_from_diffusers(theirs_unet.state_dict(), cfg), assign=True)
    use_fused_attention(ours_unet.eval())
    theirs_vae = DAutoencoderKL(
        block_out_channels=(128, 256, 512, 512), down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4, layers_per_block=2, latent_channels=4, norm_num_groups=32,
        sample_size=512,
    ).eval().to(device)
    vae_cfg = vae_config_from_diffusers(dict(theirs_vae.config))
    with torch.device("meta"):
        ours_vae = AutoencoderKL(vae_cfg)
    ours_vae.load_state_dict(W.vae_from_diffusers(theirs_vae.state_dict(), vae_cfg), assign=True)
    use_fused_attention(ours_vae.eval())
    print(f"U-Net: {count_parameters(ours_unet) / 1e6:.0f}M parameters (diffusers: "
          f"{sum(p.numel() for p in theirs_unet.parameters()) / 1e6:.0f}M); VAE: "
          f"{count_parameters(ours_vae) / 1e6:.0f}M; scale factor {vae_cfg.scaling_factor} (from the config)")
    print(f"device {device}, {torch.get_num_threads()} threads, torch {torch.__version__}")

    g = torch.Generator().manual_seed(1)
    h = args.size // 8
    x = torch.randn(args.batch, 4, h, h, generator=g).to(device)
    t = torch.full((args.batch,), 500, dtype=torch.long, device=device)
    context = torch.randn(args.batch, 77, 768, generator=g).to(device)
    z = torch.randn(1, 4, h, h, generator=g).to(device)

    rows = []
    for name, ours_fn, theirs_fn in (
        (f"U-Net step (batch {args.batch}, {args.size}x{args.size})",
         lambda: ours_unet(x, t, context), lambda: theirs_unet(x, t, context).sample),
        (f"VAE decode (1 image, {args.size}x{args.size})",
         lambda: ours_vae.decode(z), lambda: theirs_vae.decode(z).sample),
    ):
        ours_out, theirs_out, (ours_s, ours_mb), (theirs_s, theirs_mb) = measure(
            ours_fn, theirs_fn, device, args.repeats
        )
        diff = (ours_out - theirs_out).abs().max().item()
        scale = theirs_out.abs().max().item()
        rows.append((name, diff, scale, ours_s, theirs_s, ours_mb, theirs_mb))
        del ours_out, theirs_out

    print()
    print(f"{'':38} {'max |diff|':>10} {'(max |out|)':>11} {'ours s':>8} {'diffusers s':>11} {'ratio':>6} "
          f"{'ours MB':>8} {'diffusers MB':>12} {'ratio':>6}")
    for name, diff, scale, ours_s, theirs_s, ours_mb, theirs_mb in rows:
        print(f"{name:38} {diff:10.2e} {scale:11.3g} {ours_s:8.2f} {theirs_s:11.2f} {ours_s / theirs_s:6.2f} "
              f"{ours_mb:8.0f} {theirs_mb:12.0f} {ours_mb / max(theirs_mb, 1e-9):6.2f}")


if __name__ == "__main__":
    main()
