"""Training speed of every task's preset on this machine's device: ms per step and images per second.

    python bench/train_speed.py [--preset cpu|gpu] [--device D] [--steps 20] [--only KIND ...]
                                [--compile] [--sweep]

For each task (toy2d, vae, pixel_ddpm, latent_ddpm, clip, text2img) it builds the full budget's
training settings of the preset (default: gpu on CUDA, else cpu), times ``--steps`` steps of the
training loop's own step (``minildm.training.time_training_steps``: draws, forward, backward, AdamW,
EMA; device synchronised) after 3 untimed ones, and prints ms/step, images (or points) per second,
and the whole preset's training time at that speed (data preparation not included). ``--compile``
adds a column with ``torch.compile`` (its compile time is in the untimed steps). ``--sweep`` times
the text2img U-Net at batch 64 to 2048: flat ms/step over batch sizes means the step is bound by
kernel launches and host work, not by the GPU's arithmetic.
"""

from __future__ import annotations

import argparse
from dataclasses import replace

import torch

from minildm.retrain import ORDER  # the tasks in the order make checkpoints trains them
from minildm.tasks import TASKS
from minildm.tasks.common import get_preset
from minildm.training import time_training_steps
from minildm.utils import get_device

SMALL_DATA = 4096  # speed does not depend on the data's size; building 40,000 images does


def build(kind: str, preset: str):
    extra = {} if kind == "toy2d" else {"data_size": SMALL_DATA}
    return TASKS[kind]("full", seed=0, preset=preset, **extra)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", choices=["cpu", "gpu"], default=None)
    parser.add_argument("--device", default=None)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--only", nargs="+", choices=ORDER, default=list(ORDER))
    parser.add_argument("--compile", action="store_true", help="also time the torch.compile'd model")
    parser.add_argument("--sweep", action="store_true", help="text2img at batch 64, 256, 1024, 2048")
    args = parser.parse_args()
    device = get_device(args.device)
    preset = get_preset(args.preset, device)
    threads = f"{torch.get_num_threads()} threads"
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else threads
    print(f"device {device} ({name}), torch {torch.__version__}, {preset} preset, {args.steps} timed steps")
    header = f"{'task':<12} {'batch':>6} {'ms/step':>9} {'items/s':>9} {'steps':>6} {'preset time':>12}"
    print(header + (f" {'compiled ms/step':>17}" if args.compile else ""))
    for kind in [k for k in ORDER if k in args.only]:
        task = build(kind, preset)
        cfg = task.train_config
        seconds = time_training_steps(task.model, task.loss, cfg, device, steps=args.steps)
        row = (f"{kind:<12} {cfg.batch_size:>6} {seconds * 1000:>9.1f} {cfg.batch_size / seconds:>9.0f} "
               f"{cfg.steps:>6} {cfg.steps * seconds / 60:>10.1f} min")
        if args.compile:
            compiled = time_training_steps(build(kind, preset).model, task.loss, cfg, device,
                                           steps=args.steps, compile=True)
            row += f" {compiled * 1000:>17.1f}"
        print(row, flush=True)
    if args.sweep:
        print("\ntext2img U-Net, ms per step by batch size:")
        for batch in (64, 256, 1024, 2048):
            task = build("text2img", preset)
            cfg = replace(task.train_config, batch_size=batch)
            seconds = time_training_steps(task.model, task.loss, cfg, device, steps=args.steps)
            rate = batch / seconds
            print(f"  batch {batch:>5}: {seconds * 1000:7.1f} ms/step, {rate:8.0f} images/s", flush=True)


if __name__ == "__main__":
    main()
