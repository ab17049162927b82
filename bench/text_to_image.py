"""Benchmark lesson 06's text-to-image model: prompt fidelity judged per caption kind, what
classifier-free guidance buys, and the mini CLIP's retrieval accuracy.

    python bench/text_to_image.py [--n 96] [--steps 50] [--guidance 3.0] [--sweep 1,2,3,5,7.5]
                                  [--sampler ddpm|ddim]

Prints, for the prompt sets of ``minildm.metrics.prompt_set`` (one object with every attribute,
one object with some left out, two objects with their relation, held-out colour-shape pairs):
the fraction of images the judge passes, per attribute, at the given guidance scale and with
guidance off (scale 1); then the overall score for each scale of ``--sweep`` (on a quarter of
the prompts); then CLIP's top-1 retrieval accuracy over distinct captions; and sampling time.
"""

from __future__ import annotations

import argparse
import time

from minildm.checkpoints import checkpoint_dir, load_pretrained
from minildm.data import ShapesDataset
from minildm.metrics import PROMPT_KINDS, prompt_fidelity
from minildm.pipelines import DEFAULT_GUIDANCE, DEFAULT_SAMPLER, DEFAULT_STEPS, TextToImagePipeline
from minildm.schedulers import SCHEDULERS
from minildm.text import load_tokenizer, retrieval_accuracy


def fidelity(pipe: TextToImagePipeline, n: int, steps: int, guidance: float) -> dict[str, dict]:
    return prompt_fidelity(pipe, n, num_inference_steps=steps, guidance_scale=guidance)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=96, help="prompts per kind")
    parser.add_argument("--steps", type=int, default=DEFAULT_STEPS)
    parser.add_argument("--guidance", type=float, default=DEFAULT_GUIDANCE)
    parser.add_argument("--sweep", default="1,1.5,2,3,5,7.5", help="guidance scales to compare")
    parser.add_argument("--sampler", choices=sorted(SCHEDULERS), default=DEFAULT_SAMPLER)
    parser.add_argument("--checkpoint", default=checkpoint_dir() / "text2img_unet",
                        help="default: lesson 06's U-Net (data/checkpoints/text2img_unet)")
    args = parser.parse_args()

    pipe = TextToImagePipeline.from_pretrained(args.checkpoint, device="cpu")
    pipe.scheduler = SCHEDULERS[args.sampler].from_config(pipe.scheduler.config)
    config = pipe.config
    print(f"text2img U-Net: {config['steps_trained']} steps of {config['training']['batch_size']}; "
          f"{args.sampler.upper()}, {args.steps} steps")

    start = time.perf_counter()
    guided = fidelity(pipe, args.n, args.steps, args.guidance)
    per_image = (time.perf_counter() - start) / (args.n * len(PROMPT_KINDS))
    plain = fidelity(pipe, args.n, args.steps, 1.0)
    header = f"guidance {args.guidance:g}"
    print(f"\n{'prompts':10s} {header:>14s} {'guidance 1':>12s}   per attribute (guided)")
    for kind in PROMPT_KINDS:
        attributes = ", ".join(f"{k} {v:.0%}" for k, v in guided[kind]["attributes"].items())
        print(f"{kind:10s} {guided[kind]['score']:14.1%} {plain[kind]['score']:12.1%}   {attributes}")
    print(f"sampling: {per_image * 1000:.0f} ms per image (guided: two U-Net passes per step)")

    print("\nguidance sweep (all kinds, a quarter of the prompts each):")
    for scale in [float(s) for s in args.sweep.split(",")]:
        results = fidelity(pipe, max(1, args.n // 4), args.steps, scale)
        print(f"  scale {scale:4g}: {results['all']['score']:.1%}  (" + ", ".join(
            f"{k} {results[k]['score']:.0%}" for k in PROMPT_KINDS) + ")")

    clip = load_pretrained("clip")[0]
    tokenizer = load_tokenizer()
    for kind, fraction in (("one object", 0.0), ("two objects", 1.0)):
        data = ShapesDataset(300, seed=777, two_object_fraction=fraction, omit_prob=0.0)
        first = {c: i for i, c in reversed(list(enumerate(data.captions)))}  # distinct captions
        idx = sorted(first.values())
        acc = retrieval_accuracy(clip, data.tensors()[idx], [data.captions[i] for i in idx], tokenizer)
        print(f"mini CLIP, {kind}, {len(idx)} distinct captions: text->image {acc['text_to_image']:.1%}, "
              f"image->text {acc['image_to_text']:.1%} (chance {acc['text_to_image_chance']:.1%})")


if __name__ == "__main__":
    main()
