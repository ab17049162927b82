"""Lesson 08's figures: img2img recolouring against strength, and inpainting one object of two.

    python bench/img2img.py [--n 96] [--seed 0[,1,...]] [--strengths 0.3,0.5,0.6,0.7,0.8,0.9,1.0]
                            [--init inversion,noise] [--resample 1,3,5] [--guidance G] [--checkpoint DIR]

Recolouring: a one-object render, the prompt names only a new colour and the shape ("a green square");
"edit" = the judge accepts that prompt, "kept" = it also accepts the full caption with the original size
and position; once per ``init`` (the inverted start, the default, and SDEdit's noise). Inpainting: a
two-object render, the mask covers the second object (its box + 3 pixels), the prompt is the new scene;
"right" = the judge accepts the new caption, "change" = mean absolute change outside the mask as a
fraction of the pixel range. Rates with 95% Wilson intervals. Shipped model, DDIM 25 steps, guidance 3,
reshaping ("a red square" for a red circle) at the default strength, once per ``init``; the same cases and
seeds as notebooks/08 (which uses 24 in the quick budget).

``--seed 0,1,...`` pools several sets of ``n`` cases (set ``k``: ``recolour_cases(n, seed=k)``, the same for
reshaping, ``inpaint_cases(n, seed=k + 1)``; set 0 is the default and lesson 08's), with each set's count
beside the total: one set of 96 can read several points rosier or bleaker than the next.
"""

import argparse
import time

from minildm.checkpoints import checkpoint_dir
from minildm.metrics import judge, wilson_interval
from minildm.metrics.edits import EditCases, inpaint_cases, recolour_cases, reshape_cases
from minildm.pipelines import DEFAULT_STRENGTH, Img2ImgPipeline, InpaintPipeline
from minildm.utils import to_uint8


def rate(counts: list[int], n: int) -> str:
    """The pooled rate of per-set counts (``n`` cases each), its interval, and each set's count."""
    k, total = sum(counts), n * len(counts)
    lo, hi = wilson_interval(k, total)
    text = f"{k / total:5.1%} [{lo:.0%}, {hi:.0%}]"
    return text if len(counts) == 1 else f"{text} ({' + '.join(map(str, counts))})"


def edit_counts(pipe: Img2ImgPipeline, cases: EditCases, **kwargs) -> tuple[int, int, float]:
    """Edit every case (seed 0): how many the judge accepts for the prompt, how many for the full target,
    and the seconds the edits took (judging not included)."""
    start = time.perf_counter()
    out = to_uint8(pipe(cases.prompts, cases.images, seed=0, progress=False, **kwargs).images)
    seconds = time.perf_counter() - start
    edited = sum(judge(o, p).ok for o, p in zip(out, cases.prompts))
    kept = sum(judge(o, t).ok for o, t in zip(out, cases.targets))
    return edited, kept, seconds


def edit_rows(pipe: Img2ImgPipeline, case_sets: list[EditCases], n: int, **kwargs) -> tuple[str, str, float]:
    """``edit_counts`` over every set: the pooled edit and kept rates, and ms per image."""
    counts = [edit_counts(pipe, cases, **kwargs) for cases in case_sets]
    ms = sum(c[2] for c in counts) * 1000 / (n * len(counts))
    return rate([c[0] for c in counts], n), rate([c[1] for c in counts], n), ms


def inpaint_row(
    pipe: InpaintPipeline, scene_sets: list[EditCases], n: int, **kwargs
) -> tuple[str, float, float]:
    """Inpaint every scene: the pooled rate judged right, the mean change outside the mask, ms per image."""
    rights, changes, seconds = [], [], 0.0
    for scenes in scene_sets:
        start = time.perf_counter()
        out = pipe(scenes.prompts, scenes.images, scenes.masks, seed=0, progress=False, **kwargs).images.cpu()
        seconds += time.perf_counter() - start
        rights.append(sum(judge(o, s).ok for o, s in zip(to_uint8(out), scenes.prompts)))
        keep = (1 - scenes.masks).expand_as(out)
        changes.append(float(((out - scenes.images).abs() * keep).sum() / keep.sum() / 2))
    return rate(rights, n), sum(changes) / len(changes), seconds * 1000 / (n * len(scene_sets))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=96, help="cases per setting and set")
    parser.add_argument("--seed", default="0", help="case sets to pool, e.g. 0,1,2 (see the docstring)")
    parser.add_argument("--strengths", default="0.3,0.5,0.6,0.7,0.8,0.9,1.0")
    parser.add_argument("--init", default="inversion,noise", help="img2img starts to compare")
    parser.add_argument("--resample", default="1,3,5", help="RePaint's resample_steps to compare")
    parser.add_argument("--guidance", type=float, default=None, help="guidance (default: the pipeline's)")
    parser.add_argument("--checkpoint", default=checkpoint_dir() / "text2img_unet",
                        help="default: lesson 06's U-Net (data/checkpoints/text2img_unet)")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seed.split(",")]
    extra = {} if args.guidance is None else {"guidance_scale": args.guidance}

    pipe = Img2ImgPipeline.from_pretrained(args.checkpoint, device="cpu")
    sets = f"{len(seeds)} set(s) of {args.n}" if len(seeds) > 1 else f"{args.n}"
    recolour = [recolour_cases(args.n, seed=s) for s in seeds]
    for init in args.init.split(","):
        print(f"img2img recolouring, {init} start, {sets} cases per strength "
              f"(default strength {DEFAULT_STRENGTH})")
        print("strength  edit succeeds          + size and position kept   ms/image")
        for strength in [float(s) for s in args.strengths.split(",")]:
            edited, kept, ms = edit_rows(pipe, recolour, args.n, strength=strength, init=init, **extra)
            print(f"{strength:8g}  {edited:22s} {kept:26s} {ms:6.0f}", flush=True)
        print()
    shapes = [reshape_cases(args.n, seed=s) for s in seeds]
    print(f"img2img reshaping ('a red square' for a red circle), {sets} cases, strength {DEFAULT_STRENGTH}")
    print("start      edit succeeds          + size and position kept")
    for init in args.init.split(","):
        edited, kept, _ = edit_rows(pipe, shapes, args.n, init=init, **extra)
        print(f"{init:10s} {edited:22s} {kept}", flush=True)
    print()

    inpaint = InpaintPipeline.from_pretrained(args.checkpoint, device="cpu")
    scenes = [inpaint_cases(args.n, seed=s + 1) for s in seeds]
    print(f"inpainting one object of two, {sets} scenes")
    print("resample  new scene judged right   change outside the mask   ms/image")
    for resample in [int(u) for u in args.resample.split(",")]:
        right, change, ms = inpaint_row(inpaint, scenes, args.n, resample_steps=resample, **extra)
        print(f"{resample:8d}  {right:22s}   {change:6.2%} of the range        {ms:6.0f}", flush=True)


if __name__ == "__main__":
    main()
