"""Benchmark lesson 11: training-free solvers against the number of steps, on lesson 06's model.

    python bench/solvers.py [--n 64] [--steps 4,6,8,10,25] [--solvers ddim,dpm++,euler,euler_a]

For each solver and number of steps: the fraction of images the shapes judge passes over every
prompt kind of ``minildm.metrics.prompt_set`` (the same prompts and starting noise for every row),
with its 95% Wilson interval, and the wall time per image. The issue's target: DPM-Solver++ (2M)
at 10 steps within 2 points of DDIM at 25.
"""

from __future__ import annotations

import argparse
import time

from minildm.checkpoints import checkpoint_dir
from minildm.metrics import prompt_fidelity, wilson_interval
from minildm.pipelines import DEFAULT_GUIDANCE, TextToImagePipeline
from minildm.schedulers import SCHEDULERS
from minildm.utils import get_device


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=64, help="prompts per kind (4 kinds)")
    parser.add_argument("--steps", default="4,6,8,10,25")
    parser.add_argument("--solvers", default="ddim,dpm++,euler,euler_a")
    parser.add_argument("--guidance", type=float, default=DEFAULT_GUIDANCE)
    parser.add_argument("--checkpoint", default=checkpoint_dir() / "text2img_unet",
                        help="default: lesson 06's U-Net (data/checkpoints/text2img_unet)")
    parser.add_argument("--device", default=None)
    args = parser.parse_args()

    pipe = TextToImagePipeline.from_pretrained(args.checkpoint, device=get_device(args.device))
    trained = pipe.scheduler.config
    print(f"{args.n} prompts per kind, guidance {args.guidance:g}, on {pipe.device}")
    print(f"{'solver':8s} {'steps':>5s}  {'fidelity (95% interval)':26s} {'ms/image':>8s}")
    scores = {}
    for name in args.solvers.split(","):
        pipe.scheduler = SCHEDULERS[name].from_config(trained)
        for steps in [int(s) for s in args.steps.split(",")]:
            start = time.perf_counter()
            result = prompt_fidelity(pipe, args.n, num_inference_steps=steps, guidance_scale=args.guidance)
            ms = (time.perf_counter() - start) * 1000 / result["all"]["n"]
            k, n = round(result["all"]["score"] * result["all"]["n"]), result["all"]["n"]
            lo, hi = wilson_interval(k, n)
            scores[name, steps] = k / n
            print(f"{name:8s} {steps:5d}  {k / n:6.1%} [{lo:5.1%}, {hi:5.1%}]       {ms:8.0f}", flush=True)
    if ("dpm++", 10) in scores and ("ddim", 25) in scores:
        diff = (scores["dpm++", 10] - scores["ddim", 25]) * 100
        print(f"\nDPM-Solver++ at 10 steps minus DDIM at 25: {diff:+.1f} points (target: at least -2)")


if __name__ == "__main__":
    main()
