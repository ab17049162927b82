"""Lesson 08's figures: img2img recolouring against strength, and inpainting one object of two.

    python bench/img2img.py [--n 96] [--strengths 0.3,0.5,0.6,0.7,0.8,0.9,1.0] [--init inversion,noise]
                            [--resample 1,3,5] [--checkpoint DIR]

Recolouring: a one-object render, the prompt names only a new colour and the shape ("a green square");
"edit" = the judge accepts that prompt, "kept" = it also accepts the full caption with the original size
and position; once per ``init`` (the inverted start, the default, and SDEdit's noise). Inpainting: a
two-object render, the mask covers the second object (its box + 3 pixels), the prompt is the new scene;
"right" = the judge accepts the new caption, "change" = mean absolute change outside the mask as a
fraction of the pixel range. Rates with 95% Wilson intervals. Shipped model, DDIM 25 steps, guidance 3,
reshaping ("a red square" for a red circle) at the default strength, once per ``init``; the same cases and
seeds as notebooks/08 (which uses 24 in the quick budget).
"""

import argparse
import time

from minildm.metrics import judge, wilson_interval
from minildm.metrics.edits import EditCases, inpaint_cases, recolour_cases, reshape_cases
from minildm.pipelines import DEFAULT_STRENGTH, Img2ImgPipeline, InpaintPipeline
from minildm.utils import to_uint8


def rate(k: int, n: int) -> str:
    lo, hi = wilson_interval(k, n)
    return f"{k / n:5.1%} [{lo:.0%}, {hi:.0%}]"


def edit_counts(pipe: Img2ImgPipeline, cases: EditCases, **kwargs) -> tuple[int, int, float]:
    """Edit every case (seed 0): how many the judge accepts for the prompt, how many for the full target,
    and the seconds the edits took (judging not included)."""
    start = time.perf_counter()
    out = to_uint8(pipe(cases.prompts, cases.images, seed=0, progress=False, **kwargs))
    seconds = time.perf_counter() - start
    edited = sum(judge(o, p).ok for o, p in zip(out, cases.prompts))
    kept = sum(judge(o, t).ok for o, t in zip(out, cases.targets))
    return edited, kept, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=96, help="cases per setting")
    parser.add_argument("--strengths", default="0.3,0.5,0.6,0.7,0.8,0.9,1.0")
    parser.add_argument("--init", default="inversion,noise", help="img2img starts to compare")
    parser.add_argument("--resample", default="1,3,5", help="RePaint's resample_steps to compare")
    parser.add_argument("--checkpoint", default=None, help="a text2img checkpoint (default: the shipped one)")
    args = parser.parse_args()

    pipe = Img2ImgPipeline.from_pretrained(args.checkpoint, device="cpu")
    cases = recolour_cases(args.n)
    for init in args.init.split(","):
        print(f"img2img recolouring, {init} start, {args.n} cases per strength "
              f"(default strength {DEFAULT_STRENGTH})")
        print("strength  edit succeeds          + size and position kept   ms/image")
        for strength in [float(s) for s in args.strengths.split(",")]:
            edited, kept, seconds = edit_counts(pipe, cases, strength=strength, init=init)
            ms = seconds * 1000 / args.n
            print(f"{strength:8g}  {rate(edited, args.n):22s} {rate(kept, args.n):26s} {ms:6.0f}", flush=True)
        print()
    shapes = reshape_cases(args.n)
    print(f"img2img reshaping ('a red square' for a red circle), {args.n} cases, strength {DEFAULT_STRENGTH}")
    print("start      edit succeeds          + size and position kept")
    for init in args.init.split(","):
        edited, kept, _ = edit_counts(pipe, shapes, init=init)
        print(f"{init:10s} {rate(edited, args.n):22s} {rate(kept, args.n)}", flush=True)
    print()

    inpaint = InpaintPipeline.from_pretrained(args.checkpoint, device="cpu")
    scenes = inpaint_cases(args.n)
    print(f"inpainting one object of two, {args.n} scenes")
    print("resample  new scene judged right   change outside the mask   ms/image")
    for resample in [int(u) for u in args.resample.split(",")]:
        start = time.perf_counter()
        out = inpaint(scenes.prompts, scenes.images, scenes.masks, seed=0, progress=False,
                      resample_steps=resample).cpu()
        ms = (time.perf_counter() - start) * 1000 / args.n
        right = sum(judge(o, s).ok for o, s in zip(to_uint8(out), scenes.prompts))
        keep = (1 - scenes.masks).expand_as(out)
        change = float(((out - scenes.images).abs() * keep).sum() / keep.sum() / 2)
        print(f"{resample:8d}  {rate(right, args.n):22s}   {change:6.2%} of the range        {ms:6.0f}",
              flush=True)


if __name__ == "__main__":
    main()
