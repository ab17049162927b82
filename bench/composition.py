"""Lesson 10's measurement: prompt fidelity by kind and the failure types of two-object prompts, for
classifier-free guidance alone and with composable guidance (one term per object phrase).

    python bench/composition.py [--n 64] [--seed 0[,1,...]] [--configs 3/0,3/0.25,...] [--checkpoint DIR]

For each configuration GUIDANCE/PHRASES (guidance scale of the whole prompt / phrase scale, 0 = plain
guidance; default 3/0, 3/0.25, 2.5/0.25, 2/0.5, 3/1, 3/2) it samples with DDIM 25 steps ``n`` prompts
of each kind: one object, two objects (seen colour-shape pairs),
held-out one object and held-out two objects (a pair never seen in training), all from the fixed
seeded prompt sets of ``minildm.metrics.prompts``; the same prompts and seeds for every scale. It
prints each kind's pass rate with its 95% Wilson interval, the failure types (``minildm.metrics.
composition``) of the two-object kinds, and the sampling time per image. Several seeds (``--seed 0,1``:
other prompts and other noise for each) are pooled, with each seed's count beside the total: one set of
64 can read several points rosier or bleaker than the next.
"""

from __future__ import annotations

import argparse
import time

from minildm.checkpoints import checkpoint_dir
from minildm.metrics.composition import FAILURE_TYPES, composition_prompts, failure_table
from minildm.metrics.evaluation import generate
from minildm.metrics.judge import judge
from minildm.metrics.stats import wilson_interval
from minildm.pipelines import TextToImagePipeline
from minildm.utils import to_uint8


def judged(pipe: TextToImagePipeline, n: int, seed: int, guidance: float, scale: float):
    """``({kind: [Judgement]}, seconds per image)`` for the composition prompts of ``seed``."""
    kinds = composition_prompts(n, seed)
    prompts = [p for ps in kinds.values() for p in ps]
    start = time.perf_counter()
    images = generate(pipe, prompts, seed, guidance_scale=guidance, phrase_guidance=scale)
    per_image = (time.perf_counter() - start) / len(prompts)
    verdicts = iter([judge(img, p) for img, p in zip(to_uint8(images), prompts)])
    return {kind: [next(verdicts) for _ in ps] for kind, ps in kinds.items()}, per_image


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=64)
    parser.add_argument("--seed", default="0", help="one seed, or several comma-separated (pooled)")
    parser.add_argument("--configs", default="3/0,3/0.25,2.5/0.25,2/0.5,3/1,3/2",
                        help="GUIDANCE/PHRASES pairs, comma-separated")
    parser.add_argument("--checkpoint", default=checkpoint_dir() / "text2img_unet",
                        help="default: lesson 06's U-Net (data/checkpoints/text2img_unet)")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seed.split(",")]
    pipe = TextToImagePipeline.from_pretrained(args.checkpoint)
    sizes = {k: len(v) for k, v in composition_prompts(args.n, seeds[0]).items()}
    print(f"{len(seeds) * sum(sizes.values())} prompts ({', '.join(f'{k}: {v}' for k, v in sizes.items())} "
          f"per seed), DDIM 25 steps, seed {', '.join(map(str, seeds))}")
    for config in args.configs.split(","):
        guidance, scale = (float(v) for v in config.split("/"))
        runs = [judged(pipe, args.n, seed, guidance, scale) for seed in seeds]
        per_image = sum(t for _, t in runs) / len(runs)
        print(f"\nguidance {guidance:g}, phrase guidance {scale:g}: {per_image * 1000:.0f} ms per image")
        two_verdicts = []
        for kind in sizes:
            counts = [sum(v.ok for v in by_kind[kind]) for by_kind, _ in runs]
            chosen = [v for by_kind, _ in runs for v in by_kind[kind]]
            passed = sum(counts)
            low, high = wilson_interval(passed, len(chosen))
            each = f"  (by seed: {' / '.join(map(str, counts))})" if len(seeds) > 1 else ""
            print(f"  {kind:<12} {passed:>3}/{len(chosen):<3} {passed / len(chosen):6.1%}  "
                  f"[{low:5.1%}, {high:5.1%}]{each}")
            if "two" in kind:
                two_verdicts += chosen
        table = failure_table(two_verdicts)
        shown = [f"{t} {table[t]['count']}" for t in FAILURE_TYPES if table[t]["count"]]
        print(f"  two-object failures (of {len(two_verdicts)}): " + (", ".join(shown) or "none"))


if __name__ == "__main__":
    main()
