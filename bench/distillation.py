"""Benchmark lesson 11's few-step student against its teacher.

    python bench/distillation.py [--student outputs/checkpoints/lcm] [--n 32] [--steps 1,2,4,8]

For the student (LCM sampler, guidance folded in: one network call per step) and the teacher (DDIM and
DPM-Solver++ 2M with guidance 3: two calls per step, batched as one), at each number of steps: the
fraction of images the shapes judge passes over every prompt kind of ``minildm.metrics.prompt_set``
(the same prompts and starting noise for every row), its 95% Wilson interval, the network evaluations
per image and the wall time per image; the teacher's DDIM at 25 steps is the reference. The issue's
target: the 4-step student within 5 points of DDIM-25, and far above DDIM-4.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from minildm.checkpoints import checkpoint_dir
from minildm.metrics import prompt_fidelity, wilson_interval
from minildm.pipelines import DEFAULT_GUIDANCE, TextToImagePipeline
from minildm.schedulers import SCHEDULERS
from minildm.utils import get_device


def measure(pipe, n: int, steps: int, guidance: float) -> tuple[int, int, float]:
    """(passed, judged, ms per image) of ``pipe`` at ``steps`` steps."""
    start = time.perf_counter()
    result = prompt_fidelity(pipe, n, num_inference_steps=steps, guidance_scale=guidance)["all"]
    judged = result["n"]
    return round(result["score"] * judged), judged, (time.perf_counter() - start) * 1000 / judged


def own_teacher(config: dict) -> Path:
    """The teacher a student's config records: a folder as given to ``train lcm --teacher`` (absolute),
    or ``data/checkpoints/NAME`` for a shipped one, found in this package's checkpoint folder."""
    recorded = Path(config["distillation"]["teacher"])
    return recorded if recorded.is_absolute() else checkpoint_dir() / recorded.name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--student", type=Path, default=checkpoint_dir() / "lcm")
    parser.add_argument("--teacher", type=Path, default=None,
                        help="default: the student's own teacher, as its config records it (the shipped "
                        "student's: data/checkpoints/text2img_unet, the U-Net)")
    parser.add_argument("--n", type=int, default=32, help="prompts per kind (4 kinds)")
    parser.add_argument("--steps", default="1,2,4,8")
    parser.add_argument("--device", default=None)
    args = parser.parse_args()
    device = get_device(args.device)
    student = TextToImagePipeline.from_pretrained(args.student, device=device)
    teacher = TextToImagePipeline.from_pretrained(args.teacher or own_teacher(student.config), device=device)
    trained = teacher.scheduler.config
    steps = [int(s) for s in args.steps.split(",")]
    rows = [("student (LCM)", student, None, s, 1) for s in steps]
    rows += [(f"teacher ({name})", teacher, name, s, 2) for name in ("ddim", "dpm++") for s in steps]
    rows.append(("teacher (ddim)", teacher, "ddim", 25, 2))
    print(f"{args.n} prompts per kind ({4 * args.n} images per row), on {device}")
    print(f"{'sampler':16s} {'steps':>5s} {'NFE':>4s}  {'fidelity (95% interval)':26s} {'ms/image':>8s}")
    scores = {}
    for label, pipe, sampler, n_steps, calls in rows:
        if sampler is not None:
            pipe.scheduler = SCHEDULERS[sampler].from_config(trained)
        guidance = 1.0 if pipe is student else DEFAULT_GUIDANCE
        k, n, ms = measure(pipe, args.n, n_steps, guidance)
        lo, hi = wilson_interval(k, n)
        scores[label, n_steps] = k / n
        print(f"{label:16s} {n_steps:5d} {calls * n_steps:4d}  {k / n:6.1%} [{lo:5.1%}, {hi:5.1%}]"
              f"       {ms:8.0f}", flush=True)
    reference = scores["teacher (ddim)", 25]
    for s in steps:
        gap = (scores["student (LCM)", s] - reference) * 100
        ddim = (scores["teacher (ddim)", s] - reference) * 100
        print(f"{s} steps: student {gap:+.1f} points from DDIM-25, DDIM-{s} {ddim:+.1f}")
    print("target: the 4-step student within 5 points of DDIM-25, and far above DDIM-4")


if __name__ == "__main__":
    main()
