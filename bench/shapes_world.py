"""Benchmark: how fast the shapes world renders and is judged, and how accurate the judge is.

    python bench/shapes_world.py [--n 50000] [--judge-n 2000]

Prints figures; asserts nothing (targets live here, not in timed tests): rendering 50,000 images
should take well under a minute on 2 cores, and the judge should score >= 99% on clean renders.
"""

from __future__ import annotations

import argparse
import time

from minildm.data import ShapesDataset
from minildm.metrics import score


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=50_000, help="images to render for the speed figure")
    parser.add_argument("--judge-n", type=int, default=2_000, help="images per caption kind to judge")
    args = parser.parse_args()

    start = time.perf_counter()
    ShapesDataset(args.n, seed=0)
    seconds = time.perf_counter() - start
    print(f"render: {args.n} images (32 x 32) in {seconds:.1f} s = {args.n / seconds:,.0f} images/s")

    kinds = {
        "one object, every attribute": dict(two_object_fraction=0.0, omit_prob=0.0),
        "one object, some attributes": dict(two_object_fraction=0.0, omit_prob=0.5),
        "two objects": dict(two_object_fraction=1.0),
    }
    for image_size in (32, 64):
        for name, kwargs in kinds.items():
            data = ShapesDataset(args.judge_n, seed=1, split="all", image_size=image_size, **kwargs)
            start = time.perf_counter()
            result = score(data.images, data.captions)
            seconds = time.perf_counter() - start
            attrs = ", ".join(f"{k} {v:.1%}" for k, v in result["attributes"].items())
            print(
                f"judge {image_size}px {name:28s} {result['score']:.2%} (held-out {result['heldout']:.2%}; "
                f"{attrs}) {args.judge_n / seconds:,.0f} images/s"
            )


if __name__ == "__main__":
    main()
