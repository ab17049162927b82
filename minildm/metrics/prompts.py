"""Evaluation prompts: fixed, seeded sets of shapes-world captions of every kind.

A text-to-image model is scored by the judge on the images it makes for these prompts:

- ``"one"``: one object with every attribute named, ``a {size} {colour} {shape} in the {position}``;
- ``"partial"``: one object with some attributes left out, ``a red circle``, ``a small triangle``;
- ``"two"``: two objects and their relation, ``a {colour} {shape} {relation} a {colour} {shape}``;
- ``"heldout"``: one- and two-object prompts (half each) in which a (colour, shape) pair never
  seen in training appears (``blue triangle``, ``yellow circle``, ``magenta square``).

The first three kinds use only the pairs seen in training.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from minildm.data.captions import COLOURS, HELDOUT_PAIRS, POSITIONS, RELATIONS, SHAPES, SIZES
from minildm.utils import check_positive_int
from minildm.validation import check_seed

PROMPT_KINDS: tuple[str, ...] = ("one", "partial", "two", "heldout")
SEEN_PAIRS = [(c, s) for c in COLOURS for s in SHAPES if (c, s) not in HELDOUT_PAIRS]
HELDOUT = sorted(HELDOUT_PAIRS)


def _one(rng: np.random.Generator, pair: tuple[str, str], keep: tuple[bool, bool, bool]) -> str:
    colour, shape = pair
    size = str(rng.choice(list(SIZES)))
    position = str(rng.choice(list(POSITIONS)))
    words = ["a"] + ([size] if keep[0] else []) + ([colour] if keep[1] else []) + [shape]
    return " ".join(words + ([f"in the {position}"] if keep[2] else []))


def _two(rng: np.random.Generator, first: tuple[str, str], second: tuple[str, str]) -> str:
    relation = str(rng.choice(list(RELATIONS)))
    return f"a {first[0]} {first[1]} {relation} a {second[0]} {second[1]}"


def _pick(rng: np.random.Generator, pairs: list[tuple[str, str]]) -> tuple[str, str]:
    return pairs[int(rng.integers(len(pairs)))]


def prompt_set(kind: str, n: int, seed: int = 0) -> list[str]:
    """``n`` prompts of one kind (see the module's docstring), the same for the same seed."""
    if kind not in PROMPT_KINDS:
        raise ValueError(f"kind must be one of {PROMPT_KINDS}, got {kind!r}")
    n, seed = check_positive_int("n", n), check_seed("seed", seed)
    rng = np.random.default_rng([seed, PROMPT_KINDS.index(kind)])
    prompts = []
    for i in range(n):
        if kind == "one":
            prompts.append(_one(rng, _pick(rng, SEEN_PAIRS), (True, True, True)))
        elif kind == "partial":
            keep = (True, True, True)
            while all(keep):  # leave out at least one of size, colour, position
                keep = tuple(bool(b) for b in rng.integers(0, 2, size=3))
            prompts.append(_one(rng, _pick(rng, SEEN_PAIRS), keep))
        elif kind == "two":
            first = _pick(rng, SEEN_PAIRS)
            second = _pick(rng, [p for p in SEEN_PAIRS if p != first])
            prompts.append(_two(rng, first, second))
        elif i % 2 == 0:  # heldout, one object
            prompts.append(_one(rng, _pick(rng, HELDOUT), (True, True, True)))
        else:  # heldout, two objects: a held-out pair first or second
            novel = _pick(rng, HELDOUT)
            other = _pick(rng, SEEN_PAIRS + [p for p in HELDOUT if p != novel])
            prompts.append(_two(rng, novel, other) if rng.uniform() < 0.5 else _two(rng, other, novel))
    return prompts


def prompt_fidelity(
    pipe: Callable[..., torch.Tensor],
    n: int,
    kinds: tuple[str, ...] = PROMPT_KINDS,
    seed: int = 1,
    batch_size: int = 64,
    **pipe_kwargs,
) -> dict[str, dict]:
    """Judge a text-to-image pipeline on ``n`` prompts of each kind: ``{kind: score(...)}``, plus
    ``"all"`` (every prompt together).

    ``pipe(prompts, seed=..., progress=False, **pipe_kwargs).images`` must be images in [-1, 1]
    (a :class:`~minildm.pipelines.TextToImagePipeline`'s output). Batch ``i`` is sampled with seed
    ``i``, so two samplers given the same prompts start from the same noise."""
    from minildm.metrics.judge import score, summarise

    n, seed = check_positive_int("n", n), check_seed("seed", seed)
    batch_size = check_positive_int("batch_size", batch_size)
    results, prompts_all, verdicts_all = {}, [], []
    for kind in kinds:
        prompts = prompt_set(kind, n, seed=seed)
        batches = [prompts[i : i + batch_size] for i in range(0, n, batch_size)]
        images = torch.cat([pipe(b, seed=i, progress=False, **pipe_kwargs).images
                            for i, b in enumerate(batches)])
        results[kind] = score(images, prompts)
        prompts_all += prompts
        verdicts_all += results[kind]["verdicts"]
    results["all"] = summarise(verdicts_all, prompts_all)  # the same verdicts, not judged again
    return results
