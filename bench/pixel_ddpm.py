"""Benchmark lesson 03's pixel-space DDPM: sample quality (judged) and speed.

    python bench/pixel_ddpm.py [--n 256] [--steps 100] [--checkpoint data/checkpoints/pixel_ddpm]

Prints: the fraction of samples that are one clean object (exactly one object, of a shape and
size the judge recognises), the shape / colour / size mix of the samples, training time per step
(batch 64, forward + backward + AdamW) and sampling time per image.
"""

from __future__ import annotations

import argparse
import time

import torch

from minildm.checkpoints import load_pretrained
from minildm.metrics import clean_object_report
from minildm.sampling import Sampler
from minildm.tasks import pixel_ddpm_task


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=256)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    model, scheduler, config = load_pretrained("pixel_ddpm", args.checkpoint)
    print(f"checkpoint: {config.get('steps_trained')} steps of batch {config['training']['batch_size']}")
    start = time.perf_counter()
    generator = torch.Generator().manual_seed(args.seed)
    images = torch.cat(
        [
            Sampler().sample(
                model,
                (min(64, args.n - i), 3, 32, 32),
                scheduler,
                args.steps,
                generator=generator,
                progress=False,
            )
            for i in range(0, args.n, 64)
        ]
    )
    per_image = (time.perf_counter() - start) / args.n
    report = clean_object_report(images)
    print(f"samples: {args.n}, {args.steps} DDPM steps, {per_image * 1000:.0f} ms per image")
    print(f"one clean object: {report['clean']:.1%}; objects per image: {report['objects_per_image']}")
    for key in ("shapes", "colours", "sizes", "positions"):
        print(f"  {key}: {dict(report[key])}")

    task = pixel_ddpm_task("quick", seed=0, data_size=256)
    optimizer = torch.optim.AdamW(task.model.parameters(), lr=1e-4)
    times = []
    for step in range(6):
        start = time.perf_counter()
        loss = task.loss(task.model, torch.Generator().manual_seed(step), 64)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        times.append(time.perf_counter() - start)
    step_time = sorted(times[1:])[len(times[1:]) // 2]
    print(
        f"training: {step_time:.2f} s per step of 64 images ({64 / step_time:.0f} images/s), "
        f"{sum(p.numel() for p in task.model.parameters()):,} parameters"
    )


if __name__ == "__main__":
    main()
