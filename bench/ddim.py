"""Benchmark lesson 07: DDIM in few steps against DDPM in many, on lesson 06's text-to-image U-Net.

    python bench/ddim.py [--n 48] [--ddim 10,25,50] [--ddpm 50,1000] [--guidance 3.0] [--eta 0]

For each sampler and number of steps: the fraction of images the shapes judge passes (every
prompt kind of ``minildm.metrics.prompt_set``, the same prompts and starting noise for every row),
the number of network evaluations per image (two per step: classifier-free guidance), and the
wall time per image. The issue's target: DDIM at 25 steps within 3 points of DDPM at 1000 steps,
at 40x fewer network evaluations. The DDIM paper's reference (CIFAR-10 FID, eta = 0):
13.36 at 10 steps, 4.67 at 50, 4.04 at 1000.
"""

from __future__ import annotations

import argparse
import time

import torch

from minildm.checkpoints import checkpoint_dir
from minildm.metrics import PROMPT_KINDS, prompt_fidelity
from minildm.pipelines import DEFAULT_GUIDANCE, TextToImagePipeline
from minildm.schedulers import SCHEDULERS
from minildm.utils import get_device


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=48, help="prompts per kind")
    parser.add_argument("--ddim", default="10,25,50", help="DDIM step counts")
    parser.add_argument("--ddpm", default="50,1000", help="DDPM step counts")
    parser.add_argument("--guidance", type=float, default=DEFAULT_GUIDANCE)
    parser.add_argument("--eta", type=float, default=0.0, help="DDIM's eta")
    parser.add_argument("--checkpoint", default=checkpoint_dir() / "text2img_unet",
                        help="default: lesson 06's U-Net (data/checkpoints/text2img_unet)")
    parser.add_argument("--device", default=None, help="default: the best available")
    args = parser.parse_args()

    device = get_device(args.device)
    pipe = TextToImagePipeline.from_pretrained(args.checkpoint, device=device)
    config = pipe.config
    print(f"text2img U-Net: {config['steps_trained']} steps of {config['training']['batch_size']}; "
          f"guidance {args.guidance:g}, {args.n} prompts per kind, on {device} "
          f"({torch.get_num_threads()} CPU threads)")
    print(f"\n{'sampler':14s} {'steps':>5s} {'NFE':>5s} {'all':>6s} " +
          " ".join(f"{k:>8s}" for k in PROMPT_KINDS) + f" {'ms/image':>9s}")
    runs = [("ddim", int(s)) for s in args.ddim.split(",") if s] + \
           [("ddpm", int(s)) for s in args.ddpm.split(",") if s]
    scores = {}
    for sampler, steps in runs:
        eta = args.eta if sampler == "ddim" else 0.0
        pipe.scheduler = SCHEDULERS[sampler].from_config(pipe.scheduler.config)
        start = time.perf_counter()
        results = prompt_fidelity(pipe, args.n, num_inference_steps=steps, guidance_scale=args.guidance,
                                  eta=eta)
        if device.type == "cuda":
            torch.cuda.synchronize()
        per_image = (time.perf_counter() - start) / results["all"]["n"]
        scores[sampler, steps] = results["all"]["score"]
        name = f"DDIM eta={eta:g}" if sampler == "ddim" else "DDPM"
        nfe = steps * (2 if args.guidance > 1 else 1)
        print(f"{name:14s} {steps:5d} {nfe:5d} {results['all']['score']:6.1%} " +
              " ".join(f"{results[k]['score']:8.1%}" for k in PROMPT_KINDS) + f" {per_image * 1000:9.0f}",
              flush=True)
    if ("ddim", 25) in scores and ("ddpm", 1000) in scores:
        diff = (scores["ddim", 25] - scores["ddpm", 1000]) * 100
        print(f"\nDDIM-25 minus DDPM-1000: {diff:+.1f} points (target: at least -3), 40x fewer evaluations")


if __name__ == "__main__":
    main()
